"""Webhook ingestion end to end in-process (moto): the receiver handler with payload-format-2.0
events, the queue, the processor handler and the media worker, against every fixture."""

from __future__ import annotations

import base64
import functools
import importlib.util
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from relasify import clock
from relasify.data import audit_log, message_statuses, outbound_messages, webhook_inbox
from relasify.data import identity as identity_module
from relasify.data import messages as message_store
from relasify.data import models as m
from relasify.data.contacts import contact_repository
from relasify.data.identity import identity_repository
from relasify.services import media_copy, webhook_intake
from relasify.settings import get_settings
from relasify.whatsapp.signature import sign

from tests.support.faults import inject_aws_faults

REPO = Path(__file__).resolve().parents[2]
FIXTURES = next(p for p in (REPO / "tests/fixtures/whatsapp", REPO.parent / "shared/fixtures/whatsapp") if p.is_dir())
FIXTURE_FILES = sorted(FIXTURES.glob("*.json"))

APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
BUCKET = "relasify-test-media"
WS = "ws_fixture"
WABA = "102345678901234"
PHONE_ID = "109876543210987"
CUSTOMER_WA_ID = "6281234567890"
OUTBOUND_WAMID = "wamid.HBgNNjI4MTIzNDU2Nzg5MBUCABEYEjQ1RjdBQjEyQ0Q0NUVGNjc4OQA="
# Fixtures are dated 2026-01-01; a clock two hours later keeps them out of the stale backlog.
NOW = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)


def load_function(name: str) -> ModuleType:
    path = REPO / "functions" / "webhook" / f"{name}.py"
    module_name = f"webhook_fn_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


class FakeContext:
    function_name = "test"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:ap-southeast-3:123456789012:function:test"
    aws_request_id = "req-1"


@dataclass
class WebhookEnv:
    s3: Any
    sqs: Any
    webhook_queue: str
    media_queue: str
    receiver: ModuleType
    processor: ModuleType
    media: ModuleType
    webhook_dlq: str = ""

    def post(self, body: bytes, *, signature: str | None = "valid", base64_encoded: bool = False) -> dict[str, Any]:
        headers = {"content-type": "application/json"}
        if signature == "valid":
            headers["X-Hub-Signature-256"] = sign(body, APP_SECRET)
        elif signature is not None:
            headers["X-Hub-Signature-256"] = signature
        event = http_event("POST", body=base64.b64encode(body).decode() if base64_encoded else body.decode())
        event["headers"] = headers
        event["isBase64Encoded"] = base64_encoded
        return self.receiver.handler(event, FakeContext())

    def get(self, query: dict[str, str]) -> dict[str, Any]:
        event = http_event("GET")
        event["queryStringParameters"] = query
        return self.receiver.handler(event, FakeContext())

    def drain(self, queue_url: str) -> list[dict[str, Any]]:
        records = []
        while True:
            got = self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                return records
            for message in got:
                records.append(sqs_record(message["MessageId"], message["Body"]))
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    def process_queue(self) -> dict[str, Any]:
        records = self.drain(self.webhook_queue)
        return self.processor.handler({"Records": records}, FakeContext())

    def deliver(self, body: bytes) -> None:
        assert self.post(body)["statusCode"] == 200
        assert self.process_queue() == {"batchItemFailures": []}

    def queued_bytes(self) -> list[bytes]:
        """The deliveries waiting in the webhook queue (inline or by pointer), left there for the processor."""
        got = self.sqs.receive_message(QueueUrl=self.webhook_queue, MaxNumberOfMessages=10, VisibilityTimeout=0)
        return [webhook_inbox.read_queued(message["Body"]).raw for message in got.get("Messages", [])]

    def raw_objects(self) -> list[str]:
        listing = self.s3.list_objects_v2(Bucket=BUCKET, Prefix="raw-webhooks/")
        return [o["Key"] for o in listing.get("Contents", [])]


@functools.cache
def aws_client(service: str) -> Any:
    """One client per service for the whole module: moto intercepts every client, and creating
    clients is the slow part of these tests."""
    return boto3.client(service)


def http_event(method: str, *, body: str | None = None) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": f"{method} /webhooks/whatsapp",
        "rawPath": "/webhooks/whatsapp",
        "rawQueryString": "",
        "headers": {},
        "requestContext": {
            "http": {"method": method, "path": "/webhooks/whatsapp", "sourceIp": "203.0.113.9"},
            "requestId": "req-1",
            "routeKey": f"{method} /webhooks/whatsapp",
            "stage": "$default",
        },
        "body": body,
        "isBase64Encoded": False,
    }


def sqs_record(message_id: str, body: str) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": "rh",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:ap-southeast-3:123456789012:webhook",
        "awsRegion": "ap-southeast-3",
    }


@pytest.fixture
def env(ddb_tables: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookEnv]:
    region = "ap-southeast-3"
    s3 = aws_client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": region})
    sqs = aws_client("sqs")
    webhook_queue = sqs.create_queue(QueueName="webhook")["QueueUrl"]
    media_queue = sqs.create_queue(QueueName="media")["QueueUrl"]
    webhook_dlq = sqs.create_queue(QueueName="webhook-dlq")["QueueUrl"]
    ssm = aws_client("ssm")
    ssm.put_parameter(Name="/test/app-secret", Value=APP_SECRET, Type="SecureString")
    ssm.put_parameter(Name="/test/verify-token", Value=VERIFY_TOKEN, Type="SecureString")
    for name, value in {
        "MEDIA_BUCKET": BUCKET,
        "WEBHOOK_QUEUE_URL": webhook_queue,
        "MEDIA_QUEUE_URL": media_queue,
        "WEBHOOK_DLQ_URL": webhook_dlq,
        "APP_SECRET_PARAMETER": "/test/app-secret",
        "VERIFY_TOKEN_PARAMETER": "/test/verify-token",
    }.items():
        monkeypatch.setenv(name, value)
    parameters.clear_caches()
    get_settings.cache_clear()
    receiver = load_function("receiver")
    monkeypatch.setattr(receiver, "_config", webhook_intake.IntakeConfig.from_environment())
    identity_repository().put_whatsapp_connection(
        WS,
        waba_id=WABA,
        phone_number_id=PHONE_ID,
        encrypted_access_token="ciphertext",
        display_phone_number="6281234500000",
    )
    clock.set_clock(lambda: NOW)
    processor, media = load_function("processor"), load_function("media")
    yield WebhookEnv(s3, sqs, webhook_queue, media_queue, receiver, processor, media, webhook_dlq)
    parameters.clear_caches()
    get_settings.cache_clear()


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def outbound_message(wamid: str | None = OUTBOUND_WAMID) -> message_store.Message:
    contact, _ = contact_repository().create_or_get(WS, message_store_new_contact(CUSTOMER_WA_ID))
    return outbound_messages.record_outbound(
        WS, contact.id, "template", {"name": "konfirmasi_pesanan", "language": {"code": "id"}}, wamid=wamid
    )


def message_store_new_contact(wa_id: str) -> Any:
    from relasify.data.records import NewContact

    return NewContact(phone=f"+{wa_id}", wa_id=wa_id)


def table_snapshot() -> list[dict[str, Any]]:
    client = aws_client("dynamodb")
    items = client.scan(TableName=m.TableModel.Meta.table_name)["Items"]
    return sorted(items, key=lambda i: (i["PK"]["S"], i["SK"]["S"]))


# --- receiver ------------------------------------------------------------------------------------


def test_challenge_is_answered_as_plain_text(env: WebhookEnv) -> None:
    response = env.get({"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"})
    assert response["statusCode"] == 200
    assert response["body"] == "1158201444"
    assert response["headers"]["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {},
    ],
)
def test_challenge_is_refused(env: WebhookEnv, query: dict[str, str]) -> None:
    response = env.get(query)
    assert response["statusCode"] == 403
    assert response["body"] != "1"


@pytest.mark.parametrize(("method", "path"), [("POST", "/"), ("POST", "/other"), ("GET", "/webhooks"), ("PUT", None)])
def test_the_function_url_answers_only_get_and_post_on_the_webhook_path(
    env: WebhookEnv, method: str, path: str | None
) -> None:
    """The function URL passes every path and method; only Meta's two are served (404 problem otherwise)."""
    raw = fixture_bytes("01_inbound_text.json")
    event = http_event(method, body=raw.decode())
    event["headers"] = {"x-hub-signature-256": sign(raw, APP_SECRET)}
    if path is not None:
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
    response = env.receiver.handler(event, FakeContext())
    assert response["statusCode"] == 404
    assert json.loads(response["body"])["type"].endswith("/not-found")
    assert env.drain(env.webhook_queue) == []


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_signed_fixture_is_enqueued_inline_without_an_s3_copy(env: WebhookEnv, path: Path) -> None:
    """SendMessage's success is durable: a delivery that fits the queue message is its only copy (v2)."""
    raw = path.read_bytes()
    with inject_aws_faults() as calls:  # no faults: counts requests
        response = env.post(raw)
    assert response["statusCode"] == 200
    assert env.raw_objects() == []
    assert "s3.PutObject" not in calls.attempts
    (record,) = env.drain(env.webhook_queue)
    assert json.loads(record["body"]) == {"v": 2, "body": raw.decode()}
    queued = webhook_inbox.read_queued(record["body"])
    assert queued.raw == raw
    assert queued.s3_key is None


def test_base64_body_is_decoded_before_the_signature_check(env: WebhookEnv) -> None:
    raw = fixture_bytes("01_inbound_text.json")
    assert env.post(raw, base64_encoded=True)["statusCode"] == 200
    assert env.queued_bytes() == [raw]


@pytest.mark.parametrize(
    "signature",
    [None, "", "sha256=" + "0" * 64, "sha256=nothex", "md5=abc", "reserialised"],
)
def test_bad_signature_is_401_and_stores_nothing(env: WebhookEnv, signature: str | None) -> None:
    raw = fixture_bytes("01_inbound_text.json")
    if signature == "reserialised":
        signature = sign(json.dumps(json.loads(raw), ensure_ascii=False).encode(), APP_SECRET)
    response = env.post(raw, signature=signature)
    assert response["statusCode"] == 401
    assert response["headers"]["Content-Type"] == "application/problem+json"
    assert json.loads(response["body"])["type"].endswith("/invalid-signature")
    assert env.raw_objects() == []
    assert env.drain(env.webhook_queue) == []
    log = identity_repository().list_security_log(NOW.strftime("%Y-%m-%d"))
    (entry,) = log.items
    assert entry.action == webhook_intake.SIGNATURE_REJECTED_ACTION
    assert set(entry.details) == {"signature_present", "body_bytes"}  # no content, no phone numbers
    assert CUSTOMER_WA_ID not in entry.model_dump_json()
    # nothing else was written: the only new item is that security log entry
    assert [i for i in table_snapshot() if i["PK"]["S"].startswith(("WAMID#", f"WS#{WS}#MSG"))] == []


def test_a_flood_of_forged_posts_stores_one_security_entry_per_minute_and_kind(
    env: WebhookEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone can POST to the webhook: an entry per request would let a flood fill 24 months of
    security log. Each rejection is counted in its minute's entry instead (one shard here; a flood
    spreads over SECURITY_COUNTER_SHARDS entries a minute)."""
    monkeypatch.setattr(audit_log, "SECURITY_COUNTER_SHARDS", 1)
    raw = fixture_bytes("01_inbound_text.json")
    forged = "sha256=" + "0" * 64
    for signature in (None, None, None, forged, forged):
        assert env.post(raw, signature=signature)["statusCode"] == 401
    clock.set_clock(lambda: NOW.replace(minute=1, second=30))
    assert env.post(raw, signature=forged)["statusCode"] == 401
    clock.set_clock(lambda: NOW)
    entries = identity_repository().list_security_log(NOW.strftime("%Y-%m-%d")).items
    counted = sorted((e.at.minute, e.details["signature_present"], e.occurrences) for e in entries)
    assert counted == [(0, False, 3), (0, True, 2), (1, True, 1)]
    assert {e.action for e in entries} == {webhook_intake.SIGNATURE_REJECTED_ACTION}
    items = [i for i in table_snapshot() if i["PK"]["S"].startswith("SECURITY#")]
    assert len(items) == 3
    # kept for the security-log window (24 months), stamped for the sweep like any put
    assert all(int(i["expires_at"]["N"]) > NOW.timestamp() + 700 * 86400 and "expiry_bucket" in i for i in items)
    assert env.raw_objects() == []


def test_a_failed_security_log_write_still_answers_401(env: WebhookEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    def throttled(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("ProvisionedThroughputExceededException")

    monkeypatch.setattr(identity_module.DynamoIdentityRepository, "count_security_event", throttled)
    response = env.post(fixture_bytes("01_inbound_text.json"), signature="sha256=" + "0" * 64)
    assert response["statusCode"] == 401
    assert env.raw_objects() == []


def test_counted_security_entries_spread_over_their_shards(env: WebhookEnv) -> None:
    for _ in range(40):
        assert env.post(fixture_bytes("01_inbound_text.json"), signature=None)["statusCode"] == 401
    entries = identity_repository().list_security_log(NOW.strftime("%Y-%m-%d")).items
    assert sum(e.occurrences for e in entries) == 40
    assert 1 < len(entries) <= audit_log.SECURITY_COUNTER_SHARDS


def test_large_payload_is_read_back_from_s3(env: WebhookEnv) -> None:
    payload = json.loads(fixture_bytes("01_inbound_text.json"))
    payload["entry"][0]["changes"][0]["value"]["padding"] = "x" * webhook_inbox.SQS_MESSAGE_LIMIT_BYTES
    raw = json.dumps(payload).encode()
    assert env.post(raw)["statusCode"] == 200
    (record,) = env.drain(env.webhook_queue)
    assert "body" not in json.loads(record["body"])
    assert webhook_inbox.read_queued(record["body"]).raw == raw
    assert env.processor.handler({"Records": [record]}, FakeContext()) == {"batchItemFailures": []}
    assert message_store.get_inbound(WS, payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"]) is not None


# --- effects of every fixture ------------------------------------------------------------------------


def contact_of_customer() -> Any:
    return contact_repository().find_by_wa_id(WS, CUSTOMER_WA_ID)


def inbound(name: str) -> message_store.Message:
    wamid = json.loads(fixture_bytes(name))["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    message = message_store.get_inbound(WS, wamid)
    assert message is not None
    return message


def test_inbound_text_creates_contact_and_joins_conversation(env: WebhookEnv) -> None:
    env.deliver(fixture_bytes("01_inbound_text.json"))
    contact = contact_of_customer()
    assert contact is not None
    assert contact.phone == "+6281234567890"
    assert contact.name == "Budi Santoso"
    assert contact.last_inbound_at == datetime(2026, 1, 1, tzinfo=UTC)
    message = inbound("01_inbound_text.json")
    assert message.direction == "in"
    assert message.content == {"body": "Halo, apakah stok masih ada? Terima kasih \U0001f64f"}
    assert message.flags == []
    assert [x.id for x in message_store.list_conversation(WS, contact.id)] == [message.id]
    assert contact.consent.status == "unknown"


def test_existing_contact_by_phone_is_linked_not_duplicated(env: WebhookEnv) -> None:
    from relasify.data.records import NewContact

    created = contact_repository().create(WS, NewContact(phone="+6281234567890", name="Pak Budi"))
    env.deliver(fixture_bytes("01_inbound_text.json"))
    contact = contact_of_customer()
    assert contact.id == created.id
    assert contact.name == "Pak Budi"  # the CRM's name is not overwritten by the WhatsApp profile


@pytest.mark.parametrize(
    ("name", "media_id", "expected"),
    [
        ("02_inbound_image.json", "1234567890123456", {"caption": "Bukti transfer"}),
        ("03_inbound_document.json", "2345678901234567", {"filename": "faktur-2026-01.pdf"}),
        ("04_inbound_audio_voice.json", "3456789012345678", {"voice": True}),
    ],
)
def test_inbound_media_is_recorded_and_copied_to_s3(
    env: WebhookEnv, monkeypatch: pytest.MonkeyPatch, name: str, media_id: str, expected: dict[str, Any]
) -> None:
    env.deliver(fixture_bytes(name))
    message = inbound(name)
    assert message.media_id == media_id
    assert expected.items() <= message.content.items()
    (job,) = env.drain(env.media_queue)
    assert json.loads(job["body"]) == {"v": 1, "ws": WS, "message_id": message.id, "media_id": media_id}

    calls: list[tuple[str, str]] = []

    def fake_download(ws: str, wanted: str) -> tuple[bytes, str | None]:
        calls.append((ws, wanted))
        return b"media-bytes", "image/jpeg"

    monkeypatch.setattr(media_copy, "graph_media_download", fake_download)
    assert env.media.handler({"Records": [job]}, FakeContext()) == {"batchItemFailures": []}
    key = f"media/{WS}/{message.id}"
    assert env.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"media-bytes"
    assert message_store.get_message(WS, message.id).media_s3_key == key
    # a retried job does not download again
    assert env.media.handler({"Records": [job]}, FakeContext()) == {"batchItemFailures": []}
    assert calls == [(WS, media_id)]


def test_media_download_failure_retries_only_that_job(env: WebhookEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    env.deliver(fixture_bytes("02_inbound_image.json"))
    env.deliver(fixture_bytes("03_inbound_document.json"))
    jobs = env.drain(env.media_queue)

    def flaky(ws: str, media_id: str) -> tuple[bytes, str | None]:
        if media_id == "1234567890123456":
            raise RuntimeError("graph down")
        return b"pdf", "application/pdf"

    monkeypatch.setattr(media_copy, "graph_media_download", flaky)
    result = env.media.handler({"Records": jobs}, FakeContext())
    failed = [j["messageId"] for j in jobs if json.loads(j["body"])["media_id"] == "1234567890123456"]
    assert result == {"batchItemFailures": [{"itemIdentifier": failed[0]}]}


def test_location_and_interactive_reply(env: WebhookEnv) -> None:
    env.deliver(fixture_bytes("05_inbound_location.json"))
    env.deliver(fixture_bytes("06_inbound_interactive_button_reply.json"))
    location = inbound("05_inbound_location.json")
    assert location.content["latitude"] == pytest.approx(-6.2087634)
    reply = inbound("06_inbound_interactive_button_reply.json")
    assert reply.content["button_reply"] == {"id": "confirm_order_INV-1001", "title": "Konfirmasi"}
    assert reply.context_wamid == OUTBOUND_WAMID
    assert contact_of_customer().consent.status == "unknown"


def test_template_opt_out_button_opts_the_contact_out(env: WebhookEnv) -> None:
    env.deliver(fixture_bytes("07_inbound_template_quick_reply_button.json"))
    consent = contact_of_customer().consent
    assert consent.status == "opted_out"
    assert consent.source == "inbound_keyword"
    assert len(consent.history) == 1


def test_reaction_attaches_to_the_outbound_message(env: WebhookEnv) -> None:
    target = outbound_message()
    env.deliver(fixture_bytes("08_inbound_reaction.json"))
    reactions = message_store.get_message(WS, target.id).reactions
    assert [(r.emoji, r.from_wa_id) for r in reactions] == [("\U0001f44d", CUSTOMER_WA_ID)]
    contact = contact_of_customer()
    # the reaction itself does not appear as a conversation message
    assert [x.id for x in message_store.list_conversation(WS, contact.id)] == [target.id]


def test_status_fixtures_move_the_outbound_message_forward(env: WebhookEnv) -> None:
    target = outbound_message()
    env.deliver(fixture_bytes("09_status_sent_utility_template.json"))
    sent = message_store.get_message(WS, target.id)
    assert (sent.status, sent.status_rank) == ("sent", 1)
    env.deliver(fixture_bytes("10_status_batch_read_and_delivered.json"))
    read = message_store.get_message(WS, target.id)
    assert (read.status, read.status_rank) == ("read", 3)
    assert read.sent_at == datetime.fromtimestamp(1767226100, UTC)
    assert read.read_at == datetime.fromtimestamp(1767226160, UTC)
    billing = list(m.BillingRecordModel.query(m.billing_pk(WS, target.message_at.strftime("%Y-%m"))))
    assert [(b.sk, b.message_id, b.category, b.pricing_model, b.pricing_type, b.billable) for b in billing] == [
        (m.billing_sk(OUTBOUND_WAMID), target.id, "utility", "PMP", "regular", True)
    ]
    assert billing[0].expires_at is not None
    # the second status of fixture 10 names a message we never sent: kept as pending
    pending = message_statuses.pending_statuses("wamid.HBgNNjI4MTIzNDU2Nzg5MBUCABEYEjQ1RjdBQjEyQ0Q0NUVGNjc4OQB=")
    assert [p.change.status for p in pending] == ["delivered"]


def test_failed_status_records_the_error(env: WebhookEnv) -> None:
    target = outbound_message("wamid.HBgNNjI4MTIzNDU2Nzg5MBUCABEYEjQ1RjdBQjEyQ0Q0NUVGNjc4OQC=")
    env.deliver(fixture_bytes("11_status_failed_131047.json"))
    failed = message_store.get_message(WS, target.id)
    assert (failed.status, failed.error_code, failed.error_title) == ("failed", 131047, "Re-engagement message")
    assert failed.error_details.startswith("Message failed to send because more than 24 hours")
    assert contact_of_customer().consent.status == "unknown"  # 131047 is not an opt-out


def test_template_status_update_changes_the_template(env: WebhookEnv) -> None:
    env.deliver(fixture_bytes("12_message_template_status_update_approved.json"))
    template = m.TemplateModel.get(m.ws_pk(WS), "TEMPLATE#konfirmasi_pesanan#id")
    assert (template.status, template.category, template.meta_template_id) == (
        "APPROVED",
        "UTILITY",
        "1689556908129832",
    )


def test_unrouted_number_is_dropped_without_error(env: WebhookEnv) -> None:
    payload = json.loads(fixture_bytes("01_inbound_text.json"))
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "999"
    env.deliver(json.dumps(payload).encode())
    assert contact_of_customer() is None


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_every_fixture_delivered_three_times_has_exactly_one_effect(env: WebhookEnv, path: Path) -> None:
    outbound_message()
    outbound_message("wamid.HBgNNjI4MTIzNDU2Nzg5MBUCABEYEjQ1RjdBQjEyQ0Q0NUVGNjc4OQC=")
    raw = path.read_bytes()
    env.deliver(raw)
    once = table_snapshot()
    media_jobs = len(env.drain(env.media_queue))
    env.deliver(raw)
    env.deliver(raw)
    assert table_snapshot() == once
    assert env.drain(env.media_queue) == []
    assert media_jobs in (0, 1)


def test_processor_failure_retries_only_that_record(env: WebhookEnv) -> None:
    for name in ("01_inbound_text.json", "02_inbound_image.json"):
        assert env.post(fixture_bytes(name))["statusCode"] == 200
    good = env.drain(env.webhook_queue)
    broken = sqs_record("broken-1", json.dumps({"v": 1, "bucket": BUCKET, "key": "raw-webhooks/missing.json"}))
    result = env.processor.handler({"Records": [good[0], broken, good[1]]}, FakeContext())
    assert result == {"batchItemFailures": [{"itemIdentifier": "broken-1"}]}
    assert inbound("01_inbound_text.json") is not None
    assert inbound("02_inbound_image.json") is not None


def test_graph_media_download_uses_the_workspace_token(env: WebhookEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """The media worker's Graph step: the workspace's KMS-encrypted token is decrypted and sent with
    both calls (URL lookup, then download); nothing else is needed from the connection."""
    from relasify.data import kms_tokens
    from relasify.settings import get_settings
    from relasify.whatsapp import graph

    key_id = aws_client("kms").create_key(Description="test")["KeyMetadata"]["KeyId"]
    monkeypatch.setenv("KMS_KEY_ID", key_id)
    get_settings.cache_clear()
    kms_tokens.reset_for_tests()
    identity_repository().put_whatsapp_connection(
        WS,
        waba_id=WABA,
        phone_number_id=PHONE_ID,
        encrypted_access_token=kms_tokens.encrypt_token(WS, "EAAG-workspace-token"),
        display_phone_number="6281234500000",
    )
    calls: list[tuple[str, str, str]] = []

    class FakeGraph:
        def get_media_url(self, media_id: str, token: str) -> graph.MediaInfo:
            calls.append(("url", media_id, token))
            return graph.MediaInfo(
                id=media_id, url="https://lookaside.example/m", mime_type="image/jpeg", sha256=None, file_size=3
            )

        def download_media(self, url: str, token: str) -> bytes:
            calls.append(("download", url, token))
            return b"jpg"

    monkeypatch.setattr(graph, "get_graph_client", lambda: FakeGraph())
    assert media_copy.graph_media_download(WS, "1234567890123456") == (b"jpg", "image/jpeg")
    assert calls == [
        ("url", "1234567890123456", "EAAG-workspace-token"),
        ("download", "https://lookaside.example/m", "EAAG-workspace-token"),
    ]
    kms_tokens.reset_for_tests()
