"""Outgoing-webhook delivery (SPEC 5c): fan-out of change-feed events to the matching subscriptions,
and one delivery attempt per queue message.

- Fan-out (the stream consumer, `functions/realtime/publisher.py`): one queue job per (subscription,
  event) for the workspace's enabled subscriptions to that event type. Jobs carry ids only.
- Delivery (`functions/integrations/webhook_delivery.py`): the body is built NOW from the resource
  as the API returns it; a resource gone since (deleted, erased) is not delivered (`skipped` in the
  log): nothing naming an erased contact leaves after the erasure. The event id is `evt_<seq>` of
  the change-feed item, the same on every retry and for the socket's event of the same change.
- Retries: a non-2xx answer, a timeout or a refused address re-enqueues the job with an SQS delay
  (first `outgoing_webhook_first_retry_seconds`, doubling, at most 900 s) until the event is 24 h
  old; then the endpoint is disabled (an admin re-enables it). No function sleeps.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from relasify import clock
from relasify.data import changes as feed
from relasify.data import outgoing_webhooks as store
from relasify.data import webhook_http
from relasify.observability import logger
from relasify.services.webhook_signing import HEADER, header_value
from relasify.settings import get_settings

RETRY_FOR = timedelta(hours=24)
MAX_DELAY_SECONDS = 900  # SQS DelaySeconds' maximum
JOB_VERSION = 1
USER_AGENT = "Relasify-Webhooks/1"


def event_id(seq: str) -> str:
    return f"evt_{seq}"


def retry_delay_seconds(attempt: int) -> int:
    """The delay after failed attempt `attempt` (1-based): first, 2x, 4x ... capped at 900 s."""
    first = get_settings().outgoing_webhook_first_retry_seconds
    return int(min(MAX_DELAY_SECONDS, first * 2 ** min(attempt - 1, 20)))


# --- fan-out -------------------------------------------------------------------------------------------


def fan_out(events: Iterable[feed.ChangeEvent]) -> int:
    """Enqueue one job per (enabled subscription, event of a type it subscribed to). Returns jobs."""
    by_ws: dict[str, list[feed.ChangeEvent]] = defaultdict(list)
    for event in events:
        by_ws[event.workspace_id].append(event)
    jobs: list[dict[str, Any]] = []
    for ws, ws_events in by_ws.items():
        subscriptions = [s for s in store.list_for_workspace(ws) if s.enabled]
        for event in ws_events:
            for subscription in subscriptions:
                if event.type in subscription.events:
                    jobs.append(_job(subscription.id, event))
    if jobs:
        store.enqueue(jobs)
    return len(jobs)


def _job(hook_id: str, event: feed.ChangeEvent) -> dict[str, Any]:
    job = {
        "v": JOB_VERSION,
        "ws": event.workspace_id,
        "hook_id": hook_id,
        "seq": event.seq,
        "type": event.type,
        "conversation_id": event.conversation_id,
        "message_id": event.message_id,
        "contact_id": event.contact_id,
        "attempt": 1,
    }
    return {k: v for k, v in job.items() if v is not None}


# --- the resource, as the API returns it now ------------------------------------------------------------


def resource_now(ws: str, event_type: str, job: dict[str, Any]) -> dict[str, Any] | None:
    """The event's `data`, read at delivery time; None when the resource is gone."""
    if event_type in ("message.created", "message.updated", "note.created"):
        from relasify.data import messages as message_store
        from relasify.schemas.inbox import thread_item

        message = message_store.get_message(ws, str(job.get("message_id") or ""), consistent=True)
        return thread_item(message).model_dump(mode="json") if message is not None else None
    if event_type == "conversation.updated":
        from relasify.services.inbox import conversation_view

        view = conversation_view(ws, str(job.get("conversation_id") or ""))
        return view.model_dump(mode="json") if view is not None else None
    if event_type in feed.CONTACT_TYPES:
        from relasify.data.contacts import contact_repository
        from relasify.schemas.contacts import ContactOut

        contact = contact_repository().get(ws, str(job.get("contact_id") or ""))
        return ContactOut.model_validate(contact, from_attributes=True).model_dump(mode="json") if contact else None
    return None


def event_body(job: dict[str, Any], data: dict[str, Any]) -> bytes:
    body = {
        "id": event_id(job["seq"]),
        "type": job["type"],
        "created_at": feed.seq_time(job["seq"]).isoformat().replace("+00:00", "Z"),
        "workspace_id": job["ws"],
        "data": data,
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


# --- one delivery attempt --------------------------------------------------------------------------------


def deliver(job: dict[str, Any]) -> str:
    """Attempt one delivery; returns the outcome (delivered, retrying, failed, skipped, dropped)."""
    ws, hook_id, attempt = str(job["ws"]), str(job["hook_id"]), int(job.get("attempt") or 1)
    log = {"ws": ws, "webhook_id": hook_id, "event_id": event_id(job["seq"]), "attempt": attempt}
    subscription = store.get(ws, hook_id)
    if subscription is None:
        logger.info("webhook delivery dropped: subscription deleted", extra=log)
        return "dropped"
    record = _recorder(ws, hook_id, job, attempt)
    if not subscription.enabled:
        record("skipped", error="endpoint-disabled")
        return "skipped"
    data = resource_now(ws, str(job["type"]), job)
    if data is None:
        record("skipped", error="resource-gone")
        logger.info("webhook delivery skipped: resource gone", extra=log)
        return "skipped"
    secret = store.secret_of(ws, hook_id)
    if secret is None:  # pragma: no cover - deleted between the two reads
        return "dropped"
    body = event_body(job, data)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        HEADER: header_value(secret, clock.epoch(), body),
        "X-Relasify-Event-Id": event_id(job["seq"]),
        "X-Relasify-Event-Type": str(job["type"]),
    }
    result = webhook_http.post(subscription.url, body, headers)
    facts = {"status_code": result.status_code, "error": result.error, "duration_ms": result.duration_ms}
    if result.ok:
        record("delivered", **facts)
        logger.info("webhook delivered", extra={**log, **facts})
        return "delivered"
    now = clock.now()
    deadline = feed.seq_time(job["seq"]) + RETRY_FOR
    if now >= deadline:
        record("failed", **facts)
        store.set_enabled(ws, hook_id, False, reason="failing for 24 hours")
        logger.warning("webhook endpoint disabled after 24 h of failures", extra={**log, **facts})
        return "failed"
    delay = retry_delay_seconds(attempt)
    store.enqueue([{**job, "attempt": attempt + 1}], delay_seconds=delay)
    record("retrying", next_retry_at=now + timedelta(seconds=delay), **facts)
    logger.info("webhook delivery failed; retrying", extra={**log, **facts, "delay_seconds": delay})
    return "retrying"


def _recorder(ws: str, hook_id: str, job: dict[str, Any], attempt: int) -> Any:
    def record(outcome: str, **facts: Any) -> None:
        store.record_attempt(
            store.AttemptRecord(
                ws=ws,
                hook_id=hook_id,
                event_id=event_id(job["seq"]),
                event_type=str(job["type"]),
                attempt=attempt,
                outcome=outcome,
                **facts,
            )
        )

    return record


def deliver_all(bodies: list[str]) -> list[str | Exception]:
    """Attempt a batch's deliveries in parallel (each bounded by the 10 s timeout), so one dead
    endpoint costs the batch at most one timeout, not one per job. Per job: the outcome, or the
    exception (a malformed job, a store fault), which the caller reports as that record's failure."""
    from concurrent.futures import ThreadPoolExecutor

    def one(body: str) -> str | Exception:
        try:
            job = json.loads(body)
            if not isinstance(job, dict) or job.get("v") != JOB_VERSION:
                logger.warning("webhook delivery job not understood; dropped")
                return "dropped"
            return deliver(job)
        except Exception as exc:  # reported per record: SQS retries it, then the DLQ
            return exc

    if len(bodies) <= 1:
        return [one(b) for b in bodies]
    with ThreadPoolExecutor(max_workers=min(len(bodies), 10)) as pool:
        return list(pool.map(one, bodies))
