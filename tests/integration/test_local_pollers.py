"""The local SQS event source mapping against moto: what gets deleted, what comes back,
and redrive to the dead-letter queue after maxReceiveCount."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes import SQSEvent
from moto import mock_aws
from relasify_local.aws import LocalQueue, LocalResources
from relasify_local.pollers import SqsPoller, failed_message_ids, pollers_from_functions
from relasify_local.runtime import LocalFunction

REGION = "ap-southeast-3"


class ScriptedWorker(LocalFunction):
    """A worker whose response to each batch is computed by `respond(records)`."""

    def __init__(self, respond: Any) -> None:
        super().__init__(logical_id="WorkerFunction", code_dir=Path("/nonexistent"), handler="w.handler")
        self.respond = respond
        self.batches: list[dict[str, Any]] = []

    def invoke(self, event: dict[str, Any]) -> Any:
        self.batches.append(event)
        return self.respond(event["Records"])


@pytest.fixture(scope="module")
def sqs() -> Iterator[Any]:
    # One mock for the module (starting one costs about a second); every test makes its own queues.
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION)


def _queue_with_dlq(sqs: Any, max_receive_count: int = 2, visibility_timeout: int = 1) -> tuple[LocalQueue, LocalQueue]:
    name = f"work-{uuid.uuid4().hex[:8]}"
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count})
    url = sqs.create_queue(
        QueueName=name, Attributes={"VisibilityTimeout": str(visibility_timeout), "RedrivePolicy": redrive}
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return LocalQueue("WorkQueue", "work", url, arn, max_receive_count, "WorkDLQ"), LocalQueue(
        "WorkDLQ", "work-dlq", dlq_url, dlq_arn
    )


def _send(sqs: Any, queue: LocalQueue, *bodies: str) -> None:
    for body in bodies:
        sqs.send_message(
            QueueUrl=queue.url,
            MessageBody=body,
            MessageAttributes={"kind": {"DataType": "String", "StringValue": "test"}},
        )


def _count(sqs: Any, queue: LocalQueue) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue.url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def _bodies(sqs: Any, queue: LocalQueue) -> list[str]:
    messages = sqs.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=10).get("Messages") or []
    return sorted(m["Body"] for m in messages)


def test_successful_batch_is_deleted_and_records_have_lambdas_shape(sqs: Any) -> None:
    queue, _ = _queue_with_dlq(sqs)
    worker = ScriptedWorker(lambda records: {"batchItemFailures": []})
    _send(sqs, queue, "a", "b", "c")

    outcome = SqsPoller(worker, queue, sqs, batch_size=10, report_batch_item_failures=True, wait_seconds=0).poll_once()

    assert (outcome.received, outcome.deleted, outcome.failed) == (3, 3, 0)
    assert _count(sqs, queue) == 0
    event = SQSEvent(worker.batches[0])
    records = list(event.records)
    assert sorted(r.body for r in records) == ["a", "b", "c"]
    record = records[0]
    assert record.event_source == "aws:sqs"
    assert record.event_source_arn == queue.arn
    assert record.aws_region == REGION
    assert record.message_id
    assert record.receipt_handle
    assert record.attributes.approximate_receive_count == "1"
    assert record.attributes.sent_timestamp
    assert record.message_attributes["kind"].string_value == "test"
    assert record.message_attributes["kind"].data_type == "String"
    assert record.md5_of_body


def test_partial_failure_deletes_only_the_successful_messages(sqs: Any) -> None:
    queue, _ = _queue_with_dlq(sqs, max_receive_count=5)
    worker = ScriptedWorker(
        lambda records: {
            "batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records if r["body"] == "bad"]
        }
    )
    _send(sqs, queue, "good-1", "bad", "good-2")
    poller = SqsPoller(worker, queue, sqs, batch_size=10, report_batch_item_failures=True, wait_seconds=0)

    outcome = poller.poll_once()

    assert (outcome.received, outcome.deleted, outcome.failed) == (3, 2, 1)
    assert _count(sqs, queue) == 1
    time.sleep(1.2)  # the failed message becomes visible again after the visibility timeout
    assert _bodies(sqs, queue) == ["bad"]


def test_exception_fails_the_whole_batch(sqs: Any) -> None:
    queue, _ = _queue_with_dlq(sqs, max_receive_count=5)

    def crash(records: list[dict[str, Any]]) -> Any:
        raise RuntimeError("worker crashed")

    _send(sqs, queue, "a", "b")

    outcome = SqsPoller(ScriptedWorker(crash), queue, sqs, report_batch_item_failures=True, wait_seconds=0).poll_once()

    assert (outcome.received, outcome.deleted, outcome.failed) == (2, 0, 2)
    time.sleep(1.2)
    assert _bodies(sqs, queue) == ["a", "b"]


def test_without_report_batch_item_failures_a_returned_report_is_ignored(sqs: Any) -> None:
    queue, _ = _queue_with_dlq(sqs)
    worker = ScriptedWorker(lambda records: {"batchItemFailures": [{"itemIdentifier": records[0]["messageId"]}]})
    _send(sqs, queue, "a")

    outcome = SqsPoller(worker, queue, sqs, report_batch_item_failures=False, wait_seconds=0).poll_once()

    assert outcome.deleted == 1
    assert _count(sqs, queue) == 0


def test_failing_message_is_redriven_to_the_dlq_after_max_receive_count(sqs: Any) -> None:
    queue, dlq = _queue_with_dlq(sqs, max_receive_count=2)
    seen_receive_counts: list[str] = []

    def always_fail(records: list[dict[str, Any]]) -> Any:
        seen_receive_counts.extend(r["attributes"]["ApproximateReceiveCount"] for r in records)
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records]}

    poller = SqsPoller(ScriptedWorker(always_fail), queue, sqs, report_batch_item_failures=True, wait_seconds=0)
    _send(sqs, queue, "poison")

    assert poller.poll_once().failed == 1
    time.sleep(1.2)
    assert poller.poll_once().failed == 1
    time.sleep(1.2)
    third = poller.poll_once()  # the third receive exceeds maxReceiveCount: SQS moves it instead

    assert third.received == 0
    assert seen_receive_counts == ["1", "2"]
    assert _count(sqs, queue) == 0
    assert _bodies(sqs, dlq) == ["poison"]


def test_batches_are_capped_at_the_batch_size(sqs: Any) -> None:
    queue, _ = _queue_with_dlq(sqs)
    worker = ScriptedWorker(lambda records: None)
    _send(sqs, queue, *(f"m{i}" for i in range(7)))
    poller = SqsPoller(worker, queue, sqs, batch_size=3, wait_seconds=0)

    sizes = [poller.poll_once().received for _ in range(4)]

    assert sizes == [3, 3, 1, 0]
    assert _count(sqs, queue) == 0


def test_poller_thread_feeds_the_worker_until_stopped(sqs: Any) -> None:
    queue, _ = _queue_with_dlq(sqs)
    worker = ScriptedWorker(lambda records: None)
    poller = SqsPoller(worker, queue, sqs, wait_seconds=0)
    poller.start()
    try:
        _send(sqs, queue, "x")
        deadline = time.monotonic() + 10
        while not worker.batches and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        poller.stop()

    assert [r["body"] for b in worker.batches for r in b["Records"]] == ["x"]
    assert not poller._thread.is_alive()


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, {"a", "b"}),  # unknown id fails the whole batch
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, {"a", "b"}),
        ({"batchItemFailures": [{}]}, {"a", "b"}),
    ],
)
def test_failure_report_interpretation(result: Any, expected: set[str]) -> None:
    assert failed_message_ids(result, {"a", "b"}) == expected


def test_pollers_are_configured_from_sqs_events() -> None:
    worker = LocalFunction(
        "ProcessorFunction",
        Path("/x"),
        "processor.handler",
        events={
            "Webhooks": {
                "Type": "SQS",
                "Properties": {
                    "Queue": {"Fn::GetAtt": ["WebhookQueue", "Arn"]},
                    "BatchSize": 25,
                    "FunctionResponseTypes": ["ReportBatchItemFailures"],
                },
            },
            "Unknown": {"Type": "SQS", "Properties": {"Queue": {"Fn::GetAtt": ["NoSuchQueue", "Arn"]}}},
        },
    )
    resources = LocalResources(endpoint_url="http://x")
    resources.queues["WebhookQueue"] = LocalQueue("WebhookQueue", "q", "http://x/q", "arn:q")

    pollers = pollers_from_functions({"ProcessorFunction": worker}, resources, sqs_client=None)

    assert len(pollers) == 1
    assert pollers[0].queue.logical_id == "WebhookQueue"
    assert pollers[0].batch_size == 25
    assert pollers[0].report_batch_item_failures is True
