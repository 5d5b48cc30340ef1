"""Raw webhook payloads are kept until processed, then discarded (personal data then lives only
in items erasure and the sweep reach); a payload with a field we do not handle yet is kept."""

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
def inbox(ddb_tables: Settings) -> webhook_inbox.WebhookInboxConfig:
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
    webhook_inbox.store_and_enqueue(Path(FIXTURE).read_bytes(), datetime.now(UTC), inbox)
    assert len(_keys()) == 1
    webhook.process_queued_webhook(_queued_body(inbox))
    assert _keys() == []


def test_payload_with_an_unhandled_field_is_kept(inbox: webhook_inbox.WebhookInboxConfig) -> None:
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102345678901234", "changes": [{"field": "some_future_field", "value": {"x": 1}}]}],
    }
    webhook_inbox.store_and_enqueue(json.dumps(payload).encode(), datetime.now(UTC), inbox)
    summary = webhook.process_queued_webhook(_queued_body(inbox))
    assert any(k.startswith("unknown_field:") for k in summary.counts)
    assert len(_keys()) == 1


# --- the processor deletes a batch's raw copies together ------------------------------------------


def _messages_of(ws: str) -> int:
    items = boto3.client("dynamodb").scan(TableName=m.TableModel.Meta.table_name)["Items"]
    return sum(1 for i in items if i["PK"]["S"].startswith(f"WS#{ws}#MSG#"))


INBOUND_FIXTURES = ("01_inbound_text.json", "05_inbound_location.json", "06_inbound_interactive_button_reply.json")


def test_processor_discards_a_batch_of_raw_copies_with_one_request(env: WebhookEnv) -> None:
    for name in INBOUND_FIXTURES:
        assert env.post(fixture_bytes(name))["statusCode"] == 200
    assert len(env.raw_objects()) == len(INBOUND_FIXTURES)
    with inject_aws_faults() as faults:  # no faults: counts requests
        assert env.process_queue() == {"batchItemFailures": []}
    assert env.raw_objects() == []
    assert faults.attempts.get("s3.DeleteObjects") == 1
    assert "s3.DeleteObject" not in faults.attempts
    assert _messages_of(WS) == len(INBOUND_FIXTURES)


def test_records_whose_copy_was_not_deleted_fail_and_their_retry_deletes_it(env: WebhookEnv) -> None:
    for name in INBOUND_FIXTURES:
        assert env.post(fixture_bytes(name))["statusCode"] == 200
    records = env.drain(env.webhook_queue)
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
    for name in INBOUND_FIXTURES:
        assert env.post(fixture_bytes(name))["statusCode"] == 200
    records = env.drain(env.webhook_queue)
    failing = records[1]
    with inject_aws_faults() as faults:
        # The second record's message write (with its conversation: one TransactWriteItems) fails on
        # every attempt (the records run in order; call 1 is the first record's new contact, 2 its message).
        faults.fail("dynamodb", ["TransactWriteItems"], kind="5xx", calls=[3], persist=None)
        result = env.processor.handler({"Records": records}, FakeContext())
    assert result == {"batchItemFailures": [{"itemIdentifier": failing["messageId"]}]}
    assert env.raw_objects() == [webhook_inbox.raw_location(failing["body"])[1]]
