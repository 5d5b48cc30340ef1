"""Outbound messages before and after the Graph call (the outbox).

The send path writes the message item (status `accepted`, our id carried in
`biz_opaque_callback_data`) BEFORE calling Meta, conditional on the id being new. The id is derived
from what makes a send unique (workspace + Idempotency-Key, or broadcast + contact), so a retry
after a crash finds the same item instead of creating a second message: if it already has a wamid
the send is not repeated. Statuses and wamids are then handled by `relasify.data.messages`.

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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pynamodb.exceptions import UpdateError

from relasify import clock
from relasify.data import conversations
from relasify.data import models as m
from relasify.data.base import query_page
from relasify.data.cursor import decode_cursor, encode_cursor
from relasify.data.messages import Message, _message, conversation_sort_key, get_message
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


@dataclass(frozen=True, slots=True)
class NewOutbound:
    ws: str
    message_id: str
    contact_id: str
    type: str
    content: dict[str, Any]
    sent_by: str | None = None
    idempotency_key: str | None = None
    broadcast_id: str | None = None
    context_wamid: str | None = None  # the message this one replies to


def put_accepted(new: NewOutbound, *, lease_seconds: int = API_SEND_LEASE_SECONDS) -> tuple[Message, bool]:
    """Write the outbox item (status accepted, send lease taken) unless it exists. Returns (message, created)."""
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
        idempotency_key=new.idempotency_key,
        sent_by=new.sent_by,
        send_lease_until=int(now.timestamp()) + lease_seconds,
        context_wamid=new.context_wamid,
    )
    item.gsi1pk = m.conversation_pk(new.ws, new.contact_id)
    item.gsi1sk = conversation_sort_key(now, new.message_id)
    # With its conversation, in one transaction (relasify.data.conversations).
    if not conversations.record_thread_item(item):
        existing = get_message(new.ws, new.message_id, consistent=True)
        if existing is None:  # pragma: no cover - the condition failed on an item that is gone
            raise Conflict("The message was being written concurrently; retry.")
        return existing, False
    return _message(item), True


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
    """A contact's conversation (inbound and outbound), newest first; one GSI1 Query per page."""
    scope = f"conversation:{contact_id}"
    page = query_page(
        m.MessageModel,
        m.conversation_pk(ws, contact_id),
        index=m.MessageModel.gsi1,
        limit=max(1, min(int(limit), MAX_PAGE)),
        exclusive_start_key=decode_cursor(cursor, ws=ws, scope=scope),
        newest_first=True,
    )
    return Page(
        items=[_message(item) for item in page.items],
        next_cursor=encode_cursor(page.last_evaluated_key, ws=ws, scope=scope),
    )


def accepted_at(message: Message) -> datetime | None:
    return message.message_at or message.created_at
