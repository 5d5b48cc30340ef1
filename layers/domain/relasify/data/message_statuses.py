"""Statuses applied to stored messages: the conditional status update with its billing record
and change-feed event, the batched reads of one delivery, and the statuses that arrived before
their wamid was known (pending items, applied by `relasify.services.statuses`).

Exactly-once: `status_rank` strictly increases (sent 1 < delivered 2 < read 3 < failed 4), so a
duplicate or stale status fails the condition; a billable status records billing in the same
transaction, guarded by the message's `billed` flag and `attribute_not_exists` on the record.
The usual path for statuses whose callback data carries the route is `relasify.data.status_writes`
(no message read); this module serves older callback data and the pending statuses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pynamodb.exceptions import PutError, TransactWriteError, UpdateError

from relasify import clock
from relasify.data import changes
from relasify.data import models as m
from relasify.data.base import BATCH_GET_MAX_KEYS, chunks, plain_value, query_all, transaction, utc
from relasify.data.ids import new_id
from relasify.data.messages import MessageLocation, is_write_conflict, locate_wamid, location_of
from relasify.data.status_changes import BILLED_FLAG, StatusChange, StatusResult
from relasify.data.tx import is_condition_failure

_STATUS_TIME_ATTRIBUTE = {"sent": "sent_at", "delivered": "delivered_at", "read": "read_at", "failed": "failed_at"}
# Optimistic retries when a concurrent writer changed the message between our read and write.
_MAX_ATTEMPTS = 4


def _billing_month(message: m.MessageModel, change: StatusChange) -> str:
    anchor = message.message_at or message.created_at or change.at
    return utc(anchor).strftime("%Y-%m")  # type: ignore[union-attr]


class StatusBatch:
    """Consistent reads for the statuses of one delivery, fetched with BatchGetItem (100 keys a
    request) instead of one GetItem per status: wamid pointers of statuses without callback data,
    and the messages of billable statuses. Only reads: every write stays conditional, so a
    prefetched copy that went stale only costs a re-read. Each message copy is used once."""

    def __init__(self) -> None:
        self._pointers: dict[str, MessageLocation | None] = {}
        self._messages: dict[tuple[str, str], m.MessageModel] = {}

    def prefetch(
        self, pointer_wamids: Iterable[str], message_wamids: Iterable[str], locations: Iterable[MessageLocation]
    ) -> None:
        """Pointers of `pointer_wamids`; messages of `message_wamids` (through their pointers) and at
        `locations` (named by callback data)."""
        wanted = sorted({w for w in [*pointer_wamids, *message_wamids] if w not in self._pointers})
        for chunk in chunks(wanted, BATCH_GET_MAX_KEYS):
            found = {}
            for pointer in m.WamidPointerModel.batch_get(
                [(m.wamid_pk(w), m.WamidPointerModel.SK_VALUE) for w in chunk], consistent_read=True
            ):
                if not pointer.is_expired:
                    found[pointer.wamid] = location_of(pointer)
            for wamid in chunk:
                self._pointers[wamid] = found.get(wamid)
        # A pointer that carries the route needs no message read (relasify.data.status_writes).
        via_pointers = [loc for w in message_wamids if (loc := self._pointers.get(w)) and loc.route is None]
        keys = sorted({(loc.ws, loc.message_id) for loc in [*via_pointers, *locations] if loc} - set(self._messages))
        for chunk in chunks(keys, BATCH_GET_MAX_KEYS):
            for item in m.MessageModel.batch_get(
                [(m.message_pk(ws, mid), m.MessageModel.SK_VALUE) for ws, mid in chunk], consistent_read=True
            ):
                if not item.is_expired:
                    self._messages[(item.ws_id, item.message_id)] = item

    def locate(self, wamid: str) -> MessageLocation | None:
        if wamid in self._pointers:
            return self._pointers[wamid]
        return locate_wamid(wamid)

    def take_message(self, ws: str, message_id: str) -> m.MessageModel | None:
        return self._messages.pop((ws, message_id), None)


def apply_status(ws: str, message_id: str, change: StatusChange, *, batch: StatusBatch | None = None) -> StatusResult:
    """Move a message's status forward and record billing, in at most one write request.

    The message is read first (consistently; from `batch` when it was prefetched) for its
    conversation (the change-feed event names it) and to know whether it was billed already. A
    status that moves it forward is one transaction: the message update, its `message.updated`
    event (relasify.data.changes) and the billing record when due. A billing-only change is one
    conditional UpdateItem, or the transaction with the billing record; a duplicate or stale status
    costs no write. A condition failure means a concurrent writer (or an earlier status of the same
    batch) got there first: re-read and decide again.
    """
    model = m.MessageModel
    prefetched = batch.take_message(ws, message_id) if batch is not None else None
    for _ in range(_MAX_ATTEMPTS):
        if prefetched is not None:
            item, prefetched = prefetched, None
        else:
            item = model.get_live(m.message_pk(ws, message_id), model.SK_VALUE, consistent_read=True)
        if item is None:
            return StatusResult("missing")
        rank = int(item.status_rank or 0)
        advance = change.rank > rank
        flags = list(item.flags or [])
        bill = change.billable and BILLED_FLAG not in flags and item.billed_at is None
        if not advance and not bill:
            return StatusResult("unchanged", contact_id=item.contact_id, message_id=message_id)
        actions: list[Any] = [model.touch()]
        condition: Any = model.pk.exists()
        seq = new_id() if advance and item.contact_id else None
        if advance:
            actions += _status_actions(change)
            if seq is not None:  # the seq of its event, as the routed path records it (status_writes)
                actions.append(model.event_seq.set(seq))
            condition &= model.status_rank < change.rank
            if item.wamid is None:
                actions.append(model.wamid.set(change.wamid))
        if change.pricing:
            actions.append(model.pricing.set(change.pricing))
        try:
            if bill:
                actions.append(model.flags.set((model.flags | []).append([BILLED_FLAG])))
                condition &= ~model.flags.contains(BILLED_FLAG) & model.billed_at.does_not_exist()
            if bill or advance:
                _update_in_transaction(item, actions, condition, change, ws, bill=bill, event_seq=seq)
            else:
                item.update(actions=actions, condition=condition)
        except (UpdateError, TransactWriteError) as exc:
            if is_write_conflict(exc):
                continue
            raise
        return StatusResult(
            "applied",
            advanced=advance,
            billed=bill,
            contact_id=item.contact_id,
            message_id=message_id,
            broadcast_id=item.broadcast_id,
        )
    return StatusResult("unchanged")


def _status_actions(change: StatusChange) -> list[Any]:
    model = m.MessageModel
    actions: list[Any] = [
        model.status.set(change.status),
        model.status_rank.set(change.rank),
        getattr(model, _STATUS_TIME_ATTRIBUTE[change.status]).set(change.at),
    ]
    if change.status == "failed":
        actions += [
            model.error_code.set(change.error_code) if change.error_code is not None else model.error_code.remove(),
            model.error_title.set(change.error_title) if change.error_title else model.error_title.remove(),
            model.error_details.set(change.error_details) if change.error_details else model.error_details.remove(),
        ]
    return actions


def _update_in_transaction(
    item: m.MessageModel,
    actions: list[Any],
    condition: Any,
    change: StatusChange,
    ws: str,
    *,
    bill: bool,
    event_seq: str | None,
) -> None:
    """The message update with, in the same transaction, its billing record and/or its event."""
    with transaction() as tx:
        tx.update(item, actions=actions, condition=condition)
        if bill:
            tx.save(_billing_record(item, change, ws), condition=m.BillingRecordModel.pk.does_not_exist())
        if event_seq is not None:
            tx.save(changes.event_item(ws, "message.updated", item.contact_id, item.message_id, seq=event_seq))


def _billing_record(item: m.MessageModel, change: StatusChange, ws: str) -> m.BillingRecordModel:
    return billing_record(ws, _billing_month(item, change), item.message_id, change)


def billing_record(ws: str, month: str, message_id: str, change: StatusChange) -> m.BillingRecordModel:
    """The billing record of a message (one per wamid; put conditional on its key not existing)."""
    pricing = change.pricing or {}
    return m.BillingRecordModel(
        m.billing_pk(ws, month),
        m.billing_sk(change.wamid),
        ws_id=ws,
        message_id=message_id,
        category=pricing.get("category"),
        pricing_model=pricing.get("pricing_model"),
        pricing_type=pricing.get("type"),
        billable=True,
        at=change.at,
    )


# --- early statuses ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingStatus:
    wamid: str
    ws: str | None
    change: StatusChange


def put_pending_status(ws: str | None, change: StatusChange) -> bool:
    """Keep a status whose message is not known yet; one item per (wamid, status). False if kept already."""
    item = m.PendingStatusModel(
        m.wamid_pk(change.wamid),
        f"{m.PendingStatusModel.SK_PREFIX}{change.status}",
        wamid=change.wamid,
        ws_id=ws,
        status=change.status,
        status_rank=change.rank,
        payload=_pending_payload(change),
        received_at=clock.now(),
    )
    # A billable copy replaces a kept non-billable one (the billing must not be lost); otherwise the
    # first copy kept wins.
    condition = None if change.billable else m.PendingStatusModel.pk.does_not_exist()
    try:
        item.save(condition=condition)
        kept = True
    except PutError as exc:
        if not is_condition_failure(exc):
            raise
        kept = False
    # The marker a send checks when it records the wamid (`broadcasts.record_sent`); written even
    # when the status was kept already, in case the run that kept it died before writing it.
    m.PendingStatusModel(
        m.wamid_pk(change.wamid), m.PendingStatusModel.MARKER_SK, wamid=change.wamid, ws_id=ws, status="marker"
    ).save()
    return kept


def _pending_payload(change: StatusChange) -> dict[str, Any]:
    payload: dict[str, Any] = {"at": change.at.isoformat(), "billable": change.billable}
    for name in ("error_code", "error_title", "error_details", "pricing"):
        value = getattr(change, name)
        if value is not None:
            payload[name] = value
    return payload


def pending_statuses(wamid: str) -> list[PendingStatus]:
    prefix = m.PendingStatusModel.SK_PREFIX
    items = query_all(m.PendingStatusModel, m.wamid_pk(wamid), m.PendingStatusModel.sk.startswith(prefix))
    out = []
    for item in items:
        payload = plain_value(item.payload) or {}
        change = StatusChange(
            wamid=item.wamid,
            status=item.status,
            at=datetime.fromisoformat(payload["at"]),
            error_code=int(payload["error_code"]) if payload.get("error_code") is not None else None,
            error_title=payload.get("error_title"),
            error_details=payload.get("error_details"),
            pricing=payload.get("pricing"),
            billable=bool(payload.get("billable")),
        )
        out.append(PendingStatus(wamid=item.wamid, ws=item.ws_id, change=change))
    return out


def delete_pending_status(wamid: str, status: str) -> None:
    m.PendingStatusModel(m.wamid_pk(wamid), f"{m.PendingStatusModel.SK_PREFIX}{status}").delete()
