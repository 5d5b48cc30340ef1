"""Durable intake of verified webhook deliveries: the raw bytes in S3, a reference (and, when small,
the body itself) on the webhook queue. Also the queue for media copy jobs.

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
# SQS refuses a message over 256 KiB, counted as the encoded body's bytes plus message attributes
# (none here). A body is inlined (saving the processor an S3 read) only when the encoded queue
# message fits: `json.dumps` escapes every non-ASCII character, so an emoji's 4 raw bytes become 12.
SQS_MESSAGE_LIMIT_BYTES = 262_144
QUEUE_MESSAGE_VERSION = 1
DELETE_OBJECTS_LIMIT = 1000  # S3 DeleteObjects maximum keys per request


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
    """What the processor reads from one webhook queue message."""

    s3_key: str
    sha256: str
    raw: bytes


def reset_clients() -> None:
    """Forget cached clients (tests switch moto contexts and regions)."""
    aws_clients.reset()


def raw_payload_key(raw: bytes, received_at: datetime) -> tuple[str, str]:
    """`raw-webhooks/YYYY/MM/DD/<sha256>.json`: content-addressed, so a redelivery overwrites itself."""
    digest = hashlib.sha256(raw).hexdigest()
    return f"{RAW_PREFIX}/{received_at:%Y/%m/%d}/{digest}.json", digest


def store_and_enqueue(raw: bytes, received_at: datetime, config: WebhookInboxConfig) -> str:
    """Write the raw payload to S3, then enqueue it; returns the S3 key.

    S3 first: a queue message must never reference an object that does not exist. The bucket's
    lifecycle rule on `raw-webhooks/` applies the message-content retention window.
    """
    message = store_raw(raw, received_at, config.media_bucket)
    aws_clients.client("sqs").send_message(
        QueueUrl=config.webhook_queue_url, MessageBody=queue_message_body(message, raw)
    )
    return str(message["key"])


def store_raw(raw: bytes, received_at: datetime, bucket: str) -> dict[str, Any]:
    """Write a raw payload under its content address; returns the queue message's reference to it."""
    key, digest = raw_payload_key(raw, received_at)
    aws_clients.client("s3").put_object(Bucket=bucket, Key=key, Body=raw, ContentType="application/json")
    return {"v": QUEUE_MESSAGE_VERSION, "bucket": bucket, "key": key, "sha256": digest}


def queue_message_body(reference: dict[str, Any], raw: bytes) -> str:
    """The queue message: the reference, with the body inlined when the encoded message fits in SQS.

    The raw size says little (an escaped emoji takes 12 bytes, a quote 2), so the encoded message is
    measured. A body of many bytes cannot fit (escaping never shrinks it), and is not encoded at all."""
    pointer = json.dumps(reference)
    if len(raw) + len(pointer) >= SQS_MESSAGE_LIMIT_BYTES:
        return pointer
    try:
        inlined = json.dumps({**reference, "body": raw.decode("utf-8")})  # ASCII: its length is its size
    except UnicodeDecodeError:  # not UTF-8: the processor reads S3 instead
        return pointer
    return inlined if len(inlined) <= SQS_MESSAGE_LIMIT_BYTES else pointer


def read_queued(message_body: str) -> QueuedWebhook:
    """The raw payload a webhook queue message refers to (inline, or from S3)."""
    message = json.loads(message_body)
    inline = message.get("body")
    raw = inline.encode("utf-8") if inline is not None else _read_object(message["bucket"], message["key"])
    return QueuedWebhook(s3_key=message["key"], sha256=message.get("sha256", ""), raw=raw)


def read_queued_if_present(message_body: str) -> QueuedWebhook | None:
    """As `read_queued`, or None when the raw object it points to is gone."""
    try:
        return read_queued(message_body)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise


def discard_raw(message_body: str) -> None:
    """Delete the raw payload a processed queue message refers to."""
    bucket, key = raw_location(message_body)
    aws_clients.client("s3").delete_object(Bucket=bucket, Key=key)


def raw_location(message_body: str) -> tuple[str, str]:
    """(bucket, key) of the raw payload a webhook queue message refers to."""
    message = json.loads(message_body)
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
