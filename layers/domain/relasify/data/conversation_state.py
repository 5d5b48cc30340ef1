"""The conversation record and how it changes: the state one new thread item leaves (pure, no I/O),
the preview a list row shows, and the stored item (model <-> record, its inbox index key and TTL).

Apart from the writes (`relasify.data.conversations`: the optimistic, transactional read-compute-
write) so that the rules of the state can be read, and tested, without the storage around them;
the inbox index and its backfill map items with them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from relasify import clock, retention
from relasify.data import messages as message_store
from relasify.data import models as m
from relasify.data.base import utc
from relasify.data.records import Record

PREVIEW_CHARS = 100
STATUSES: tuple[str, ...] = ("open", "pending", "snoozed", "resolved")
Status = Literal["open", "pending", "snoozed", "resolved"]
_DAY = 86_400


class LastMessage(Record):
    id: str
    key: str
    direction: str
    type: str
    preview: str | None = None
    status: str | None = None
    status_rank: int = 0
    at: datetime


class Conversation(Record):
    id: str  # the contact id
    ws: str
    status: Status = "open"
    status_at: datetime | None = None
    assignee: str | None = None
    snoozed_until: datetime | None = None
    last_activity_at: datetime
    last_message: LastMessage | None = None
    last_inbound_at: datetime | None = None
    last_inbound_key: str | None = None
    unread_count: int = 0
    read_up_to: str | None = None
    version: int = 0
    expires_at: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def snooze_over(self, now: datetime) -> bool:
        return self.status == "snoozed" and (self.snoozed_until is None or self.snoozed_until <= now)

    def effective_status(self, now: datetime) -> Status:
        """A snooze ends by itself at `snoozed_until`: evaluated on read (the item may still say snoozed)."""
        return "open" if self.snooze_over(now) else self.status


@dataclass(frozen=True, slots=True)
class Activity:
    """What one thread item (message or note) does to its conversation."""

    message_id: str
    key: str  # thread sort key `<iso ts>#<mid>`
    direction: str  # in | out | note
    type: str
    at: datetime
    preview: str | None = None
    status: str | None = None
    status_rank: int = 0
    broadcast: bool = False


# --- previews ------------------------------------------------------------------------------------


def _clip(text: Any) -> str | None:
    if not isinstance(text, str) or not text.strip():
        return None
    text = " ".join(text.split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def preview_of(message_type: str, content: dict[str, Any]) -> str | None:
    """At most 100 characters a list row shows: the text, a caption, a template's name; no more."""
    part = content.get(message_type) if isinstance(content.get(message_type), dict) else content
    match message_type:
        case "text" | "note":
            return _clip(part.get("body"))
        case "image" | "video" | "document":
            return _clip(part.get("caption")) or _clip(part.get("filename") if message_type == "document" else None)
        case "template":
            return _clip(part.get("name"))
        case "interactive":
            body = part.get("body")
            reply = part.get("button_reply") or part.get("list_reply") or {}
            return _clip(body.get("text") if isinstance(body, dict) else None) or _clip(reply.get("title"))
        case "button":
            return _clip(part.get("text"))
    return None


def activity_of(item: m.MessageModel) -> Activity:
    return Activity(
        message_id=item.message_id,
        key=item.timeline_sk or message_store.conversation_sort_key(item.message_at or clock.now(), item.message_id),
        direction=item.direction,
        type=item.message_type,
        at=utc(item.message_at) or clock.now(),  # type: ignore[arg-type]
        preview=preview_of(
            item.message_type,
            item.content if isinstance(item.content, dict) else message_store.to_record(item).content,
        ),
        status=item.status,
        status_rank=int(item.status_rank or 0),
        broadcast=item.broadcast_id is not None,
    )


# --- the state transition (pure) -------------------------------------------------------------------


def apply_activity(
    current: Conversation | None, ws: str, contact_id: str, act: Activity, now: datetime
) -> Conversation:
    """The conversation after one NEW thread item (the caller guarantees it is new: exactly once)."""
    if current is None:
        # A broadcast does not fill the open queue: its conversation starts resolved (a reply reopens it).
        status: Status = "resolved" if act.direction == "out" and act.broadcast else "open"
        current = Conversation(id=contact_id, ws=ws, status=status, status_at=now, last_activity_at=act.at)
    update: dict[str, Any] = {
        "last_activity_at": max(current.last_activity_at, act.at),
        # Message content: the preview lives 90 days from the last content written, like the messages.
        "expires_at": content_expires_at(now),
    }
    if act.direction in ("in", "out") and (current.last_message is None or act.key > current.last_message.key):
        update["last_message"] = LastMessage(
            id=act.message_id,
            key=act.key,
            direction=act.direction,
            type=act.type,
            preview=act.preview,
            status=act.status,
            status_rank=act.status_rank,
            at=act.at,
        )
    if act.direction == "in":
        if current.last_inbound_key is None or act.key > current.last_inbound_key:
            update["last_inbound_key"] = act.key
            update["last_inbound_at"] = act.at
        if current.read_up_to is None or act.key > current.read_up_to:
            update["unread_count"] = current.unread_count + 1
        if current.status in ("resolved", "snoozed"):
            update.update(status="open", status_at=now, snoozed_until=None)
    return current.model_copy(update=update)


def content_expires_at(now: datetime) -> int | None:
    """The TTL of content written at `now`: the message-content window, rounded DOWN to a day boundary
    (UTC). The same value all day, so a day's writes to a conversation do not move its TTL: they
    rewrite neither its `ByExpiry` entry (keyed on it) nor its inbox entry (which projects it).
    Down, not up: the preview is message content and a closed workspace's items must all be gone by
    closure + 90 days (docs/PRIVACY.md); rounded up, a conversation written the day before closure
    outlived that. So the conversation may go up to a day before its newest message does."""
    exact = retention.expires_at_for(retention.DataClass.MESSAGE_CONTENT, start=now)
    return None if exact is None else exact // _DAY * _DAY


# --- model <-> record ------------------------------------------------------------------------------


def conversation_key(ws: str, contact_id: str) -> tuple[str, str]:
    return m.conversation_pk(ws, contact_id), m.ConversationModel.SK_VALUE


def to_record(item: m.ConversationModel) -> Conversation:
    last = item.last_message
    return Conversation(
        id=item.contact_id,
        ws=item.ws_id,
        status=item.status,  # type: ignore[arg-type]
        status_at=utc(item.status_at),
        assignee=item.assignee_sub,
        snoozed_until=utc(item.snoozed_until),
        last_activity_at=utc(item.last_activity_at),  # type: ignore[arg-type]
        last_message=LastMessage(
            id=last.id,
            key=last.key,
            direction=last.direction,
            type=last.type,
            preview=last.preview,
            status=last.status,
            status_rank=int(last.status_rank or 0),
            at=utc(last.at),  # type: ignore[arg-type]
        )
        if last is not None
        else None,
        last_inbound_at=utc(item.last_inbound_at),
        last_inbound_key=item.last_inbound_key,
        unread_count=int(item.unread_count or 0),
        read_up_to=item.read_up_to,
        version=int(item.version or 0),
        expires_at=int(item.expires_at) if item.expires_at is not None else None,
        created_at=utc(item.created_at),
        updated_at=utc(item.updated_at),
    )


def activity_sort_key(conversation: Conversation) -> str:
    return message_store.conversation_sort_key(conversation.last_activity_at, conversation.id)


def conversation_item(c: Conversation, version: int) -> m.ConversationModel:
    pk, sk = conversation_key(c.ws, c.id)
    last = c.last_message
    item = m.ConversationModel(
        pk,
        sk,
        ws_id=c.ws,
        contact_id=c.id,
        status=c.status,
        status_at=c.status_at,
        assignee_sub=c.assignee,
        snoozed_until=c.snoozed_until,
        last_activity_at=c.last_activity_at,
        last_message=m.LastMessageMap(
            id=last.id,
            key=last.key,
            direction=last.direction,
            type=last.type,
            preview=last.preview,
            status=last.status,
            status_rank=last.status_rank,
            at=last.at,
        )
        if last is not None
        else None,
        last_inbound_at=c.last_inbound_at,
        last_inbound_key=c.last_inbound_key,
        unread_count=c.unread_count,
        read_up_to=c.read_up_to,
        version=version,
        created_at=c.created_at,
    )
    # One index entry (InboxByStatus), in no GSI1/GSI2: a Put of an item written before drops those.
    item.inbox_pk, item.inbox_sk = m.inbox_pk(c.ws, c.status), activity_sort_key(c)
    expires = c.expires_at or content_expires_at(clock.now())
    item.expires_at = expires
    item.expiry_bucket = retention.expiry_bucket(int(expires), f"{pk}#{sk}")  # type: ignore[arg-type]
    return item
