"""Fault injection on the import worker (the real Lambda handler, fed from the moto queue): DynamoDB
throttling, 5xx and timeouts that exhaust botocore's retries, and a worker killed mid-file. SQS
redelivers the message until the job is done; the result equals an uninterrupted run of the same file:
the same counts, one contact per distinct phone, no duplicates."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from relasify.services import imports

from tests.integration import test_import_worker as import_tests
from tests.integration.test_import_worker import all_contacts, assert_one_contact_per_phone, generated_csv, run_import
from tests.support.faults import DYNAMODB_READS, DYNAMODB_WRITES, WorkerKilled, inject_aws_faults, report_totals

import_env = import_tests.import_env  # bucket and queue fixture (yields the queue URL)
REPO = Path(__file__).resolve().parents[2]
ROWS = 80
BATCH_ROWS = 20
MAX_REDELIVERIES = 40
FAULT_TOTALS: Counter[str] = Counter()


def _worker() -> ModuleType:
    name = "faults_import_worker"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "functions/contacts/import_worker.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


class _Context:
    function_name = "import-worker"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:ap-southeast-3:123456789012:function:import-worker"
    aws_request_id = "req-import"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 900_000


def _record(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:ap-southeast-3:123456789012:import",
        "awsRegion": "ap-southeast-3",
    }


def run_worker_until_done(queue_url: str) -> tuple[int, int]:
    """Lambda + SQS: receive, invoke, delete what succeeded; a failed record (or a dead invocation) stays
    and comes back. Returns (invocations, failed invocations or records)."""
    sqs = boto3.client("sqs")
    invocations = failures = 0
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
            "Messages", []
        )
        if not messages:
            return invocations, failures
        invocations += 1
        assert invocations <= MAX_REDELIVERIES, "the import never finished"
        records = [_record(m) for m in messages]
        try:
            result = _worker().handler({"Records": records}, _Context())
        except (WorkerKilled, BatchProcessingError):
            failures += 1
            continue  # nothing deleted: every message is delivered again
        failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
        failures += len(failed)
        for message in messages:
            if message["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def expected(import_env: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, imports.ImportJob, int]:
    """The file, and the job of an uninterrupted run of it (its own workspace)."""
    monkeypatch.setattr(imports, "BATCH_ROWS", BATCH_ROWS)
    csv_text, distinct = generated_csv(ROWS, seed=11)
    clean = run_import("ws-clean", csv_text)
    assert run_worker_until_done(import_env) == (1, 0)
    job = imports.get_import("ws-clean", clean)
    assert job.status == "completed"
    assert job.counts.created == distinct
    return csv_text, job, distinct


def _assert_same_as_clean(ws: str, import_id: str, expected: tuple[str, imports.ImportJob, int]) -> None:
    _, clean, distinct = expected
    job = imports.get_import(ws, import_id)
    assert job.status == "completed"
    assert job.processed == clean.processed == ROWS
    assert job.counts == clean.counts
    assert [(e.row, e.column) for e in job.errors] == [(e.row, e.column) for e in clean.errors]
    contacts = all_contacts(ws)
    assert len(contacts) == distinct
    assert_one_contact_per_phone(ws)
    FAULT_TOTALS["checked"] += len(contacts) + ROWS


@pytest.mark.parametrize(
    ("kind", "operations", "every"),
    [
        ("throttle", DYNAMODB_WRITES, 3),
        ("5xx", DYNAMODB_WRITES, 4),
        ("5xx", DYNAMODB_READS, 3),
        ("timeout", DYNAMODB_WRITES | DYNAMODB_READS, 5),
    ],
    ids=["throttled-writes", "5xx-writes", "5xx-reads", "timeouts"],
)
def test_dynamodb_faults_during_an_import_are_redelivered_to_exact_counts(
    import_env: str, expected: tuple[str, imports.ImportJob, int], kind: str, operations: frozenset[str], every: int
) -> None:
    csv_text = expected[0]
    import_id = run_import("ws-faulted", csv_text)
    with inject_aws_faults() as faults:
        faults.fail("dynamodb", operations, kind=kind, every=every, limit=6)  # each exhausts botocore's retries
        faults.fail("dynamodb", operations, kind=kind, calls={1, 7}, persist=1)  # absorbed by botocore
        invocations, failures = run_worker_until_done(import_env)
    assert faults.faulted_calls >= 6
    assert failures >= 1, "no invocation failed: the faults never reached the worker's recovery"
    assert invocations >= 2
    _assert_same_as_clean("ws-faulted", import_id, expected)
    FAULT_TOTALS["faults"] += faults.injected


@pytest.mark.parametrize("writes_before_kill", [1, 7])
def test_an_import_worker_killed_mid_file_is_rerun_to_exact_counts(
    import_env: str, expected: tuple[str, imports.ImportJob, int], writes_before_kill: int
) -> None:
    import_id = run_import("ws-killed", expected[0])
    with inject_aws_faults() as faults:
        faults.kill_after_writes(writes_before_kill)
        invocations, failures = run_worker_until_done(import_env)
    assert faults.kills == 1
    assert (invocations, failures) == (2, 1)
    _assert_same_as_clean("ws-killed", import_id, expected)
    FAULT_TOTALS["faults"] += faults.injected


def test_an_import_message_delivered_twice_imports_once(
    import_env: str, expected: tuple[str, imports.ImportJob, int]
) -> None:
    import_id = run_import("ws-twice", expected[0])
    sqs = boto3.client("sqs")
    (message,) = sqs.receive_message(QueueUrl=import_env, MaxNumberOfMessages=10)["Messages"]
    sqs.send_message(QueueUrl=import_env, MessageBody=message["Body"])  # the same body, a second delivery
    sqs.change_message_visibility(QueueUrl=import_env, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    assert run_worker_until_done(import_env)[1] == 0
    _assert_same_as_clean("ws-twice", import_id, expected)


@pytest.fixture(autouse=True, scope="module")
def _report_figures() -> Iterator[None]:
    yield
    report_totals(__name__, dict(FAULT_TOTALS))
