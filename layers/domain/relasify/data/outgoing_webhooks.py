"""Outgoing webhooks (SPEC section 5c): subscriptions, the delivery log and the delivery queue.

Items live in the workspace's own partition, so the closure stamp (`data/sweep.workspace_account_keys`
walks `WS#<ws>`) reaches them with no extra code:
- a subscription: PK `WS#<ws>`, SK `WEBHOOK#<id>`, account data; its signing secret is stored
  KMS-encrypted (encryption context: workspace + purpose), because signing needs the plaintext;
- a delivery attempt: PK `WS#<ws>#WHLOG#<hook id>`, SK `<attempt id>`, usage data (12 months, its
  own partition kind so `data/sweep.classify` knows it from its key): the event id and type, status
  code, duration, attempt number and next retry; never the body or a resource id.
The queue carries ids only (the event's seq, type and resource ids): the worker builds the body
when it delivers, from what the API would return then.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel
from pynamodb.attributes import BooleanAttribute, ListAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute

from relasify import clock
from relasify.data import aws_clients, kms_tokens
from relasify.data import models as m
from relasify.data.base import TableModel, query_all, query_page
from relasify.data.cursor import decode_cursor, encode_cursor
from relasify.data.ids import new_id
from relasify.data.records import Page
from relasify.retention import DataClass
from relasify.settings import get_settings

HOOK_SK_PREFIX = "WEBHOOK#"
MAX_PAGE = 100
SQS_BATCH = 10


class SubscriptionModel(TableModel):
    """PK `WS#<ws>`, SK `WEBHOOK#<id>`."""

    data_class: ClassVar[DataClass] = DataClass.ACCOUNT

    ws_id = UnicodeAttribute()
    hook_id = UnicodeAttribute()
    url = UnicodeAttribute()
    events = ListAttribute(of=UnicodeAttribute, default=list)
    secret_ciphertext = UnicodeAttribute()
    enabled = BooleanAttribute(default=True)
    disabled_at = UTCDateTimeAttribute(null=True)
    disabled_reason = UnicodeAttribute(null=True)
    created_by = UnicodeAttribute(null=True)


class DeliveryAttemptModel(TableModel):
    """PK `WS#<ws>#WHLOG#<hook id>`, SK `<attempt id>`: one POST (or skip) of one event."""

    data_class: ClassVar[DataClass] = DataClass.USAGE

    ws_id = UnicodeAttribute()
    hook_id = UnicodeAttribute()
    attempt_id = UnicodeAttribute()
    event_id = UnicodeAttribute()
    event_type = UnicodeAttribute()
    attempt = NumberAttribute()
    outcome = UnicodeAttribute()  # delivered | retrying | failed | skipped
    status_code = NumberAttribute(null=True)
    error = UnicodeAttribute(null=True)  # timeout | connection | refused-address | redirect ...
    duration_ms = NumberAttribute(null=True)
    next_retry_at = UTCDateTimeAttribute(null=True)


class Subscription(BaseModel):
    id: str
    ws: str
    url: str
    events: list[str]
    enabled: bool
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    created_by: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class DeliveryAttempt(BaseModel):
    id: str
    event_id: str
    event_type: str
    attempt: int
    outcome: str
    status_code: int | None = None
    error: str | None = None
    duration_ms: int | None = None
    next_retry_at: datetime | None = None
    created_at: datetime | None = None


def log_pk(ws: str, hook_id: str) -> str:
    return f"{m.ws_pk(ws)}#WHLOG#{hook_id}"


def _hook_key(ws: str, hook_id: str) -> tuple[str, str]:
    return m.ws_pk(ws), f"{HOOK_SK_PREFIX}{hook_id}"


def _subscription(item: SubscriptionModel) -> Subscription:
    return Subscription(
        id=item.hook_id,
        ws=item.ws_id,
        url=item.url,
        events=list(item.events or []),
        enabled=bool(item.enabled),
        disabled_at=item.disabled_at,
        disabled_reason=item.disabled_reason,
        created_by=item.created_by,
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


# --- subscriptions ----------------------------------------------------------------------------------


def create(ws: str, *, url: str, events: list[str], secret: str, actor: str | None) -> Subscription:
    hook_id = new_id()
    item = SubscriptionModel(
        *_hook_key(ws, hook_id),
        ws_id=ws,
        hook_id=hook_id,
        url=url,
        events=events,
        secret_ciphertext=kms_tokens.encrypt_token(ws, secret, purpose=kms_tokens.WEBHOOK_SECRET),
        enabled=True,
        created_by=actor,
    )
    item.save(condition=SubscriptionModel.pk.does_not_exist())
    return _subscription(item)


def get(ws: str, hook_id: str) -> Subscription | None:
    item = SubscriptionModel.get_live(*_hook_key(ws, hook_id), consistent_read=True)
    return _subscription(item) if item else None


def secret_of(ws: str, hook_id: str) -> str | None:
    item = SubscriptionModel.get_live(*_hook_key(ws, hook_id), consistent_read=True)
    if item is None:
        return None
    return kms_tokens.decrypt_token(ws, item.secret_ciphertext, purpose=kms_tokens.WEBHOOK_SECRET)


def list_for_workspace(ws: str) -> list[Subscription]:
    """Every subscription of the workspace (a handful: one Query)."""
    items = query_all(SubscriptionModel, m.ws_pk(ws), SubscriptionModel.sk.startswith(HOOK_SK_PREFIX))
    return [_subscription(i) for i in items]


def delete(ws: str, hook_id: str) -> bool:
    item = SubscriptionModel.get_live(*_hook_key(ws, hook_id), consistent_read=True)
    if item is None:
        return False
    item.delete()
    return True


def set_enabled(ws: str, hook_id: str, enabled: bool, *, reason: str | None = None) -> Subscription | None:
    """Enable (clears the disabled mark) or disable (with a reason) a subscription. None: not found."""
    model = SubscriptionModel
    item = model(*_hook_key(ws, hook_id))
    actions = [model.enabled.set(enabled), model.touch()]
    if enabled:
        actions += [model.disabled_at.remove(), model.disabled_reason.remove()]
    else:
        actions += [model.disabled_at.set(clock.now()), model.disabled_reason.set(reason or "disabled")]
    try:
        item.update(actions=actions, condition=model.pk.exists() & model.live_condition())
    except Exception as exc:
        from relasify.data.tx import is_condition_failure

        if is_condition_failure(exc):
            return None
        raise
    return _subscription(item)


# --- the delivery log -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    ws: str
    hook_id: str
    event_id: str
    event_type: str
    attempt: int
    outcome: str
    status_code: int | None = None
    error: str | None = None
    duration_ms: int | None = None
    next_retry_at: datetime | None = None


def record_attempt(record: AttemptRecord) -> None:
    attempt_id = new_id()
    DeliveryAttemptModel(
        log_pk(record.ws, record.hook_id),
        attempt_id,
        ws_id=record.ws,
        hook_id=record.hook_id,
        attempt_id=attempt_id,
        event_id=record.event_id,
        event_type=record.event_type,
        attempt=record.attempt,
        outcome=record.outcome,
        status_code=record.status_code,
        error=record.error,
        duration_ms=record.duration_ms,
        next_retry_at=record.next_retry_at,
    ).save()


def list_attempts(ws: str, hook_id: str, *, limit: int, cursor: str | None) -> Page[DeliveryAttempt]:
    """The subscription's attempts, newest first."""
    scope = f"webhook-deliveries:{hook_id}"
    page = query_page(
        DeliveryAttemptModel,
        log_pk(ws, hook_id),
        None,
        limit=max(1, min(limit, MAX_PAGE)),
        exclusive_start_key=decode_cursor(cursor, ws=ws, scope=scope),
        newest_first=True,
    )
    items = [
        DeliveryAttempt(
            id=i.attempt_id,
            event_id=i.event_id,
            event_type=i.event_type,
            attempt=int(i.attempt),
            outcome=i.outcome,
            status_code=int(i.status_code) if i.status_code is not None else None,
            error=i.error,
            duration_ms=int(i.duration_ms) if i.duration_ms is not None else None,
            next_retry_at=i.next_retry_at,
            created_at=i.created_at,
        )
        for i in page.items
    ]
    return Page(items=items, next_cursor=encode_cursor(page.last_evaluated_key, ws=ws, scope=scope))


# --- the delivery queue -----------------------------------------------------------------------------


def enqueue(jobs: list[dict[str, Any]], *, delay_seconds: int = 0) -> None:
    """Send delivery jobs (ids only) to the outgoing-webhook queue, ten per SendMessageBatch."""
    url = get_settings().outgoing_webhook_queue_url
    sqs = aws_clients.client("sqs")
    for start in range(0, len(jobs), SQS_BATCH):
        batch = jobs[start : start + SQS_BATCH]
        answer = sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(n), "MessageBody": json.dumps(job, separators=(",", ":")), "DelaySeconds": delay_seconds}
                for n, job in enumerate(batch)
            ],
        )
        if answer.get("Failed"):
            # The stream consumer's batch fails and is retried: a job may then be sent twice (at least once).
            raise RuntimeError(f"{len(answer['Failed'])} webhook deliveries were not enqueued")
