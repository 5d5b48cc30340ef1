"""Issue 19: a webhook whose queue message would exceed SQS's 256 KiB. The receiver inlined every body
under 200 KiB raw, but `json.dumps` escapes each non-ASCII character (an emoji becomes 12 bytes), so
150 KB of emoji made a 324 KB message: SQS refused it, the receiver answered 500 on every retry and
the message was never stored. moto did not refuse it, so the tests run against moto patched to count
and refuse as SQS does (`relasify_local.moto_sqs_limits`, installed by tests/integration/conftest.py
and by the local stack)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relasify.data import messages as message_store
from relasify.data import webhook_inbox
from relasify_local import moto_sqs_limits

from tests.integration.test_webhook_ingestion import (
    BUCKET,
    WS,
    FakeContext,
    WebhookEnv,
    env,  # noqa: F401 - the fixture `webhook` wraps
    fixture_bytes,
)

LIMIT = 262_144
INLINE_LIMIT = LIMIT - 2_048  # the margin left for message attributes


@pytest.fixture
def webhook(request: pytest.FixtureRequest) -> WebhookEnv:
    """The ingestion tests' environment: receiver, processor, queues, bucket, a routed connection."""
    return request.getfixturevalue("env")


EMOJI = "\U0001f600"  # 4 bytes raw, 12 escaped (a surrogate pair of \\uXXXX)


def inbound_text(text: str, wamid: str) -> bytes:
    payload = json.loads(fixture_bytes("01_inbound_text.json"))
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["text"]["body"], message["id"] = text, wamid
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def test_the_patched_moto_refuses_what_sqs_refuses(webhook: WebhookEnv) -> None:
    assert moto_sqs_limits.installed()
    assert webhook_inbox.SQS_MESSAGE_LIMIT_BYTES == moto_sqs_limits.SQS_MESSAGE_LIMIT_BYTES == LIMIT
    assert webhook_inbox.INLINE_MESSAGE_LIMIT_BYTES == INLINE_LIMIT
    sqs = webhook.sqs
    sqs.send_message(QueueUrl=webhook.webhook_queue, MessageBody="x" * LIMIT)
    with pytest.raises(ClientError) as refused:
        sqs.send_message(QueueUrl=webhook.webhook_queue, MessageBody="x" * (LIMIT + 1))
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValue"
    # Bytes, not characters: 65,537 four-byte characters are 262,148 bytes.
    with pytest.raises(ClientError):
        sqs.send_message(QueueUrl=webhook.webhook_queue, MessageBody=EMOJI * (LIMIT // 4 + 1))
    # Message attributes count: name, data type and value.
    attribute = {"kind": {"DataType": "String", "StringValue": "abc"}}  # 4 + 6 + 3 bytes
    with pytest.raises(ClientError):
        sqs.send_message(QueueUrl=webhook.webhook_queue, MessageBody="x" * (LIMIT - 12), MessageAttributes=attribute)
    sqs.send_message(QueueUrl=webhook.webhook_queue, MessageBody="x" * (LIMIT - 13), MessageAttributes=attribute)
    # A batch counts each entry and their sum.
    with pytest.raises(ClientError) as batch:
        sqs.send_message_batch(
            QueueUrl=webhook.webhook_queue,
            Entries=[
                {"Id": "a", "MessageBody": "x" * (LIMIT // 2)},
                {"Id": "b", "MessageBody": "x" * (LIMIT // 2 + 1)},
            ],
        )
    assert batch.value.response["Error"]["Code"] == "AWS.SimpleQueueService.BatchRequestTooLong"
    assert len(webhook.drain(webhook.webhook_queue)) == 2


def test_150_kb_of_emoji_is_accepted_stored_and_processed_once(webhook: WebhookEnv) -> None:
    text = EMOJI * (150_000 // 4)
    body = inbound_text(text, "wamid.EMOJI150")
    assert 150_000 < len(body) < 200 * 1024  # under the old raw threshold: it used to be inlined
    assert len(json.dumps(body.decode())) > LIMIT  # ...into a message SQS refuses

    for _ in range(2):  # Meta's redelivery of the same POST: still one message
        response = webhook.post(body)
        assert response["statusCode"] == 200, response
        (record,) = webhook.drain(webhook.webhook_queue)
        assert len(record["body"].encode()) <= LIMIT
        assert "body" not in json.loads(record["body"])  # a pointer to the stored bytes
        assert webhook_inbox.read_queued(record["body"]).raw == body
        assert webhook.processor.handler({"Records": [record]}, FakeContext()) == {"batchItemFailures": []}

    stored = message_store.get_inbound(WS, "wamid.EMOJI150")
    assert stored is not None
    assert stored.content["body"] == text
    contact_messages = message_store.list_conversation(WS, stored.contact_id, limit=10)
    assert [m.id for m in contact_messages] == [stored.id]
    assert webhook.raw_objects() == []  # processed, then its raw copy deleted: no orphan left


# Characters with every escaped length json.dumps gives: 1 (a), 2 (" and \\), 6 (é, €, \x01), 12 (emoji).
CHARACTERS = ["a", '"', "\\", "\u00e9", "\u20ac", "\x01", EMOJI]


def _escaped_length(character: str) -> int:
    return len(json.dumps(character)) - 2


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    character=st.sampled_from(CHARACTERS),
    padding=st.integers(min_value=0, max_value=24),
    offset=st.integers(min_value=-400, max_value=400),
)
def test_every_body_near_the_limit_is_enqueued_within_it_inline_only_when_it_fits(
    webhook: WebhookEnv, character: str, padding: int, offset: int
) -> None:
    inline_overhead = len(json.dumps({"v": 2, "body": ""}))
    count = max(0, (INLINE_LIMIT - inline_overhead + offset) // _escaped_length(character))
    raw = ("a" * padding + character * count).encode("utf-8")
    key = webhook_inbox.enqueue(raw, datetime(2026, 12, 5, tzinfo=UTC), _inbox_config(webhook))
    (record,) = webhook.drain(webhook.webhook_queue)
    sent = record["body"]
    assert len(sent.encode()) <= LIMIT
    message = json.loads(sent)
    inlined = json.dumps({"v": 2, "body": raw.decode()})
    assert ("body" in message) == (len(inlined) <= INLINE_LIMIT)  # inline exactly when the encoded message fits
    assert ("key" in message) != ("body" in message)  # inline (no S3 copy) or a pointer, never both
    assert webhook_inbox.read_queued(sent).raw == raw
    assert message.get("key") == key
    if key is not None:
        webhook.s3.delete_object(Bucket=BUCKET, Key=key)
    assert webhook.raw_objects() == []


def _inbox_config(webhook: WebhookEnv) -> webhook_inbox.WebhookInboxConfig:
    return webhook_inbox.WebhookInboxConfig(
        media_bucket=BUCKET, webhook_queue_url=webhook.webhook_queue, media_queue_url=webhook.media_queue
    )


def test_the_boundary_itself_inline_at_the_limit_pointer_one_byte_over(webhook: WebhookEnv) -> None:
    config = _inbox_config(webhook)
    at = datetime(2026, 12, 5, tzinfo=UTC)
    for extra, inline in ((0, True), (1, False)):
        fill = INLINE_LIMIT - len(json.dumps({"v": 2, "body": ""})) + extra
        raw = b"a" * fill
        key = webhook_inbox.enqueue(raw, at, config)
        (record,) = webhook.drain(webhook.webhook_queue)
        message = json.loads(record["body"])
        assert len(record["body"]) == (INLINE_LIMIT if inline else len(json.dumps(message)))
        assert ("body" in message) is inline
        assert (key is None) is inline
        if not inline:
            assert boto3.client("s3").head_object(Bucket=BUCKET, Key=message["key"])
    assert len(webhook.raw_objects()) == 1  # only the body one byte over was written to S3
