"""The inbox listings and counts (SPEC section 5a) over the sparse `InboxByStatus` index: one entry per
conversation, `WS#<ws>#INBOX#<status>` / `<iso last activity>#<cid>`, projecting only what the
listings filter on (assignee, unread count, snooze end, TTL). A page is read from the index, then
its conversations in one BatchGetItem (docs/INBOX.md). The items themselves are written by
`relasify.data.conversations`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from relasify.data import conversation_state, conversations
from relasify.data import models as m
from relasify.data.base import BATCH_GET_MAX_KEYS, chunks, utc
from relasify.data.conversation_state import Conversation
from relasify.data.cursor import decode_cursor, encode_cursor
from relasify.data.records import Page

MAX_PAGE = conversations.MAX_PAGE
_MAX_MERGE_ROUNDS = 4


@dataclass(frozen=True, slots=True)
class Stream:
    """One InboxByStatus partition (a status), newest activity first, with an optional filter on the
    projected attributes (assignee, unread count, snooze end)."""

    hash_key: str
    filter_condition: Any = None


def stream(
    ws: str, status: str, *, by_assignee: bool = False, assignee: str | None = None, filter_condition: Any = None
) -> Stream:
    """The partition of `status`; with `by_assignee`, only `assignee`'s (None = unassigned): a filter,
    not a partition of its own, so an assignment moves no index entry between partitions."""
    if by_assignee:
        condition = assignee_filter(assignee)
        filter_condition = condition if filter_condition is None else (condition & filter_condition)
    return Stream(m.inbox_pk(ws, status), filter_condition)


def _query(stream: Stream, before: str | None, limit: int) -> tuple[list[m.ConversationModel], str | None]:
    """Index entries (keys and the projected attributes only) of one partition below `before`."""
    model = m.ConversationModel
    condition = model.live_condition()
    if stream.filter_condition is not None:
        condition = stream.filter_condition & condition
    results = model.inbox_by_status.query(
        stream.hash_key,
        model.inbox_sk < before if before else None,
        filter_condition=condition,
        limit=limit,
        scan_index_forward=False,
    )
    items = list(results)
    last = results.last_evaluated_key
    return items, (last["InboxSK"]["S"] if last else None)


def _full_items(entries: list[m.ConversationModel]) -> list[m.ConversationModel]:
    """The items of index entries, in their order (BatchGetItem, 100 keys per request). One erased
    or expired meanwhile, or moved to another status (its entry was stale), is left out."""
    found: dict[str, m.ConversationModel] = {}
    for chunk in chunks([(e.pk, e.sk) for e in entries], BATCH_GET_MAX_KEYS):
        for item in m.ConversationModel.batch_get(chunk):
            if not item.is_expired:
                found[item.pk] = item
    return [found[e.pk] for e in entries if e.pk in found and found[e.pk].inbox_pk == e.inbox_pk]


def list_page(ws: str, streams: list[Stream], *, limit: int, cursor: str | None, scope: str) -> Page[Conversation]:
    """Newest activity first over the union of `streams` (disjoint partitions sorted by the same key):
    each is read from the cursor on, and only what every unfinished stream has covered is returned.
    The cursor is the sort key of the last row returned (signed, bound to workspace and listing).
    The index holds what the filters need; the rows are then read in one BatchGetItem."""
    limit = max(1, min(int(limit), MAX_PAGE))
    start = decode_cursor(cursor, ws=ws, scope=scope)
    before = str(start["at"]) if start and "at" in start else None
    page: list[m.ConversationModel] = []
    more = False
    for _ in range(_MAX_MERGE_ROUNDS):
        found: list[tuple[str, m.ConversationModel]] = []
        frontiers: list[str] = []
        for stream in streams:
            items, frontier = _query(stream, before, limit - len(page))
            found += [((i.inbox_sk or ""), i) for i in items]
            if frontier is not None:
                frontiers.append(frontier)
        cutoff = max(frontiers) if frontiers else ""
        found.sort(key=lambda pair: pair[0], reverse=True)
        covered = [pair for pair in found if pair[0] >= cutoff]
        take = covered[: limit - len(page)]
        page += [i for _, i in take]
        more = bool(frontiers) or len(covered) > len(take)
        if not more or len(page) >= limit:
            break
        before = take[-1][0] if take else cutoff
    next_cursor = None
    if more and page:
        next_cursor = encode_cursor({"at": page[-1].inbox_sk}, ws=ws, scope=scope)
    elif more and before:
        next_cursor = encode_cursor({"at": before}, ws=ws, scope=scope)
    return Page(items=[conversation_state.to_record(i) for i in _full_items(page)], next_cursor=next_cursor)


def count(stream: Stream) -> int:
    model = m.ConversationModel
    condition = model.live_condition()
    if stream.filter_condition is not None:
        condition = stream.filter_condition & condition
    return model.count(stream.hash_key, filter_condition=condition, index_name=model.inbox_by_status.Meta.index_name)


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """A conversation as its index entry has it: enough for the counts."""

    id: str
    assignee: str | None
    snoozed_until: datetime | None

    def snooze_over(self, now: datetime) -> bool:
        return self.snoozed_until is None or self.snoozed_until <= now


def entries(ws: str, status: str) -> list[InboxEntry]:
    """Every live conversation of one status, from the index alone (the counts: one Query gives the
    total, the caller's and the unassigned ones)."""
    model = m.ConversationModel
    results = model.inbox_by_status.query(m.inbox_pk(ws, status), filter_condition=model.live_condition())
    return [
        InboxEntry(id=i.pk.rsplit("#", 1)[-1], assignee=i.assignee_sub, snoozed_until=utc(i.snoozed_until))
        for i in results
    ]


def snooze_filter(*, over: bool, now: datetime) -> Any:
    model = m.ConversationModel
    return (model.snoozed_until <= now) if over else (model.snoozed_until > now)


def unread_filter() -> Any:
    return m.ConversationModel.unread_count > 0


def assignee_filter(assignee: str | None) -> Any:
    model = m.ConversationModel
    return model.assignee_sub.does_not_exist() if assignee is None else (model.assignee_sub == assignee)
