"""Raw webhook copies: a delivery that fits its queue message has none (v2 inline); one in S3 (too big
for the queue, or a v1 message still in flight) is kept until processed, then discarded (personal
data then lives only in items erasure and the sweep reach). A payload with a field we do not handle
yet, or one that is not a webhook, is kept in S3 for its retention window; so is the last try before
the DLQ, which parks a pointer there."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from relasify.data import models as m
from relasify.data import webhook_inbox
from relasify.services import webhook
from relasify.settings import Settings
from relasify_local.cfn import REPO_ROOT

from tests.integration import test_webhook_ingestion as ingestion
from tests.integration.test_webhook_ingestion import WS, FakeContext, WebhookEnv, fixture_bytes
from tests.support.faults import inject_aws_faults

env = ingestion.env  # the receiver/processor environment fixture, connected to WS

FIXTURE = REPO_ROOT.parent / "shared" / "fixtures" / "whatsapp" / "09_status_sent_utility_template.json"
BUCKET = "raw-retention-test"


@pytest.fixture
def inbox(ddb_tables: Settings, monkeypatch: pytest.MonkeyPatch) -> webhook_inbox.WebhookInboxConfig:
    monkeypatch.setenv("MEDIA_BUCKET", BUCKET)  # where the processor keeps a copy
    webhook_inbox.reset_clients()
    boto3.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-southeast-3"})
    queue_url = boto3.client("sqs").create_queue(QueueName="raw-retention-test")["QueueUrl"]
    yield webhook_inbox.WebhookInboxConfig(media_bucket=BUCKET, webhook_queue_url=queue_url, media_queue_url="")
    webhook_inbox.reset_clients()


def _keys() -> list[str]:
    return [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def _queued_body(config: webhook_inbox.WebhookInboxConfig) -> str:
    messages = boto3.client("sqs").receive_message(QueueUrl=config.webhook_queue_url)["Messages"]
    return messages[0]["Body"]


def test_processed_payload_is_discarded(inbox: webhook_inbox.WebhookInboxConfig) -> None:
    with inject_aws_faults() as calls:  # no faults: counts requests
        assert webhook_inbox.enqueue(Path(FIXTURE).read_bytes(), datetime.now(UTC), inbox) is None
        webhook.process_queued_webhook(_queued_body(inbox))
    assert _keys() == []
    assert not any(name.startswith("s3.") for name in calls.attempts)  # 0 S3 requests for a normal event


def test_an_oversize_payload_is_stored_then_discarded_once_processed(inbox: webhook_inbox.WebhookInboxConfig) -> None:
    payload = json.loads(Path(FIXTURE).read_bytes())
    payload["padding"] = "x" * webhook_inbox.SQS_MESSAGE_LIMIT_BYTES
    key = webhook_inbox.enqueue(json.dumps(payload).encode(), datetime.now(UTC), inbox)
    assert _keys() == [key]
    webhook.process_queued_webhook(_queued_body(inbox))
    assert _keys() == []


def test_payload_with_an_unhandled_field_is_kept(inbox: webhook_inbox.WebhookInboxConfig) -> None:
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102345678901234", "changes": [{"field": "some_future_field", "value": {"x": 1}}]}],
    }
    raw = json.dumps(payload).encode()
    assert webhook_inbox.enqueue(raw, datetime.now(UTC), inbox) is None  # inline: no copy yet
    body = _queued_body(inbox)
    summary = webhook.process_queued_webhook(body)
    assert any(k.startswith("unknown_field:") for k in summary.counts)
    (key,) = _keys()  # the processor's copy, for the retention window (lifecycle rule on raw-webhooks/)
    assert boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read() == raw
    webhook.process_queued_webhook(body)  # a retry overwrites the same content-addressed copy
    assert _keys() == [key]


# --- the processor deletes a batch's raw copies together ------------------------------------------


def _messages_of(ws: str) -> int:
    items = boto3.client("dynamodb").scan(TableName=m.TableModel.Meta.table_name)["Items"]
    return sum(1 for i in items if i["PK"]["S"].startswith(f"WS#{ws}#MSG#"))


INBOUND_FIXTURES = ("01_inbound_text.json", "05_inbound_location.json", "06_inbound_interactive_button_reply.json")


def _enqueue_v1(env: WebhookEnv) -> list[dict[str, object]]:
    """The inbound fixtures as v1 messages still in flight from before v2: each body in S3 and inline."""
    for name in INBOUND_FIXTURES:
        raw = fixture_bytes(name)
        reference = webhook_inbox.store_raw(raw, datetime.now(UTC), ingestion.BUCKET)
        body = json.dumps({**reference, "v": 1, "body": raw.decode()})
        env.sqs.send_message(QueueUrl=env.webhook_queue, MessageBody=body)
    return env.drain(env.webhook_queue)


def test_a_batch_of_inline_deliveries_makes_no_s3_request(env: WebhookEnv) -> None:
    with inject_aws_faults() as calls:
        for name in INBOUND_FIXTURES:
            assert env.post(fixture_bytes(name))["statusCode"] == 200
        assert env.process_queue() == {"batchItemFailures": []}
    assert not any(name.startswith("s3.") for name in calls.attempts)
    assert env.raw_objects() == []
    assert _messages_of(WS) == len(INBOUND_FIXTURES)


def test_processor_discards_a_batch_of_raw_copies_with_one_request(env: WebhookEnv) -> None:
    records = _enqueue_v1(env)
    assert len(env.raw_objects()) == len(INBOUND_FIXTURES)
    with inject_aws_faults() as faults:  # no faults: counts requests
        assert env.processor.handler({"Records": records}, FakeContext()) == {"batchItemFailures": []}
    assert env.raw_objects() == []
    assert faults.attempts.get("s3.DeleteObjects") == 1
    assert "s3.DeleteObject" not in faults.attempts
    assert "s3.GetObject" not in faults.attempts  # v1 messages carried small bodies inline too
    assert _messages_of(WS) == len(INBOUND_FIXTURES)


def test_records_whose_copy_was_not_deleted_fail_and_their_retry_deletes_it(env: WebhookEnv) -> None:
    records = _enqueue_v1(env)
    with inject_aws_faults() as faults:
        faults.fail("s3", ["DeleteObjects"], kind="5xx", calls=[1], persist=None)
        result = env.processor.handler({"Records": records}, FakeContext())
    # Every effect is stored, but the records are not done: SQS will redeliver them.
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(r["messageId"] for r in records)
    assert len(env.raw_objects()) == len(INBOUND_FIXTURES)
    assert _messages_of(WS) == len(INBOUND_FIXTURES)
    assert env.processor.handler({"Records": records}, FakeContext()) == {"batchItemFailures": []}
    assert env.raw_objects() == []
    assert _messages_of(WS) == len(INBOUND_FIXTURES)  # the retry changed nothing twice


def test_a_failed_record_keeps_its_copy_and_the_others_are_discarded(env: WebhookEnv) -> None:
    records = _enqueue_v1(env)
    failing = records[1]
    with inject_aws_faults() as faults:
        # The second record's message write (with its conversation: one TransactWriteItems) fails on
        # every attempt (the records run in order; call 1 is the first record's new contact, 2 its message).
        faults.fail("dynamodb", ["TransactWriteItems"], kind="5xx", calls=[3], persist=None)
        result = env.processor.handler({"Records": records}, FakeContext())
    assert result == {"batchItemFailures": [{"itemIdentifier": failing["messageId"]}]}
    location = webhook_inbox.raw_location(failing["body"])
    assert location is not None
    assert env.raw_objects() == [location[1]]


# --- the last try before the DLQ --------------------------------------------------------------------


def test_an_inline_delivery_failing_its_last_try_is_parked_in_the_dlq_with_a_raw_copy(env: WebhookEnv) -> None:
    raw = fixture_bytes("01_inbound_text.json")
    assert env.post(raw)["statusCode"] == 200
    (record,) = env.drain(env.webhook_queue)
    for receive, parked in ((4, False), (5, True)):
        record["attributes"]["ApproximateReceiveCount"] = str(receive)
        with inject_aws_faults() as faults:
            faults.fail("dynamodb", ["TransactWriteItems"], kind="5xx", every=1)
            result = env.processor.handler({"Records": [record]}, FakeContext())
        # Parked: reported done, so SQS deletes the inline original instead of moving it to the DLQ.
        assert result == {"batchItemFailures": [] if parked else [{"itemIdentifier": record["messageId"]}]}
        assert len(env.raw_objects()) == (1 if parked else 0)
    (letter,) = env.drain(env.webhook_dlq)
    pointer = json.loads(letter["body"])
    assert "body" not in pointer
    assert env.raw_objects() == [pointer["key"]]  # 90 days (lifecycle), not the DLQ's 14
    assert webhook_inbox.read_queued(letter["body"]).raw == raw
    # An operator's redrive: the pointer is processed like any other, and its copy then deleted.
    assert env.processor.handler({"Records": [letter]}, FakeContext()) == {"batchItemFailures": []}
    assert _messages_of(WS) == 1
    assert env.raw_objects() == []


def test_a_last_try_that_cannot_be_parked_is_left_to_sqs_redrive(env: WebhookEnv) -> None:
    assert env.post(fixture_bytes("01_inbound_text.json"))["statusCode"] == 200
    (record,) = env.drain(env.webhook_queue)
    record["attributes"]["ApproximateReceiveCount"] = "5"
    with inject_aws_faults() as faults:
        faults.fail("dynamodb", ["TransactWriteItems"], kind="5xx", every=1)
        faults.fail("s3", ["PutObject"], kind="5xx", every=1)
        result = env.processor.handler({"Records": [record]}, FakeContext())
    # Still failed: SQS moves the inline message (the delivery itself) to the DLQ on its own.
    assert result == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
    assert env.drain(env.webhook_dlq) == []
    assert env.raw_objects() == []
