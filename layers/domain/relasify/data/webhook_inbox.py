"""Durable intake of verified webhook deliveries: the body itself on the webhook queue when its
encoded message fits (SendMessage's success is durable: no other copy), else the raw bytes in S3 and
a pointer on the queue. Also the queue for media copy jobs.

Queue message formats (the processor reads both while messages of either are in flight):
- v2 inline `{"v": 2, "body": "<the delivery as text>"}`: no S3 copy.
- v2 pointer `{"v": 2, "bucket": ..., "key": ..., "sha256": ...}`: oversize or non-UTF-8 bodies,
  and the processor's copy of an inline body it keeps (unknown field, unparseable, last try before
  the DLQ).
- v1 `{"v": 1, "bucket", "key", "sha256"[, "body"]}`: every body in S3, small ones inlined too.

The receiver imports this on its cold-start path, so it uses boto3 only (no pydantic, no pynamodb),
reads its configuration from `WebhookInboxConfig` and creates each client on first use.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from relasify.data import aws_clients

RAW_PREFIX = "raw-webhooks"
# SQS refuses a message over 256 KiB, counted as the body's UTF-8 bytes plus message attributes.
SQS_MESSAGE_LIMIT_BYTES = 262_144
# A body is inlined only when the ENCODED message fits within this: `json.dumps` escapes every
# non-ASCII character (an emoji's 4 raw bytes become 12), so the raw size says little. The margin
# leaves room for message attributes or a field added later without re-deriving the boundary.
INLINE_MESSAGE_LIMIT_BYTES = SQS_MESSAGE_LIMIT_BYTES - 2_048
QUEUE_MESSAGE_VERSION = 2
DELETE_OBJECTS_LIMIT = 1000  # S3 DeleteObjects maximum keys per request
_INLINE_OVERHEAD = len(json.dumps({"v": QUEUE_MESSAGE_VERSION, "body": ""}))


@dataclass(frozen=True, slots=True)
class WebhookInboxConfig:
    """The receiver's slice of `relasify.settings.Settings`, read without pydantic (cold start).
    Variable names and defaults mirror Settings; a unit test keeps them in step."""

    media_bucket: str
    webhook_queue_url: str
    media_queue_url: str

    @classmethod
    def from_environment(cls) -> WebhookInboxConfig:
        return cls(
            media_bucket=os.environ.get("MEDIA_BUCKET", "relasify-media"),
            webhook_queue_url=os.environ.get("WEBHOOK_QUEUE_URL", ""),
            media_queue_url=os.environ.get("MEDIA_QUEUE_URL", ""),
        )


@dataclass(frozen=True, slots=True)
class QueuedWebhook:
    """What the processor reads from one webhook queue message. `s3_key` is None when the message
    carries the body alone (v2 inline): there is no S3 copy to read, keep or delete."""

    raw: bytes
    s3_key: str | None = None
    sha256: str = ""


def reset_clients() -> None:
    """Forget cached clients (tests switch moto contexts and regions)."""
    aws_clients.reset()


def raw_payload_key(raw: bytes, received_at: datetime) -> tuple[str, str]:
    """`raw-webhooks/YYYY/MM/DD/<sha256>.json`: content-addressed, so a redelivery overwrites itself."""
    digest = hashlib.sha256(raw).hexdigest()
    return f"{RAW_PREFIX}/{received_at:%Y/%m/%d}/{digest}.json", digest


def enqueue(raw: bytes, received_at: datetime, config: WebhookInboxConfig) -> str | None:
    """Enqueue a verified delivery durably: inline when its encoded message fits (no S3 request),
    else written to S3 first and enqueued as a pointer. Returns the S3 key, or None when inline.

    S3 before the pointer: a queue message must never reference an object that does not exist. The
    bucket's lifecycle rule on `raw-webhooks/` applies the message-content retention window.
    """
    body = inline_message(raw)
    key = None
    if body is None:
        reference = store_raw(raw, received_at, config.media_bucket)
        body, key = pointer_message(reference), str(reference["key"])
    aws_clients.client("sqs").send_message(QueueUrl=config.webhook_queue_url, MessageBody=body)
    return key


def store_raw(raw: bytes, received_at: datetime, bucket: str) -> dict[str, Any]:
    """Write a raw payload under its content address; returns the queue message's reference to it."""
    key, digest = raw_payload_key(raw, received_at)
    aws_clients.client("s3").put_object(Bucket=bucket, Key=key, Body=raw, ContentType="application/json")
    return {"v": QUEUE_MESSAGE_VERSION, "bucket": bucket, "key": key, "sha256": digest}


def inline_message(raw: bytes) -> str | None:
    """The v2 inline message for a body, or None when it cannot be inlined: its encoded message would
    pass `INLINE_MESSAGE_LIMIT_BYTES`, or it is not UTF-8. Encoded with `ensure_ascii` (every
    character SQS accepts, and its length is its size); a body of too many bytes is not encoded at
    all (escaping never shrinks it)."""
    if len(raw) + _INLINE_OVERHEAD > INLINE_MESSAGE_LIMIT_BYTES:
        return None
    try:
        message = json.dumps({"v": QUEUE_MESSAGE_VERSION, "body": raw.decode("utf-8")})
    except UnicodeDecodeError:
        return None
    return message if len(message) <= INLINE_MESSAGE_LIMIT_BYTES else None


def pointer_message(reference: dict[str, Any]) -> str:
    """The queue message naming a stored raw payload (from `store_raw`), without the body."""
    return json.dumps({**reference, "v": QUEUE_MESSAGE_VERSION})


def read_queued(message_body: str) -> QueuedWebhook:
    """The raw payload a webhook queue message carries or points to (any version)."""
    message = json.loads(message_body)
    inline = message.get("body")
    key = message.get("key")
    raw = inline.encode("utf-8") if inline is not None else _read_object(message["bucket"], message["key"])
    return QueuedWebhook(raw=raw, s3_key=key, sha256=message.get("sha256", ""))


def read_queued_if_present(message_body: str) -> QueuedWebhook | None:
    """As `read_queued`, or None when the raw object it points to is gone."""
    try:
        return read_queued(message_body)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise


def keep_raw(message_body: str, queued: QueuedWebhook, bucket: str, at: datetime) -> tuple[str, str]:
    """A message whose body must outlive it (kept for the retention window, or parked in the DLQ):
    (the message, its S3 key) when it already points to a raw copy, else (a pointer, its key) to a
    copy written now."""
    if queued.s3_key is not None:
        return message_body, queued.s3_key
    reference = store_raw(queued.raw, at, bucket)
    return pointer_message(reference), str(reference["key"])


def discard_raw(message_body: str) -> None:
    """Delete the raw payload a processed queue message refers to (nothing for an inline message)."""
    location = raw_location(message_body)
    if location is not None:
        aws_clients.client("s3").delete_object(Bucket=location[0], Key=location[1])


def raw_location(message_body: str) -> tuple[str, str] | None:
    """(bucket, key) of the raw payload a webhook queue message refers to; None when it has none."""
    message = json.loads(message_body)
    if "key" not in message:
        return None
    return message["bucket"], message["key"]


def discard_raw_objects(locations: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Delete processed raw payloads with one DeleteObjects request per bucket and 1000 keys
    (instead of one DeleteObject each). Returns the locations that were not deleted."""
    by_bucket: dict[str, list[str]] = {}
    for bucket, key in locations:
        keys = by_bucket.setdefault(bucket, [])
        if key not in keys:
            keys.append(key)
    not_deleted: set[tuple[str, str]] = set()
    for bucket, keys in by_bucket.items():
        for start in range(0, len(keys), DELETE_OBJECTS_LIMIT):
            chunk = keys[start : start + DELETE_OBJECTS_LIMIT]
            try:
                response = aws_clients.client("s3").delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": key} for key in chunk], "Quiet": True}
                )
            except (BotoCoreError, ClientError):
                not_deleted.update((bucket, key) for key in chunk)
                continue
            # Quiet mode lists only the keys S3 could not delete (a missing key counts as deleted).
            not_deleted.update((bucket, error["Key"]) for error in response.get("Errors", []))
    return not_deleted


def _read_object(bucket: str, key: str) -> bytes:
    return aws_clients.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


# --- media ------------------------------------------------------------------------------------


def media_object_key(ws: str, message_id: str) -> str:
    return f"media/{ws}/{message_id}"


def enqueue_media_job(ws: str, message_id: str, media_id: str, config: WebhookInboxConfig) -> None:
    """Ask the media worker to copy one inbound media object to S3 (Meta's URLs live minutes)."""
    body = json.dumps({"v": 1, "ws": ws, "message_id": message_id, "media_id": media_id})
    aws_clients.client("sqs").send_message(QueueUrl=config.media_queue_url, MessageBody=body)


def put_media_object(
    ws: str, message_id: str, content: bytes, mime_type: str | None, config: WebhookInboxConfig
) -> str:
    key = media_object_key(ws, message_id)
    aws_clients.client("s3").put_object(
        Bucket=config.media_bucket,
        Key=key,
        Body=content,
        ContentType=mime_type or "application/octet-stream",
    )
    return key
