"""Messages: the stored record and its reads, the correlation ids that lead a webhook to it, and
the writes of the inbound side (the message itself, its reactions, its media copy).

Exactly-once comes from conditional writes, never from a cache: an inbound message's id is derived
from its wamid, so one PutItem on `attribute_not_exists` stores it and refuses a redelivery.
Outbound messages and their wamids are written by `relasify.data.outbound_messages`; statuses
(rank-ordered conditional updates, billing, statuses that beat the send's wamid) by
`relasify.data.message_statuses` and `relasify.data.status_writes`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import Field
from pynamodb.exceptions import PutError, TransactWriteError, UpdateError

from relasify import clock
from relasify.data import changes, timeline
from relasify.data import models as m
from relasify.data.base import plain_value, sortable_time, transaction, utc
from relasify.data.records import Record
from relasify.data.status_routes import StatusRoute, route_callback
from relasify.data.tx import cancellation_codes, is_condition_failure

STALE_BACKLOG_FLAG = "stale_backlog"
_CALLBACK_PREFIX = "rls1"
# Optimistic retries when a concurrent writer changed the message between our read and write.
_MAX_STATUS_ATTEMPTS = 4

Direction = Literal["in", "out", "note"]  # notes: agents' internal notes, never sent


class Reaction(Record):
    emoji: str | None = None
    from_wa_id: str | None = None
    wamid: str | None = None
    at: datetime | None = None


class Message(Record):
    id: str
    ws: str
    contact_id: str
    direction: Direction
    type: str
    content: dict[str, Any] = Field(default_factory=dict)
    wamid: str | None = None
    status: str = "accepted"
    status_rank: int = 0
    error_code: int | None = None
    error_title: str | None = None
    error_details: str | None = None
    message_at: datetime | None = None
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    read_at: datetime | None = None
    failed_at: datetime | None = None
    received_at: datetime | None = None
    context_wamid: str | None = None
    media_id: str | None = None
    media_s3_key: str | None = None
    media_error: str | None = None
    flags: list[str] = Field(default_factory=list)
    reactions: list[Reaction] = Field(default_factory=list)
    pricing: dict[str, Any] | None = None
    biz_opaque_callback_data: str | None = None
    broadcast_id: str | None = None
    sent_by: str | None = None  # outbound: the user who sent it; note: its author
    expires_at: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewInboundMessage:
    ws: str
    contact_id: str
    wamid: str
    type: str
    content: dict[str, Any]
    message_at: datetime
    context_wamid: str | None = None
    media_id: str | None = None
    flags: tuple[str, ...] = ()
    in_conversation: bool = True  # reactions attach to their target instead of joining the thread


@dataclass(frozen=True, slots=True)
class MessageLocation:
    ws: str
    message_id: str
    route: StatusRoute | None = field(default=None, compare=False)  # carried by the wamid pointer


# --- correlation -----------------------------------------------------------------------------


def callback_data(ws: str, message_id: str) -> str:
    """`biz_opaque_callback_data` for an outbound message: status webhooks then name it directly."""
    return f"{_CALLBACK_PREFIX}:{ws}:{message_id}"


def parse_callback_data(value: str | None) -> MessageLocation | None:
    if not value:
        return None
    parts = value.split(":")
    if len(parts) != 3 or parts[0] != _CALLBACK_PREFIX or not parts[1] or not parts[2]:
        return None
    return MessageLocation(ws=parts[1], message_id=parts[2])


# --- model <-> record ------------------------------------------------------------------------


def _message(item: m.MessageModel) -> Message:
    return Message(
        id=item.message_id,
        ws=item.ws_id,
        contact_id=item.contact_id,
        direction=item.direction,  # type: ignore[arg-type]
        type=item.message_type,
        content=plain_value(item.content) or {},
        wamid=item.wamid,
        status=item.status,
        status_rank=int(item.status_rank or 0),
        error_code=int(item.error_code) if item.error_code is not None else None,
        error_title=item.error_title,
        error_details=item.error_details,
        message_at=utc(item.message_at),
        sent_at=utc(item.sent_at),
        delivered_at=utc(item.delivered_at),
        read_at=utc(item.read_at),
        failed_at=utc(item.failed_at),
        received_at=utc(item.received_at),
        context_wamid=item.context_wamid,
        media_id=item.media_id,
        media_s3_key=item.media_s3_key,
        media_error=item.media_error,
        flags=list(item.flags or []),
        reactions=[
            Reaction(emoji=r.emoji, from_wa_id=r.from_wa_id, wamid=r.wamid, at=utc(r.at))
            for r in (item.reactions or [])
        ],
        pricing=plain_value(item.pricing) if item.pricing is not None else None,
        biz_opaque_callback_data=item.biz_opaque_callback_data or _status_callback(item),
        broadcast_id=item.broadcast_id,
        sent_by=item.sent_by,
        expires_at=int(item.expires_at) if item.expires_at is not None else None,
        created_at=utc(item.created_at),
        updated_at=utc(item.updated_at),
    )


def _status_callback(item: m.MessageModel) -> str | None:
    """The callback data of an outbound message: derived from the item, not stored (older items
    stored the `rls1` form, which is kept)."""
    if item.direction != "out":
        return None
    return route_callback(item.ws_id, item.message_id, item.contact_id, item.broadcast_id, item.message_at)


def to_record(item: m.MessageModel) -> Message:
    return _message(item)


def conversation_sort_key(at: datetime, message_id: str) -> str:
    return f"{sortable_time(at)}#{message_id}"


# --- reads -------------------------------------------------------------------------------------


def get_message(ws: str, message_id: str, *, consistent: bool = False) -> Message | None:
    item = m.MessageModel.get_live(m.message_pk(ws, message_id), m.MessageModel.SK_VALUE, consistent_read=consistent)
    return _message(item) if item else None


def locate_wamid(wamid: str) -> MessageLocation | None:
    """Which message a wamid belongs to (strongly consistent: it races with the send path)."""
    item = m.WamidPointerModel.get_live(m.wamid_pk(wamid), m.WamidPointerModel.SK_VALUE, consistent_read=True)
    return location_of(item) if item else None


def location_of(pointer: m.WamidPointerModel) -> MessageLocation:
    route = None
    if pointer.route_contact_id and pointer.route_month:
        broadcast = None if pointer.route_broadcast_id in (None, "-") else pointer.route_broadcast_id
        route = StatusRoute(pointer.ws_id, pointer.message_id, pointer.route_contact_id, broadcast, pointer.route_month)
    return MessageLocation(ws=pointer.ws_id, message_id=pointer.message_id, route=route)


def get_by_wamid(wamid: str) -> Message | None:
    """An outbound message by Meta's id (inbound ones: `get_inbound`)."""
    location = locate_wamid(wamid)
    return get_message(location.ws, location.message_id, consistent=True) if location else None


def list_conversation(ws: str, contact_id: str, *, limit: int = 50) -> list[Message]:
    """Newest first, up to `limit` (the export; the API pages through `relasify.data.outbox`)."""
    out: list[Message] = []
    for item in timeline.items(ws, contact_id, page_size=max(1, min(limit, 100))):
        out.append(_message(item))
        if len(out) >= limit:
            break
    return out


# --- inbound -----------------------------------------------------------------------------------


_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def inbound_message_id(wamid: str) -> str:
    """Our id of an inbound message, derived from Meta's wamid: a redelivery maps to the same item,
    so one conditional put both stores and deduplicates (no separate pointer, no transaction)."""
    value = int.from_bytes(hashlib.sha256(wamid.encode()).digest()[:17], "big") >> 6  # 130 bits
    return "msg_" + "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def get_inbound(ws: str, wamid: str) -> Message | None:
    return get_message(ws, inbound_message_id(wamid), consistent=True)


def record_inbound(new: NewInboundMessage) -> Message | None:
    """Store an inbound message with one conditional PutItem; None if this wamid is already stored.
    (Messages of the thread go through `relasify.data.conversations.record_inbound`, which writes
    the same item and the conversation in one transaction.)"""
    item = inbound_item(new)
    try:
        item.save(condition=m.MessageModel.pk.does_not_exist())
    except PutError as exc:
        if is_condition_failure(exc):
            return None
        raise
    return _message(item)


def inbound_item(new: NewInboundMessage) -> m.MessageModel:
    """The item of an inbound message (not written)."""
    now = clock.now()
    message_id = inbound_message_id(new.wamid)
    item = m.MessageModel(
        m.message_pk(new.ws, message_id),
        m.MessageModel.SK_VALUE,
        ws_id=new.ws,
        message_id=message_id,
        contact_id=new.contact_id,
        direction="in",
        message_type=new.type,
        content=new.content,
        wamid=new.wamid,
        status="received",
        status_rank=0,
        message_at=new.message_at,
        received_at=now,
        context_wamid=new.context_wamid,
        media_id=new.media_id,
        flags=list(new.flags),
    )
    if new.in_conversation:
        timeline.place(item, conversation_sort_key(new.message_at, message_id))
    return item


def set_media_copied(ws: str, message_id: str, s3_key: str) -> bool:
    """Record the S3 copy of a message's media once; False if already recorded or the message is gone."""
    model = m.MessageModel
    item = model(m.message_pk(ws, message_id), model.SK_VALUE)
    try:
        item.update(
            actions=[model.media_s3_key.set(s3_key), model.touch()],
            condition=model.pk.exists() & model.media_s3_key.does_not_exist(),
        )
    except UpdateError as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def set_media_failed(ws: str, message_id: str, reason: str) -> bool:
    """Record that the message's media will not be copied (a stable reason slug, no URL); False if
    the media was copied meanwhile or the message is gone."""
    model = m.MessageModel
    item = model(m.message_pk(ws, message_id), model.SK_VALUE)
    try:
        item.update(
            actions=[model.media_error.set(reason), model.touch()],
            condition=model.pk.exists() & model.media_s3_key.does_not_exist(),
        )
    except UpdateError as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def attach_reaction(ws: str, message_id: str, reaction: Reaction) -> bool:
    """Set the reactor's reaction on the target message (one per reactor; newer wins; an empty emoji
    removes it). Optimistic: conditional on `updated_at` being what we read. False if nothing changed."""
    model = m.MessageModel
    for _ in range(_MAX_STATUS_ATTEMPTS):
        item = model.get_live(m.message_pk(ws, message_id), model.SK_VALUE, consistent_read=True)
        if item is None:
            return False
        current = list(item.reactions or [])
        mine = [r for r in current if r.from_wa_id == reaction.from_wa_id]
        if any(r.wamid == reaction.wamid for r in mine):
            return False  # this very reaction is already applied
        if mine and reaction.at and mine[0].at and utc(mine[0].at) >= reaction.at:  # type: ignore[operator]
            return False  # a newer reaction from the same person already won
        kept = [r for r in current if r.from_wa_id != reaction.from_wa_id]
        if reaction.emoji:
            kept.append(
                m.ReactionMap(
                    emoji=reaction.emoji, from_wa_id=reaction.from_wa_id, wamid=reaction.wamid, at=reaction.at
                )
            )
        condition = model.updated_at == item.updated_at if item.updated_at else model.updated_at.does_not_exist()
        try:
            with transaction() as tx:  # the reaction and its `message.updated` event, together
                tx.update(item, actions=[model.reactions.set(kept), model.touch()], condition=condition)
                if item.contact_id:
                    changes.add_to(tx, ws, "message.updated", item.contact_id, message_id)
        except TransactWriteError as exc:
            if is_write_conflict(exc):
                continue
            raise
        return True
    return False


def is_write_conflict(exc: Exception) -> bool:
    """A refused condition or a conflicting transaction: another writer got there first."""
    if isinstance(exc, TransactWriteError):
        return any(code in ("ConditionalCheckFailed", "TransactionConflict") for code in cancellation_codes(exc))
    return is_condition_failure(exc)
