"""Webhook receiver edge cases: unicode-escaped and raw UTF-8 bodies signed over their exact bytes, malformed
and missing signatures, a 3 MB payload (stored in S3, enqueued by reference), base64 bodies, empty and
non-JSON bodies (kept raw, dropped by the processor without a retry loop) and 1000 statuses in one POST."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from relasify.data import messages as message_store
from relasify.whatsapp.signature import sign

# The ingestion tests' environment (receiver, processor, queues, bucket) is reused as is.
from tests.integration.test_webhook_ingestion import (
    APP_SECRET,
    BUCKET,
    FIXTURE_FILES,
    OUTBOUND_WAMID,
    WS,
    FakeContext,
    WebhookEnv,
    env,  # noqa: F401 - the fixture `webhook` wraps
    fixture_bytes,
    http_event,
    outbound_message,
)
from tests.integration.test_webhook_ingestion import (
    env as ingestion_env,  # noqa: F401 - registered as the `env` fixture
)

UNAUTHORISED_SIGNATURES = {
    "missing": None,
    "empty": "",
    "wrong-secret": sign(b"{}", "another-secret"),
    "sha1-prefix-only": "sha1=",
    "sha256-prefix-only": "sha256=",
    "sha1-digest": "sha1=" + "a" * 40,
    "no-prefix": "0" * 64,
    "short-digest": "sha256=" + "a" * 63,
    "non-hex": "sha256=" + "z" * 64,
    "crlf-injected": "sha256=" + "a" * 64 + "\r\nX-Injected: 1",
}


@pytest.fixture
def webhook(request: pytest.FixtureRequest) -> WebhookEnv:
    """The ingestion tests' environment: receiver, processor, queues, bucket, a routed connection."""
    return request.getfixturevalue("env")


def queued_bodies(webhook_env: WebhookEnv) -> list[dict[str, Any]]:
    return [json.loads(record["body"]) for record in webhook_env.drain(webhook_env.webhook_queue)]


def stored_bytes(webhook_env: WebhookEnv) -> list[bytes]:
    """The deliveries accepted durably: in the queue (inline, or by pointer to S3)."""
    return webhook_env.queued_bytes()


def raw_copies(webhook_env: WebhookEnv) -> list[bytes]:
    return [webhook_env.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in webhook_env.raw_objects()]


def inbound_text(body: str, wamid: str = "wamid.EDGE1") -> bytes:
    payload = json.loads(fixture_bytes("01_inbound_text.json"))
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["text"]["body"], message["id"] = body, wamid
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.stem)
def test_unicode_escaped_and_raw_utf8_forms_each_verify_over_their_own_bytes(webhook: WebhookEnv, path: Path) -> None:
    parsed = json.loads(path.read_bytes())
    escaped = json.dumps(parsed, ensure_ascii=True).encode()  # Meta's wire form: \\uXXXX escapes
    raw = json.dumps(parsed, ensure_ascii=False).encode("utf-8")
    assert webhook.post(escaped)["statusCode"] == 200
    assert webhook.post(raw)["statusCode"] == 200
    if escaped != raw:
        # The signature covers the bytes, not the parsed JSON: the other form's signature does not fit.
        assert webhook.post(raw, signature=sign(escaped, APP_SECRET))["statusCode"] == 401
    assert sorted(set(stored_bytes(webhook))) == sorted({escaped, raw})
    assert webhook.process_queue() == {"batchItemFailures": []}


def test_raw_utf8_emoji_body_is_stored_byte_for_byte_and_processed(webhook: WebhookEnv) -> None:
    body = inbound_text("Halo kak 👋🏽 pesanan ñ #12 ✅ ẞ")
    response = webhook.post(body)
    assert response["statusCode"] == 200
    assert stored_bytes(webhook) == [body]
    assert webhook.process_queue() == {"batchItemFailures": []}
    stored = message_store.get_inbound(WS, "wamid.EDGE1")
    assert stored is not None
    assert "Halo kak 👋🏽 pesanan ñ #12 ✅ ẞ" in json.dumps(stored.content, ensure_ascii=False)


@pytest.mark.parametrize("kind", list(UNAUTHORISED_SIGNATURES))
def test_bad_signatures_are_401_problems_and_store_nothing(webhook: WebhookEnv, kind: str) -> None:
    response = webhook.post(fixture_bytes("01_inbound_text.json"), signature=UNAUTHORISED_SIGNATURES[kind])
    assert response["statusCode"] == 401
    assert response["headers"]["Content-Type"] == "application/problem+json"
    problem = json.loads(response["body"])
    assert problem["status"] == 401
    assert problem["detail"]
    assert webhook.raw_objects() == []
    assert queued_bodies(webhook) == []


def test_uppercase_hex_digest_is_accepted(webhook: WebhookEnv) -> None:
    body = fixture_bytes("01_inbound_text.json")
    digest = sign(body, APP_SECRET).removeprefix("sha256=")
    assert webhook.post(body, signature="sha256=" + digest.upper())["statusCode"] == 200
    assert webhook.post(body, signature="SHA256=" + digest)["statusCode"] == 200


def test_three_megabyte_payload_is_stored_in_s3_and_enqueued_by_reference(webhook: WebhookEnv) -> None:
    payload = json.loads(inbound_text("x", "wamid.BIG"))
    payload["entry"][0]["changes"][0]["value"]["padding"] = "é" * (3 * 1024 * 1024 // 2)
    body = json.dumps(payload, ensure_ascii=False).encode()
    assert len(body) > 3 * 1024 * 1024
    assert webhook.post(body)["statusCode"] == 200
    assert raw_copies(webhook) == [body]
    records = webhook.drain(webhook.webhook_queue)
    assert len(records) == 1
    assert len(records[0]["body"]) < 4096  # a reference to the S3 object, not the payload
    assert webhook.processor.handler({"Records": records}, FakeContext()) == {"batchItemFailures": []}


def test_base64_body_is_verified_over_the_decoded_bytes(webhook: WebhookEnv) -> None:
    body = inbound_text("Halo 👋", "wamid.B64")
    assert webhook.post(body, base64_encoded=True)["statusCode"] == 200
    assert stored_bytes(webhook) == [body]
    assert webhook.process_queue() == {"batchItemFailures": []}


def test_invalid_base64_is_400_and_stores_nothing(webhook: WebhookEnv) -> None:
    event_body = "%%%not base64%%%"
    event = http_event("POST", body=event_body)
    event["isBase64Encoded"] = True
    event["headers"] = {"x-hub-signature-256": sign(event_body.encode(), APP_SECRET)}
    response = webhook.receiver.handler(event, FakeContext())
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["type"].endswith("/invalid-encoding")
    assert webhook.raw_objects() == []


@pytest.mark.parametrize(
    "body",
    [b"", b"not json at all", b"\xff\xfe\x00binary", b"[1, 2, 3]", b'"a string"', b"null"],
    ids=["empty", "text", "binary", "list", "string", "null"],
)
def test_signed_body_that_is_not_a_webhook_is_kept_and_dropped(webhook: WebhookEnv, body: bytes) -> None:
    """Accepted (Meta would otherwise retry for days) and kept raw. The processor logs and drops the
    record at once (it can never parse: retrying would only end in the DLQ), and the good record
    beside it is applied."""
    assert webhook.post(body, base64_encoded=body[:1] == b"\xff")["statusCode"] == 200
    assert stored_bytes(webhook) == [body]
    junk = webhook.drain(webhook.webhook_queue)
    assert len(junk) == 1
    good_body = inbound_text("Halo", "wamid.GOOD")
    assert webhook.post(good_body)["statusCode"] == 200
    good = webhook.drain(webhook.webhook_queue)
    junk[0]["messageId"], good[0]["messageId"] = "junk", "good"
    result = webhook.processor.handler({"Records": [junk[0], good[0]]}, FakeContext())
    assert result == {"batchItemFailures": []}
    assert message_store.get_inbound(WS, "wamid.GOOD") is not None
    assert raw_copies(webhook) == [body]  # the junk is copied to S3 for its retention window, once


def test_unsigned_empty_body_is_401(webhook: WebhookEnv) -> None:
    assert webhook.post(b"", signature=None)["statusCode"] == 401
    assert webhook.raw_objects() == []


def test_a_thousand_statuses_in_one_post(webhook: WebhookEnv) -> None:
    outbound_message()  # one of the statuses is for a message we sent
    payload = json.loads(fixture_bytes("10_status_batch_read_and_delivered.json"))
    value = payload["entry"][0]["changes"][0]["value"]
    template = value["statuses"][1]
    value["statuses"] = [{**template, "id": f"wamid.UNKNOWN{i:04d}", "status": "delivered"} for i in range(999)]
    value["statuses"].append({**template, "id": OUTBOUND_WAMID, "status": "read"})
    body = json.dumps(payload).encode()
    started = time.monotonic()
    assert webhook.post(body)["statusCode"] == 200
    assert webhook.process_queue() == {"batchItemFailures": []}
    assert time.monotonic() - started < 60
    sent = message_store.get_by_wamid(OUTBOUND_WAMID)
    assert sent is not None
    assert sent.status == "read"
