"""Conversation writes (SPEC section 5a): one item per (workspace, contact), kept current in the same
write as the messages, notes and statuses that change it; and the reads of one conversation and its
thread. The record and its state transition are in `relasify.data.conversation_state`.

Exactly once, whatever the delivery order (docs/INBOX.md):
- a new message (inbound, outbound, note) is written in ONE TransactWriteItems with the conversation:
  the message Put on `attribute_not_exists` (a redelivered webhook or a retried send fails it, so the
  conversation is not touched twice) and the conversation Put on `version = :read` (optimistic
  locking: a concurrent writer makes us re-read and recompute). No atomic counters: `unread_count`
  is computed from the state read, so a retry can never add twice;
- the new state is computed in Python (`conversation_state.apply_activity`): times take the max,
  `last_message` moves only to a newer message (by thread sort key), unread grows only for an
  inbound message newer than `read_up_to`, an inbound message reopens a resolved or snoozed
  conversation;
- a status touches the conversation only when it is about its last message (read first, then one
  conditional UpdateItem of `last_message.status`, forward only): other statuses cost no write. The
  processor reads a batch's conversations together (relasify.data.conversation_reads);
- marking read recounts the inbound messages after the read mark (a COUNT Query), which heals drift.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, Protocol

from pynamodb.exceptions import TransactWriteError, UpdateError

from relasify import clock
from relasify.data import changes, timeline
from relasify.data import messages as message_store
from relasify.data import models as m
from relasify.data.base import transaction
from relasify.data.conversation_state import (
    Conversation,
    activity_of,
    apply_activity,
    conversation_item,
    conversation_key,
    to_record,
)
from relasify.data.ids import new_id
from relasify.data.tx import cancellation_codes, is_condition_failure
from relasify.errors import Conflict

MAX_PAGE = 100
_MAX_ATTEMPTS = 8


class ConversationBusy(Conflict):
    """Too many concurrent writers on one conversation; nothing was written, the caller may retry."""


class _AlreadyStored(Exception):
    """The thread item of the transaction exists already (a duplicate): nothing was written."""


Change = Callable[[Conversation | None], Conversation | None]


class StoredReads(Protocol):
    """Conversation items read ahead (relasify.data.conversation_reads), kept current by the writer."""

    def stored(self, ws: str, contact_id: str) -> tuple[m.ConversationModel | None] | None:
        """(the item, or None when there is none) as read; None when not read."""

    def written(self, item: m.ConversationModel) -> None:
        """The item as this process just wrote it."""


Loaded = tuple[Conversation | None, m.ConversationModel | None]


def _load(ws: str, contact_id: str) -> Loaded:
    """The stored state (consistent read); an expired item reads as no conversation but keeps its version."""
    try:
        item = m.ConversationModel.get(*conversation_key(ws, contact_id), consistent_read=True)
    except m.ConversationModel.DoesNotExist:
        return None, None
    return state_of(item)


def state_of(item: m.ConversationModel | None) -> Loaded:
    """A stored item (None: none) as `_write` reads it: an expired one is no conversation, with its version."""
    if item is None:
        return None, None
    return (None if item.is_expired else to_record(item)), item


def _write(
    ws: str, contact_id: str, change: Change, extra: Callable[[Any], None], reads: StoredReads | None = None
) -> Conversation | None:
    """Read, compute `change`, write conditional on the version read with `extra`'s writes (its
    change-feed event at least) in one transaction; re-read and recompute on a conflict. Returns the
    current state, unwritten, when `change` wants no write. `reads`: a state read before (its first
    attempt uses it; the version condition refuses it if it is stale), told what was written."""
    for attempt in range(_MAX_ATTEMPTS):
        read_before = reads.stored(ws, contact_id) if reads is not None and attempt == 0 else None
        current, stored = state_of(read_before[0]) if read_before is not None else _load(ws, contact_id)
        new = change(current)
        if new is None:
            return current
        version = int(stored.version or 0) if stored is not None else 0
        item = conversation_item(new, version + 1)
        condition = (
            m.ConversationModel.pk.does_not_exist() if stored is None else (m.ConversationModel.version == version)
        )
        tx = transaction()
        try:
            with tx:
                extra(tx)
                tx.save(item, condition=condition)
        except TransactWriteError as exc:
            failures = tx.failures(exc)
            others = [f for k, f in failures.items() if k != conversation_key(ws, contact_id)]
            if any(f.code == "ConditionalCheckFailed" for f in others):
                raise _AlreadyStored from None
            if failures or "TransactionConflict" in cancellation_codes(exc):
                _pause(attempt)
                continue
            raise
        if reads is not None:
            reads.written(item)
        return to_record(item)
    raise ConversationBusy("The conversation is being changed by others; retry.")


def _pause(attempt: int) -> None:
    time.sleep(random.uniform(0, 0.01 * (2**attempt)))  # noqa: S311 - jitter, not security


def record_thread_item(
    item: m.MessageModel, *, extra: Callable[[Any], None] | None = None, reads: StoredReads | None = None
) -> bool:
    """Write a new thread item (message or note) and its conversation in one transaction. False when
    the item exists already (a duplicate delivery or a retried send): nothing was written then."""
    act = activity_of(item)
    ws, contact_id = item.ws_id, item.contact_id

    def change(current: Conversation | None) -> Conversation:
        return apply_activity(current, ws, contact_id, act, clock.now())

    def writes(tx: Any) -> None:
        tx.save(item, condition=m.MessageModel.pk.does_not_exist())
        event: changes.EventType = "note.created" if item.direction == "note" else "message.created"
        changes.add_to(tx, ws, event, contact_id, item.message_id)
        if extra is not None:
            extra(tx)

    try:
        _write(ws, contact_id, change, writes, reads)
    except _AlreadyStored:
        return False
    return True


def record_inbound(
    new: message_store.NewInboundMessage, *, reads: StoredReads | None = None
) -> message_store.Message | None:
    """`messages.record_inbound` for thread messages, with the conversation in the same transaction.
    None if this wamid is stored already."""
    if not new.in_conversation:
        return message_store.record_inbound(new)
    item = message_store.inbound_item(new)
    return message_store.to_record(item) if record_thread_item(item, reads=reads) else None


def add_note(ws: str, contact_id: str, author: str, body: str) -> message_store.Message:
    """An internal note: a thread item (message content for retention and erasure), never sent."""
    now = clock.now()
    note_id = new_id("note")
    item = m.MessageModel(
        m.message_pk(ws, note_id),
        m.MessageModel.SK_VALUE,
        ws_id=ws,
        message_id=note_id,
        contact_id=contact_id,
        direction="note",
        message_type="note",
        content={"body": body},
        status="note",
        status_rank=0,
        message_at=now,
        sent_by=author,
    )
    timeline.place(item, message_store.conversation_sort_key(now, note_id))
    record_thread_item(item)
    return message_store.to_record(item)


def apply_message_status(ws: str, contact_id: str, message_id: str, status: str, rank: int) -> bool:
    """A message's status moved forward: mirrored on `last_message.status` only when it is the
    conversation's last message (a read, then one conditional UpdateItem; no write otherwise)."""
    item = m.ConversationModel.get_live(*conversation_key(ws, contact_id), consistent_read=True)
    if item is None or item.last_message is None or item.last_message.id != message_id:
        return False
    if int(item.last_message.status_rank or 0) >= rank:
        return False
    return mirror_message_status(ws, contact_id, message_id, status, rank) is not None


def mirror_message_status(
    ws: str, contact_id: str, message_id: str, status: str, rank: int
) -> m.ConversationModel | None:
    """The conditional UpdateItem of `apply_message_status` without its read: writes only when the
    live conversation's last message is `message_id` at a lower rank. The item as written, or None
    when the condition refused it."""
    model = m.ConversationModel
    item = model(*conversation_key(ws, contact_id))
    try:
        item.update(  # returns the whole item (ALL_NEW) into `item`
            actions=[
                model.last_message.status.set(status),
                model.last_message.status_rank.set(rank),
                model.version.add(1),  # writers that read the old state recompute (they Put last_message)
                model.touch(),
            ],
            condition=(model.last_message.id == message_id)
            & (model.last_message.status_rank < rank)
            & model.live_condition(),
        )
    except UpdateError as exc:
        if is_condition_failure(exc):
            return None  # a newer message became the last one, or a later status won
        raise
    return item


def get(ws: str, contact_id: str, *, consistent: bool = False) -> Conversation | None:
    item = m.ConversationModel.get_live(*conversation_key(ws, contact_id), consistent_read=consistent)
    return to_record(item) if item else None


def _updated_event(ws: str, contact_id: str) -> Callable[[Any], None]:
    def writes(tx: Any) -> None:
        changes.add_to(tx, ws, "conversation.updated", contact_id)

    return writes


def update(ws: str, contact_id: str, change: Change) -> Conversation | None:
    """Apply `change` (status, assignee, snooze...) under the optimistic version check, with its
    `conversation.updated` event in the same transaction."""
    return _write(ws, contact_id, change, _updated_event(ws, contact_id))


def count_inbound_after(ws: str, contact_id: str, key: str | None) -> int:
    """Inbound messages of the thread after the sort key `key` (all when None): the unread recount."""
    return timeline.count_inbound_after(ws, contact_id, key)


def mark_read(ws: str, contact_id: str, up_to_key: str | None) -> Conversation | None:
    """`read_up_to` := `up_to_key` (default: the newest inbound message); unread := the recount of the
    inbound messages after it. None when there is no conversation."""

    def change(current: Conversation | None) -> Conversation | None:
        if current is None:
            return None
        mark = up_to_key or current.last_inbound_key
        unread = count_inbound_after(ws, contact_id, mark) if mark else 0
        return current.model_copy(update={"read_up_to": mark, "unread_count": unread})

    return _write(ws, contact_id, change, _updated_event(ws, contact_id))


def delete_key(ws: str, contact_id: str) -> tuple[str, str]:
    """The conversation item's key (erasure deletes it with the messages)."""
    return conversation_key(ws, contact_id)


def thread_after(ws: str, contact_id: str, key: str, *, limit: int) -> list[message_store.Message]:
    """Up to `limit` thread items after the sort key `key` (the oldest of them), newest first."""
    found = timeline.page(ws, contact_id, limit=max(1, min(int(limit), MAX_PAGE)), after=key, newest_first=False)
    return [message_store.to_record(i) for i in found.items][::-1]
