"""Raw webhook payloads are kept until processed, then discarded (personal data then lives only
in items erasure and the sweep reach); a payload with a field we do not handle yet is kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from relasify.data import webhook_inbox
from relasify.services import webhook
from relasify.settings import Settings
from relasify_local.cfn import REPO_ROOT

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
