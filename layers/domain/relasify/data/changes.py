"""The change feed (SPEC section 5b): one small item per change an event describes, written IN THE
SAME TransactWriteItems as the change itself (an outbox), so a crash between the commit and the push
loses nothing: the stream publisher pushes it, and `GET .../changes?since=` replays it.

Item: PK `CHG#<ws>`, SK `<seq>`; ids only (never message content), TTL 48 h.

Contact events (`contact.created`, `contact.updated`, `contact.opted_out`) feed only the outgoing
webhooks (SPEC 5c), not the socket or `GET .../changes` (SPEC 5b lists conversation events): they
live under PK `CHG#<ws>#CONTACTS` (same `CHG#` prefix, so the same stream filter carries them to
the publisher; a different partition, so the feed's Query never reads them).

`seq` is a time-ordered id (ULID layout, `relasify.data.ids.new_id`) drawn when the write is
attempted, not a per-workspace counter: a counter would be one more conditional item in every
transaction of the workspace, so all of its writers (a broadcast's thousands of statuses) would
conflict on it. The cost of the time order: two writers of one workspace may commit in the other
order than their seqs (clock skew between containers, a slow commit). The feed therefore only
serves items older than `SETTLE` (a seq drawn then has committed or failed by now), so a client
that follows `next_since` never skips an item that commits late.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from pynamodb.attributes import UnicodeAttribute

from relasify import clock
from relasify.data.base import TableModel
from relasify.data.ids import new_id
from relasify.retention import DataClass

EventType = Literal["message.created", "message.updated", "note.created", "conversation.updated"]
ContactEventType = Literal["contact.created", "contact.updated", "contact.opted_out"]
REALTIME_TYPES: frozenset[str] = frozenset(
    ("message.created", "message.updated", "note.created", "conversation.updated")
)
CONTACT_TYPES: frozenset[str] = frozenset(("contact.created", "contact.updated", "contact.opted_out"))
PK_PREFIX = "CHG#"  # the stream's event source mapping filters on it (template.yaml)
KEEP = timedelta(hours=48)
SETTLE = timedelta(seconds=2)
MAX_PAGE = 100
SEQ_PATTERN = r"^[0-9a-hjkmnp-tv-z]{26}$"
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_RANDOM_BITS = 80


class ChangeEventModel(TableModel):
    """PK `CHG#<ws>`, SK `<seq>`: one change of a workspace, ids only."""

    data_class: ClassVar[DataClass] = DataClass.OPERATIONAL

    ws_id = UnicodeAttribute()
    seq = UnicodeAttribute()
    event_type = UnicodeAttribute()
    conversation_id = UnicodeAttribute(null=True)  # absent on contact events
    message_id = UnicodeAttribute(null=True)
    contact_id = UnicodeAttribute(null=True)  # contact events only

    def stamp_for_write(self) -> None:
        # Own 48 h TTL, and no `expiry_bucket`: the sweep need not find these (reads filter on
        # `seq`'s age), and a ByExpiry index entry would double the cost of every event.
        now = clock.now()
        self.created_at = self.created_at or now
        self.updated_at = now


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    seq: str
    workspace_id: str
    type: str
    conversation_id: str | None
    message_id: str | None = None
    contact_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seq": self.seq,
            "workspace_id": self.workspace_id,
            "type": self.type,
            "conversation_id": self.conversation_id,
        }
        if self.message_id is not None:
            out["message_id"] = self.message_id
        return out


def change_pk(ws: str) -> str:
    return f"{PK_PREFIX}{ws}"


def contact_change_pk(ws: str) -> str:
    return f"{PK_PREFIX}{ws}#CONTACTS"


def event_item(
    ws: str, event_type: EventType, conversation_id: str, message_id: str | None = None, *, seq: str | None = None
) -> ChangeEventModel:
    """A new event item (a fresh seq, or the one the change recorded when it is put after it, by key):
    put it in the transaction of the change it describes."""
    seq = seq or new_id()
    return ChangeEventModel(
        change_pk(ws),
        seq,
        ws_id=ws,
        seq=seq,
        event_type=event_type,
        conversation_id=conversation_id,
        message_id=message_id,
        expires_at=int((clock.now() + KEEP).timestamp()),
    )


def add_to(tx: Any, ws: str, event_type: EventType, conversation_id: str, message_id: str | None = None) -> None:
    """Put an event in a TransactWrite (no condition: a seq is unique)."""
    tx.save(event_item(ws, event_type, conversation_id, message_id))


def add_contact_event(tx: Any, ws: str, event_type: ContactEventType, contact_id: str) -> None:
    """Put a contact event in the TransactWrite of the contact change it describes."""
    seq = new_id()
    tx.save(
        ChangeEventModel(
            contact_change_pk(ws),
            seq,
            ws_id=ws,
            seq=seq,
            event_type=event_type,
            contact_id=contact_id,
            expires_at=int((clock.now() + KEEP).timestamp()),
        )
    )


def from_item(item: ChangeEventModel) -> ChangeEvent:
    return ChangeEvent(item.seq, item.ws_id, item.event_type, item.conversation_id, item.message_id, item.contact_id)


def from_stream_image(image: dict[str, Any]) -> ChangeEvent | None:
    """An event from a DynamoDB Streams NEW_IMAGE (raw attribute values); None for other items."""
    if not str(image.get("PK", {}).get("S", "")).startswith(PK_PREFIX):
        return None
    try:
        item = ChangeEventModel.from_raw_data(image)
    except (KeyError, ValueError, TypeError, AttributeError):
        return None
    return from_item(item)


# --- seqs and time ------------------------------------------------------------------------------------


def seq_time(seq: str) -> datetime:
    value = 0
    for char in seq:
        value = value * 32 + _CROCKFORD.index(char)
    millis = value >> _RANDOM_BITS
    try:
        return datetime.fromtimestamp(millis / 1000, tz=UTC)
    except (OverflowError, ValueError, OSError):
        # A seq past the year 9999 (a made-up one): later than any event, so never expired (was a 500).
        return datetime.max.replace(tzinfo=UTC)


def seq_at(at: datetime, *, last: bool) -> str:
    """The smallest (or largest, `last`) seq of the millisecond `at`."""
    millis = int(at.timestamp() * 1000) & ((1 << 48) - 1)
    value = (millis << _RANDOM_BITS) | (((1 << _RANDOM_BITS) - 1) if last else 0)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


# --- reading ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChangePage:
    items: list[ChangeEvent]
    next_since: str


def list_after(ws: str, since: str, *, limit: int = MAX_PAGE) -> ChangePage:
    """The settled events of `ws` after `since`, oldest first. `next_since`: the last one returned
    when the page is full (more may follow), else the settle horizon (every event up to it has
    been returned, and any later commit gets a later seq), so a quiet cursor never ages out."""
    horizon = seq_at(clock.now() - SETTLE, last=True)
    if since >= horizon:
        return ChangePage([], since)
    model = ChangeEventModel
    items = []
    for item in model.query(
        change_pk(ws),
        model.sk.between(since, horizon),
        limit=limit + 1,
        consistent_read=True,
        scan_index_forward=True,
    ):
        if item.seq == since:
            continue
        items.append(from_item(item))
        if len(items) == limit:
            break
    return ChangePage(items, items[-1].seq if len(items) == limit else horizon)
