"""The last try of a webhook queue message before the DLQ: its body goes to S3, a pointer to the DLQ.

An inline message (v2) is the only copy of a delivery. Left to SQS's redrive, a message failing its
last receive would move to the DLQ as it is and vanish with the DLQ's 14-day retention, while SPEC
section 7 keeps raw webhook payloads for 90 days. So on the last receive (`maxReceiveCount` of the
queue's redrive policy; `Settings.webhook_max_receives` here, a template test keeps them equal) the
processor writes the body to `raw-webhooks/` (lifecycle: the 90-day window), puts a v2 pointer in
the webhook DLQ and reports the record done, so SQS deletes the inline original. The DLQ's redrive and the
erasure purge (`services/dead_letters.py`) read pointers as they always have. If any step fails the
record stays failed and SQS moves the inline message to the DLQ itself: nothing is lost, only the
90-day copy is missing for that one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from relasify import clock
from relasify.data import dead_letters, webhook_inbox
from relasify.data.failures import AWS_CALL_FAILURES
from relasify.observability import logger
from relasify.settings import get_settings


def _receive_count(record: Mapping[str, Any]) -> int:
    try:
        return int((record.get("attributes") or {}).get("ApproximateReceiveCount", "1"))
    except (TypeError, ValueError):
        return 1


def park_last_tries(records: Iterable[Mapping[str, Any]], failed_ids: set[str]) -> set[str]:
    """Park the failed inline records on their last receive (see the module docstring); returns the
    ids of those parked, to report as done."""
    settings = get_settings()
    dlq_url, last = settings.webhook_dlq_url, settings.webhook_max_receives
    parked: set[str] = set()
    for record in records:
        record_id = str(record.get("messageId", ""))
        if record_id not in failed_ids or _receive_count(record) < last or not dlq_url:
            continue
        body = str(record.get("body", ""))
        try:
            if webhook_inbox.raw_location(body) is not None:
                continue  # a pointer already: SQS's redrive moves it, its copy stays for 90 days
            queued = webhook_inbox.read_queued(body)  # inline: no S3 read
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # malformed: SQS moves it as it is
        try:
            pointer, _ = webhook_inbox.keep_raw(body, queued, settings.media_bucket, clock.now())
            dead_letters.put(dlq_url, pointer)
        except AWS_CALL_FAILURES as exc:
            logger.warning(
                "last try not parked; SQS moves the inline message to the DLQ",
                extra={"message_id": record_id, "error_type": type(exc).__name__},
            )
            continue
        logger.warning("webhook parked in the DLQ with a raw copy", extra={"message_id": record_id})
        parked.add(record_id)
    return parked
