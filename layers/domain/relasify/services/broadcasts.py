"""Broadcasts: one template to an audience, at the number's throughput (SPEC section 5). This module is
the API side: create (checked against the template and the schedule bounds), read, list and cancel; it
enqueues the broadcast's `start` job, and services/broadcast_pipeline.py runs the jobs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from relasify import clock
from relasify.data import broadcast_counters as counter_store
from relasify.data import broadcasts as store
from relasify.data import templates as template_store
from relasify.data.broadcast_counters import Counts
from relasify.data.broadcasts import Broadcast
from relasify.data.templates import Template
from relasify.errors import Conflict, NotFound, ValidationFailed
from relasify.services import audit, delivery, sending

# scheduled_at: a little in the past is clock skew (sent now); more is a mistake (a wrong year or offset)
# that would otherwise message the whole audience at once. The far bound keeps the waiting `start` job's
# 15-minute hops through the queue finite (90 days: 8,640 hops).
SCHEDULE_PAST_SKEW = timedelta(minutes=5)
SCHEDULE_HORIZON = timedelta(days=90)


@dataclass(frozen=True, slots=True)
class BroadcastView:
    broadcast: Broadcast
    counts: Counts


# --- API -----------------------------------------------------------------------------------------


def create_broadcast(
    ws: str,
    *,
    template: str,
    language: str,
    audience: dict[str, Any],
    parameters: list[dict[str, Any]],
    header: dict[str, Any] | None = None,
    scheduled_at: datetime | None,
    actor_id: str | None,
) -> BroadcastView:
    _check_schedule(scheduled_at)
    delivery.connection_for_sending(ws)
    stored = template_store.get_template(ws, template, language)
    if stored is None or stored.status != "APPROVED":
        raise delivery.refuse("template-not-approved", f"Template {template} ({language}) is not APPROVED.")
    # No definition (known only from a webhook, not synced yet): Meta checks the parameters.
    if stored.components:
        _check_parameters(stored, parameters, header)
    broadcast = store.create_broadcast(
        ws,
        template_name=template,
        language=language,
        audience=audience,
        parameters=parameters,
        header=header,
        scheduled_at=scheduled_at,
        created_by=actor_id,
    )
    store.enqueue_jobs([broadcast_job("start", broadcast)], delay_seconds=delay_until(scheduled_at))
    audit.record(ws, "broadcast.created", actor_id=actor_id, target_ids=[broadcast.id])
    return BroadcastView(broadcast, Counts())


def _check_parameters(template: Template, parameters: list[dict[str, Any]], header: dict[str, Any] | None) -> None:
    expected = sending.expected_parameters(template)
    wanted_header = sending.header_parameter_kind(template)
    given_header = None if header is None else str(header.get("type", "text"))
    problem = None
    if expected.get("body", 0) != len(parameters):
        problem = f"expects {expected.get('body', 0)} body parameters; got {len(parameters)}"
    elif wanted_header == "location":
        problem = "has a location header, which broadcasts do not fill"
    elif wanted_header != given_header:
        wants = f"a header parameter of type {wanted_header}" if wanted_header else "no header parameter"
        gets = f"type {given_header}" if given_header else "none"
        problem = f"takes {wants}; got {gets}"
    if problem is not None:
        raise delivery.refuse(
            "template-not-approved",
            f"Template {template.name} ({template.language}) {problem}.",
            status=422,
            expected_parameters=expected,
        )


def _check_schedule(scheduled_at: datetime | None) -> None:
    if scheduled_at is None:
        return
    now = clock.now()
    if scheduled_at < now - SCHEDULE_PAST_SKEW:
        detail, message = "scheduled_at lies in the past.", "a time in the past would send now: leave it out"
    elif scheduled_at > now + SCHEDULE_HORIZON:
        detail, message = "scheduled_at is too far ahead.", f"at most {SCHEDULE_HORIZON.days} days from now"
    else:
        return
    raise ValidationFailed(
        detail, errors=[{"location": "/scheduled_at", "in": "body", "message": message, "type": "value_error"}]
    )


def get_broadcast(ws: str, broadcast_id: str) -> BroadcastView:
    broadcast = store.get_broadcast(ws, broadcast_id, consistent=True)
    if broadcast is None:
        raise NotFound("Broadcast not found")
    return BroadcastView(broadcast, counter_store.counts(ws, broadcast_id))


def list_broadcasts(ws: str, *, limit: int, cursor: str | None) -> Any:
    return store.list_broadcasts(ws, limit=limit, cursor=cursor)


def cancel_broadcast(ws: str, broadcast_id: str, *, actor_id: str | None) -> BroadcastView:
    """Stop a broadcast: messages already handed to Meta stay sent; queued ones are skipped."""
    if store.get_broadcast(ws, broadcast_id) is None:
        raise NotFound("Broadcast not found")
    if not store.transition(ws, broadcast_id, "cancelled", allowed_from=store.ACTIVE_STATUSES):
        current = store.get_broadcast(ws, broadcast_id, consistent=True)
        raise Conflict(f"The broadcast is {current.status if current else 'gone'} and cannot be cancelled.")
    audit.record(ws, "broadcast.cancelled", actor_id=actor_id, target_ids=[broadcast_id])
    return get_broadcast(ws, broadcast_id)


# --- broadcast queue jobs ------------------------------------------------------------------------


def broadcast_job(kind: str, broadcast: Broadcast, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "ws": broadcast.ws, "broadcast_id": broadcast.id, **extra}


def delay_until(when: datetime | None) -> int:
    if when is None:
        return 0
    return max(0, min(store.SQS_MAX_DELAY_SECONDS, math.ceil((when - clock.now()).total_seconds())))
