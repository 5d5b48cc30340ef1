"""Outbound messages before and after the Graph call (the outbox).

The send path writes the message item (status `accepted`, our id carried in
`biz_opaque_callback_data`) BEFORE calling Meta, conditional on the id being new. The id is derived
from what makes a send unique (workspace + Idempotency-Key, or broadcast + contact), so a retry
after a crash finds the same item instead of creating a second message: if it already has a wamid
the send is not repeated. Wamids are then recorded by `relasify.data.outbound_messages`, statuses by
`relasify.data.message_statuses` and `relasify.data.status_writes`.

The outbox item is also the API's idempotency record: the id is derived from (workspace,
Idempotency-Key) and the item keeps a hash of the request body (`request_hash`), so a reused key with
another body is told apart from a retry (`RequestMismatch`), and a retry is answered from the item.

Only one attempt at a time may call Meta for a message: the item carries a send lease
(`send_lease_until`), set when it is created; a later attempt that finds it without a wamid takes the
lease over only once it has run out (one conditional update). The lease outlasts the timeout of the
function that sends (`API_SEND_LEASE_SECONDS`, `BROADCAST_SEND_LEASE_SECONDS`), so an attempt still
running can never be joined by a second one: an SQS redelivery or a retried request racing a slow
first attempt waits instead of sending the message twice. An attempt that ends without reaching Meta
gives its lease back, so a retry need not wait.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pynamodb.exceptions import UpdateError

from relasify import clock
from relasify.data import conversations, timeline
from relasify.data import models as m
from relasify.data.cursor import decode_cursor, encode_cursor
from relasify.data.messages import Message, conversation_sort_key, to_record
from relasify.data.records import Page
from relasify.data.tx import is_condition_failure
from relasify.errors import Conflict

MAX_PAGE = 100
# Longer than the timeout of the function that sends (template.yaml: the send API 29 s, the broadcast
# worker 120 s): Lambda has stopped an attempt by the time its lease runs out.
API_SEND_LEASE_SECONDS = 35
BROADCAST_SEND_LEASE_SECONDS = 150


def derived_message_id(*parts: str) -> str:
    """A message id that is a pure function of `parts` (e.g. ws + idempotency key): the same send
    retried after a crash lands on the same outbox item."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()[:16]
    return "msg_" + base64.b32encode(digest).decode().rstrip("=").lower()


def request_hash(body: dict[str, Any]) -> str:
    """A short fingerprint of a send request's body (canonical JSON; 128 bits, 22 characters: it is
    stored on every API-sent message, so it stays small)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()[:16]).decode().rstrip("=")


class RequestMismatch(Exception):
    """The outbox item exists for another request body (an Idempotency-Key reused for another send)."""


@dataclass(frozen=True, slots=True)
class NewOutbound:
    ws: str
    message_id: str
    contact_id: str
    type: str
    content: dict[str, Any]
    sent_by: str | None = None
    request_hash: str | None = None  # API sends: `request_hash(body)`, checked when the item exists
    broadcast_id: str | None = None
    context_wamid: str | None = None  # the message this one replies to


@dataclass(frozen=True, slots=True)
class OutboxAttempt:
    """An outbox item as a retry sees it: the message, the body hash it was sent for, its send lease."""

    message: Message
    request_hash: str | None
    lease_until: int | None

    def lease_free(self) -> bool:
        return self.lease_until is None or self.lease_until <= int(clock.now().timestamp())


def put_accepted(new: NewOutbound, *, lease_seconds: int = API_SEND_LEASE_SECONDS) -> tuple[Message, bool]:
    """Write the outbox item (status accepted, send lease taken) unless it exists. Returns (message, created).
    Raises RequestMismatch when the item exists for another request body (both hashes known)."""
    now = clock.now()
    item = m.MessageModel(
        m.message_pk(new.ws, new.message_id),
        m.MessageModel.SK_VALUE,
        ws_id=new.ws,
        message_id=new.message_id,
        contact_id=new.contact_id,
        direction="out",
        message_type=new.type,
        content=new.content,
        status="accepted",
        status_rank=0,
        message_at=now,
        # Neither `accepted_at` (= message_at) nor the callback data (derived from the item, see
        # relasify.data.status_routes) is stored: the item stays under 1 KB, so a status costs 1 WCU, not 2.
        broadcast_id=new.broadcast_id,
        request_hash=new.request_hash,
        sent_by=new.sent_by,
        send_lease_until=int(now.timestamp()) + lease_seconds,
        context_wamid=new.context_wamid,
    )
    timeline.place(item, conversation_sort_key(now, new.message_id))
    # With its conversation, in one transaction (relasify.data.conversations).
    if not conversations.record_thread_item(item):
        existing = attempt(new.ws, new.message_id)
        if existing is None:  # pragma: no cover - the condition failed on an item that is gone
            raise Conflict("The message was being written concurrently; retry.")
        if new.request_hash is not None and existing.request_hash not in (None, new.request_hash):
            raise RequestMismatch(new.message_id)
        return existing.message, False
    return to_record(item), True


def attempt(ws: str, message_id: str) -> OutboxAttempt | None:
    """The outbox item of a message (strongly consistent: it races with the attempt sending it)."""
    item = m.MessageModel.get_live(m.message_pk(ws, message_id), m.MessageModel.SK_VALUE, consistent_read=True)
    if item is None:
        return None
    lease = int(item.send_lease_until) if item.send_lease_until is not None else None
    return OutboxAttempt(message=to_record(item), request_hash=item.request_hash, lease_until=lease)


def take_send_lease(ws: str, message_id: str, *, lease_seconds: int = API_SEND_LEASE_SECONDS) -> bool:
    """Take over the send lease of a message that has no wamid yet, if no attempt holds it. False when
    another attempt holds it, or the message got its wamid or ended meanwhile."""
    model = m.MessageModel
    now = int(clock.now().timestamp())
    item = model(m.message_pk(ws, message_id), model.SK_VALUE)
    try:
        item.update(
            actions=[model.send_lease_until.set(now + lease_seconds)],
            condition=model.pk.exists()
            & model.wamid.does_not_exist()
            & (model.status_rank == 0)
            & (model.send_lease_until.does_not_exist() | (model.send_lease_until <= now)),
        )
    except UpdateError as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def release_send_lease(ws: str, message_id: str) -> None:
    """The attempt holding the lease ended without reaching Meta: a retry may send at once."""
    model = m.MessageModel
    item = model(m.message_pk(ws, message_id), model.SK_VALUE)
    try:
        item.update(actions=[model.send_lease_until.remove()], condition=model.wamid.does_not_exist())
    except UpdateError as exc:
        if not is_condition_failure(exc):
            raise


def mark_failed(ws: str, message_id: str, *, code: int | None, title: str, details: str | None = None) -> bool:
    """A synchronous send failure: the message ends `failed` (rank 4, terminal) with Meta's error.
    Conditional on the message not having moved already (a status webhook may have won)."""
    model = m.MessageModel
    item = model(m.message_pk(ws, message_id), model.SK_VALUE)
    actions: list[Any] = [
        model.status.set("failed"),
        model.status_rank.set(4),
        model.failed_at.set(clock.now()),
        model.error_title.set(title[:500]),
        model.touch(),
    ]
    if code is not None:
        actions.append(model.error_code.set(code))
    if details:
        actions.append(model.error_details.set(details[:1000]))
    try:
        item.update(actions=actions, condition=model.pk.exists() & (model.status_rank < 4))
    except UpdateError as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def conversation_page(ws: str, contact_id: str, *, limit: int = 50, cursor: str | None = None) -> Page[Message]:
    """A contact's conversation (inbound and outbound), newest first; per page one Query of the
    timeline index and one BatchGetItem of its items."""
    scope = f"conversation:{contact_id}"
    page = timeline.page(
        ws,
        contact_id,
        limit=max(1, min(int(limit), MAX_PAGE)),
        exclusive_start_key=decode_cursor(cursor, ws=ws, scope=scope),
    )
    return Page(
        items=[to_record(item) for item in page.items],
        next_cursor=encode_cursor(page.last_evaluated_key, ws=ws, scope=scope),
    )


def accepted_at(message: Message) -> datetime | None:
    return message.message_at or message.created_at
