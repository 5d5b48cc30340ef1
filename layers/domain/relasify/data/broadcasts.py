"""Broadcasts: the broadcast item (what to send to whom, its status) and the broadcast queue. A
broadcast's recipients (the dedupe, and the batched claims and settlements of the worker's hot path)
are in relasify/data/broadcast_recipients.py, its sharded counters in relasify/data/broadcast_counters.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from pydantic import Field
from pynamodb.exceptions import UpdateError

from relasify import clock
from relasify.data import aws_clients
from relasify.data import models as m
from relasify.data.base import chunks, plain_value, query_page, utc
from relasify.data.broadcast_counters import COUNTER_SHARDS
from relasify.data.cursor import decode_cursor, encode_cursor
from relasify.data.ids import new_id
from relasify.data.records import Page, Record
from relasify.data.tx import is_condition_failure
from relasify.settings import get_settings

BroadcastStatus = Literal["queued", "scheduled", "running", "completed", "cancelled", "failed"]
ACTIVE_STATUSES: tuple[str, ...] = ("queued", "scheduled", "running")
SQS_MAX_DELAY_SECONDS = 900
EXPANSION_DONE = "done"  # the broadcast item's cursor once every audience page is claimed


class Broadcast(Record):
    id: str
    ws: str
    template_name: str
    language: str
    audience: dict[str, Any] = Field(default_factory=dict)
    parameters: list[Any] = Field(default_factory=list)
    header: dict[str, Any] | None = None
    scheduled_at: datetime | None = None
    status: str = "queued"
    expanded: bool = False  # the whole audience is claimed (the expansion cursor reached its end)
    total: int = 0
    counter_shards: int = COUNTER_SHARDS
    created_by: str | None = None
    cancelled_at: datetime | None = None
    completed_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


def _broadcast(item: m.BroadcastModel) -> Broadcast:
    return Broadcast(
        id=item.broadcast_id,
        ws=item.ws_id,
        template_name=item.template_name,
        language=item.language,
        audience=plain_value(item.audience) or {},
        parameters=plain_value(item.parameters) or [],
        header=plain_value(item.header) or None,
        scheduled_at=utc(item.scheduled_at),
        status=item.status,
        expanded=item.cursor == EXPANSION_DONE,
        total=int(item.total or 0),
        counter_shards=int(item.counter_shards or 1),
        created_by=item.created_by,
        cancelled_at=utc(item.cancelled_at),
        completed_at=utc(item.completed_at),
        created_at=utc(item.created_at),
        updated_at=utc(item.updated_at),
    )


def _meta_key(ws: str, broadcast_id: str) -> tuple[str, str]:
    return m.broadcast_pk(ws, broadcast_id), m.BroadcastModel.SK_VALUE


# --- broadcast item ----------------------------------------------------------------------------


def create_broadcast(
    ws: str,
    *,
    template_name: str,
    language: str,
    audience: dict[str, Any],
    parameters: list[Any],
    header: dict[str, Any] | None = None,
    scheduled_at: datetime | None,
    created_by: str | None,
) -> Broadcast:
    broadcast_id = new_id("bc")
    now = clock.now()
    item = m.BroadcastModel(
        *_meta_key(ws, broadcast_id),
        ws_id=ws,
        broadcast_id=broadcast_id,
        template_name=template_name,
        language=language,
        audience=audience,
        parameters=parameters,
        header=header,
        scheduled_at=scheduled_at,
        status="scheduled" if scheduled_at and scheduled_at > now else "queued",
        counter_shards=COUNTER_SHARDS,
        created_by=created_by,
    )
    item.gsi1pk = m.broadcasts_index_pk(ws)
    item.gsi1sk = f"{now.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{broadcast_id}"
    item.save(condition=m.BroadcastModel.pk.does_not_exist())
    return _broadcast(item)


def get_broadcast(ws: str, broadcast_id: str, *, consistent: bool = False) -> Broadcast | None:
    item = m.BroadcastModel.get_live(*_meta_key(ws, broadcast_id), consistent_read=consistent)
    return _broadcast(item) if item else None


def list_broadcasts(ws: str, *, limit: int = 50, cursor: str | None = None) -> Page[Broadcast]:
    scope = "broadcasts"
    page = query_page(
        m.BroadcastModel,
        m.broadcasts_index_pk(ws),
        index=m.BroadcastModel.gsi1,
        limit=max(1, min(limit, 100)),
        exclusive_start_key=decode_cursor(cursor, ws=ws, scope=scope),
        newest_first=True,
    )
    return Page(
        items=[_broadcast(i) for i in page.items],
        next_cursor=encode_cursor(page.last_evaluated_key, ws=ws, scope=scope),
    )


def transition(ws: str, broadcast_id: str, to: str, *, allowed_from: Iterable[str]) -> bool:
    """Move the broadcast to `to` if its status is one of `allowed_from` (one conditional write)."""
    model = m.BroadcastModel
    item = model(*_meta_key(ws, broadcast_id))
    actions: list[Any] = [model.status.set(to), model.touch()]
    if to == "cancelled":
        actions.append(model.cancelled_at.set(clock.now()))
    if to == "completed":
        actions.append(model.completed_at.set(clock.now()))
    try:
        item.update(actions=actions, condition=model.pk.exists() & model.status.is_in(*allowed_from))
    except UpdateError as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def add_total(ws: str, broadcast_id: str, count: int) -> None:
    if count:
        model = m.BroadcastModel
        model(*_meta_key(ws, broadcast_id)).update(actions=[model.total.add(count), model.touch()])


# --- queue ---------------------------------------------------------------------------------------


def reset_for_tests() -> None:
    aws_clients.reset()


def enqueue_jobs(jobs: list[dict[str, Any]], *, delay_seconds: int = 0) -> None:
    """Put broadcast jobs on the broadcast queue (batches of 10, SQS's limit)."""
    url = get_settings().broadcast_queue_url
    delay = max(0, min(int(delay_seconds), SQS_MAX_DELAY_SECONDS))
    for batch in chunks(jobs, 10):
        entries = [
            {"Id": str(i), "MessageBody": json.dumps(job, separators=(",", ":")), "DelaySeconds": delay}
            for i, job in enumerate(batch)
        ]
        response = aws_clients.client("sqs").send_message_batch(QueueUrl=url, Entries=entries)
        if response.get("Failed"):
            raise RuntimeError(f"{len(response['Failed'])} broadcast jobs were not enqueued")
