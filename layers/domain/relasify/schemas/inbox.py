"""The inbox's requests and views (SPEC section 5a)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import Field, field_validator

from relasify.schemas.common import IdStr, Input, Output
from relasify.schemas.messages import MessageOut, message_out

SERVICE_WINDOW = timedelta(hours=24)
ConversationStatus = Literal["open", "pending", "snoozed", "resolved"]


class ConversationContact(Output):
    id: str
    name: str | None = None
    phone: str | None = None


class LastMessageOut(Output):
    id: str
    direction: str
    type: str
    preview: str | None = None
    status: str | None = None
    at: datetime


class ConversationOut(Output):
    id: str
    contact: ConversationContact
    status: ConversationStatus
    assignee: str | None = None
    unread_count: int
    last_message: LastMessageOut | None = None
    last_inbound_at: datetime | None = None
    window_expires_at: datetime | None = None
    snoozed_until: datetime | None = None
    last_activity_at: datetime
    updated_at: datetime | None = None


class ConversationCounts(Output):
    open: int
    pending: int
    snoozed: int
    mine: int
    unassigned: int


class ConversationPage(Output):
    items: list[ConversationOut]
    next_cursor: str | None = None
    counts: ConversationCounts


class ConversationPatch(Input):
    """Only the fields given change; `"assignee": null` unassigns."""

    status: ConversationStatus | None = None
    assignee: IdStr | None = None
    snoozed_until: datetime | None = None

    @field_validator("snoozed_until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class ReadRequest(Input):
    up_to_message_id: IdStr | None = None
    receipt: bool = False  # mark the latest inbound message read on WhatsApp (blue ticks)
    typing: bool = False  # show the typing indicator too (Meta's read request with typing_indicator)


class ReadOut(Output):
    conversation: ConversationOut
    receipt_sent: bool


class NoteIn(Input):
    body: str = Field(min_length=1, max_length=4096)


class Sender(Output):
    # api_key: sent with an API key (SPEC 5c); `id` is its actor id `key:<key id>`.
    type: Literal["user", "broadcast", "api", "api_key"]
    id: str | None = None


class ThreadItem(MessageOut):
    direction: Literal["in", "out", "note"]  # type: ignore[assignment]
    sender: Sender | None = None  # outbound: who sent it
    author: str | None = None  # note: the user who wrote it
    reply_to: str | None = None  # our id of the message this one replies to


class ThreadPage(Output):
    items: list[ThreadItem]
    next_cursor: str | None = None  # older items
    since_cursor: str | None = None  # pass as `since` to get what is newer than this page


def conversation_out(conversation: Any, contact: Any | None, now: datetime) -> ConversationOut:
    """The API view of a `relasify.data.conversations.Conversation` (a snooze that ended reads open)."""
    last = conversation.last_message
    return ConversationOut(
        id=conversation.id,
        contact=ConversationContact(
            id=conversation.id, name=getattr(contact, "name", None), phone=getattr(contact, "phone", None)
        ),
        status=conversation.effective_status(now),
        assignee=conversation.assignee,
        unread_count=conversation.unread_count,
        last_message=LastMessageOut(
            id=last.id, direction=last.direction, type=last.type, preview=last.preview, status=last.status, at=last.at
        )
        if last is not None
        else None,
        last_inbound_at=conversation.last_inbound_at,
        window_expires_at=conversation.last_inbound_at + SERVICE_WINDOW if conversation.last_inbound_at else None,
        snoozed_until=None if conversation.snooze_over(now) else conversation.snoozed_until,
        last_activity_at=conversation.last_activity_at,
        updated_at=conversation.updated_at,
    )


def sender_of(message: Any) -> Sender | None:
    if message.direction != "out":
        return None
    if message.broadcast_id:
        return Sender(type="broadcast", id=message.broadcast_id)
    if message.sent_by:
        kind = "api_key" if message.sent_by.startswith("key:") else "user"
        return Sender(type=kind, id=message.sent_by)
    return Sender(type="api")


def thread_item(message: Any, reply_to: str | None = None) -> ThreadItem:
    # MessageOut knows in/out only; the note direction is put back below.
    view = message_out(message.model_copy(update={"direction": "in" if message.direction == "in" else "out"}))
    base = view.model_dump()
    base.update(
        direction=message.direction,
        sender=sender_of(message),
        author=message.sent_by if message.direction == "note" else None,
        reply_to=reply_to,
    )
    return ThreadItem(**base)
