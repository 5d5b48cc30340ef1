"""Status webhooks (sent, delivered, read, failed) applied without reading the message and without
a transaction: what routes a status travels with it.

The route: `biz_opaque_callback_data` set on every send (Meta echoes it in each status webhook) is
`rls2:<ws>:<message id>:<contact id>:<broadcast id or ->:<yyyy-mm of the message>`. It is a claim,
never trusted by itself: the one write that applies the status is conditional on the message
matching it (same workspace by key, same contact, broadcast, month, direction and wamid), so a
wrong or stale callback writes nothing and the caller falls back to the wamid pointer.

The writes, each idempotent on its own, in this order:
1. one UpdateItem of the message, conditional on its rank being lower (statuses only move forward:
   duplicate and out-of-order statuses are no-ops). It records the seq of the change-feed event it
   is about to put (`event_seq`) and, for a billable status, claims billing (`billed_at`);
2. the `message.updated` event with that seq, then the billing record (key: workspace, month, wamid
   digest) when this write claimed billing; each a PutItem conditional on its key not existing
   (not one BatchWriteItem: the processor's role may not batch-write, which would allow deletes).
A crash after 1 leaves 2 missing; the redelivery's UpdateItem fails its rank condition and the
failure returns the stored message (ReturnValuesOnConditionCheckFailure: no read request), which
names the seq to put again and says whether billing was claimed; those puts are conditional on
their keys not existing, so nothing is doubled. Outside a transaction every item is billed once,
not twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError
from pynamodb.exceptions import PutError
from pynamodb.expressions.operand import Path

from relasify import clock
from relasify.data import changes
from relasify.data import models as m
from relasify.data.ids import new_id
from relasify.data.message_statuses import billing_record
from relasify.data.status_changes import BILLED_FLAG, StatusChange, StatusResult
from relasify.data.status_routes import StatusRoute
from relasify.data.tx import is_condition_failure

_STATUS_TIME_ATTRIBUTE = {"sent": "sent_at", "delivered": "delivered_at", "read": "read_at", "failed": "failed_at"}


# --- the write -----------------------------------------------------------------------------------


def apply_routed_status(route: StatusRoute, change: StatusChange) -> StatusResult | None:
    """Apply a status to the message its route names. None when the stored message does not match
    the route (wrong contact, broadcast, month or wamid): the caller locates it by wamid instead."""
    seq = new_id()
    applied, old = _update_message(route, change, seq)
    if applied:
        billed = change.billable and not _billing_claimed(old)
        _put_once(_event(route, seq))
        if billed:
            _put_once(billing_record(route.ws, route.month, route.message_id, change))
        return _result(route, "applied", advanced=True, billed=billed)
    if old is None or _is_expired(old):
        return StatusResult("missing")
    if not _matches(old, route, change):
        return None
    # Not moved forward: a duplicate or an older status. Complete what a run that died after its
    # message write left undone (both puts are by key: no-ops when they were done).
    recorded_seq = old.get("event_seq", {}).get("S")
    if old.get("status", {}).get("S") == change.status and recorded_seq and _recent(recorded_seq):
        _put_event(route, recorded_seq)
    billed = False
    if change.billable:
        if _billing_claimed(old):
            _put_billing(route, change)
        elif _claim_billing(route, change):
            _put_billing(route, change)
            billed = True
    return _result(route, "applied" if billed else "unchanged", billed=billed)


def _result(route: StatusRoute, outcome: Any, *, advanced: bool = False, billed: bool = False) -> StatusResult:
    return StatusResult(
        outcome,
        advanced=advanced,
        billed=billed,
        contact_id=route.contact_id,
        message_id=route.message_id,
        broadcast_id=route.broadcast_id,
    )


def _route_condition(route: StatusRoute, change: StatusChange) -> Any:
    model = m.MessageModel
    broadcast = model.broadcast_id.does_not_exist()
    if route.broadcast_id is not None:
        broadcast = model.broadcast_id == route.broadcast_id
    return (
        model.pk.exists()
        & model.live_condition()
        & (model.direction == "out")
        & (model.contact_id == route.contact_id)
        & broadcast
        & Path("message_at").startswith(route.month)
        & (model.wamid.does_not_exist() | (model.wamid == change.wamid))
    )


def _update_message(route: StatusRoute, change: StatusChange, seq: str) -> tuple[bool, dict[str, Any] | None]:
    """The conditional UpdateItem; (applied, the stored item before it: raw, or None if absent)."""
    model = m.MessageModel
    actions: list[Any] = [
        model.touch(),
        model.status.set(change.status),
        model.status_rank.set(change.rank),
        getattr(model, _STATUS_TIME_ATTRIBUTE[change.status]).set(change.at),
        model.event_seq.set(seq),
        model.wamid.set(model.wamid | change.wamid),
    ]
    if change.status == "failed":
        actions += [
            model.error_code.set(change.error_code) if change.error_code is not None else model.error_code.remove(),
            model.error_title.set(change.error_title) if change.error_title else model.error_title.remove(),
            model.error_details.set(change.error_details) if change.error_details else model.error_details.remove(),
        ]
    if change.pricing:
        actions.append(model.pricing.set(change.pricing))
    if change.billable:
        actions.append(model.billed_at.set(model.billed_at | _epoch(change.at)))
    condition = _route_condition(route, change) & (model.status_rank < change.rank)
    # The item before the update only matters to a billable status (was billing claimed already?).
    return _conditional_update(route, actions, condition, echo=change.billable)


def _claim_billing(route: StatusRoute, change: StatusChange) -> bool:
    """A billable status that does not move the message (it came after a later one): claim billing
    alone, once."""
    model = m.MessageModel
    actions: list[Any] = [model.touch(), model.billed_at.set(_epoch(change.at))]
    if change.pricing:
        actions.append(model.pricing.set(change.pricing))
    condition = _route_condition(route, change) & model.billed_at.does_not_exist() & ~model.flags.contains(BILLED_FLAG)
    applied, _old = _conditional_update(route, actions, condition, echo=False)
    return applied


def _conditional_update(
    route: StatusRoute, actions: list[Any], condition: Any, *, echo: bool
) -> tuple[bool, dict[str, Any] | None]:
    """One UpdateItem; on a refusal the stored item comes back with the error (no read request)."""
    table = m.MessageModel._get_connection()
    kwargs = table.connection.get_operation_kwargs(
        table.table_name,
        m.message_pk(route.ws, route.message_id),
        m.MessageModel.SK_VALUE,
        actions=actions,
        condition=condition,
        return_values="ALL_OLD" if echo else "NONE",
        return_values_on_condition_failure="ALL_OLD",
    )
    try:
        answer = table.connection.dispatch("UpdateItem", kwargs)
    except ClientError as exc:
        refused, stored = _condition_failure(exc)
        if not refused:
            raise
        return False, stored
    return True, answer.get("Attributes")


def _condition_failure(exc: BaseException) -> tuple[bool, dict[str, Any] | None]:
    """(refused by the condition, the stored item). pynamodb re-raises botocore's error without the
    item; the original, with it, is the cause."""
    refused, stored = False, None
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ClientError):
            refused |= seen.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
            stored = stored or seen.response.get("Item")
        seen = seen.__cause__
    return refused, stored


def _matches(old: dict[str, Any], route: StatusRoute, change: StatusChange) -> bool:
    def text(name: str) -> str | None:
        value = old.get(name)
        return value.get("S") if value else None

    return (
        text("direction") == "out"
        and text("contact_id") == route.contact_id
        and text("broadcast_id") == route.broadcast_id
        and (text("message_at") or "").startswith(route.month)
        and text("wamid") in (None, change.wamid)
    )


def _is_expired(old: dict[str, Any]) -> bool:
    expires = old.get("expires_at", {}).get("N")
    return expires is not None and int(expires) <= clock.epoch()


def _billing_claimed(old: dict[str, Any] | None) -> bool:
    if not old:
        return False
    flags = [v.get("S") for v in old.get("flags", {}).get("L", [])]
    return "billed_at" in old or BILLED_FLAG in flags


def _recent(seq: str) -> bool:
    """An event older than the feed keeps events is not put again (it would outlive its peers)."""
    return clock.now() - changes.seq_time(seq) < changes.KEEP


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


# --- the puts beside it ------------------------------------------------------------------------------


def _event(route: StatusRoute, seq: str) -> changes.ChangeEventModel:
    return changes.event_item(route.ws, "message.updated", route.contact_id, route.message_id, seq=seq)


def _put_event(route: StatusRoute, seq: str) -> None:
    _put_once(_event(route, seq))


def _put_billing(route: StatusRoute, change: StatusChange) -> None:
    _put_once(billing_record(route.ws, route.month, route.message_id, change))


def _put_once(item: Any) -> None:
    try:
        item.save(condition=type(item).pk.does_not_exist())
    except PutError as exc:
        if not is_condition_failure(exc):
            raise
