"""A conversation's thread (messages and notes) over the sparse `Timeline` index: one entry per thread
item, `TimelinePK` `WS#<ws>#CONV#<cid>` / `TimelineSK` `<iso ts>#<mid>`, keys set by the item's put and
never changed, projecting only `direction` and `expires_at` (set by the put too). So a status update,
a reaction or a media copy rewrites no index entry: the message item alone (docs/DATA_MODEL.md).

A page is read from the index (keys, expired entries filtered there), then its items in BatchGetItem
requests, in the index's order; eventually consistent, as the index is. Items written before the
index carried the same keys as `GSI1PK`/`GSI1SK` (`relasify.data.timeline_backfill` moves them).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from relasify.data import models as m
from relasify.data.base import BATCH_GET_MAX_KEYS, QueryPage, chunks

_LEGACY_KEYS = {"GSI1PK": "TimelinePK", "GSI1SK": "TimelineSK"}


def place(item: m.MessageModel, sort_key: str) -> None:
    """Put a new thread item in its conversation's timeline (before its first put)."""
    item.timeline_pk = m.conversation_pk(item.ws_id, item.contact_id)
    item.timeline_sk = sort_key


def start_key(key: dict[str, Any] | None) -> dict[str, Any] | None:
    """A cursor's start key for the index: one issued by the GSI1 thread before the index (same key
    values, other attribute names) resumes at the same place."""
    if not key or "TimelinePK" in key:
        return key
    return {_LEGACY_KEYS.get(name, name): value for name, value in key.items()}


def page(
    ws: str,
    contact_id: str,
    *,
    limit: int,
    exclusive_start_key: dict[str, Any] | None = None,
    after: str | None = None,
    newest_first: bool = True,
) -> QueryPage[m.MessageModel]:
    """Up to `limit` live thread items (after the sort key `after` if given), in thread order (newest
    first unless `newest_first` is False); the returned key resumes after the last entry read."""
    model = m.MessageModel
    results = model.timeline.query(
        m.conversation_pk(ws, contact_id),
        model.timeline_sk > after if after else None,
        filter_condition=model.live_condition(),
        limit=limit,
        last_evaluated_key=start_key(exclusive_start_key),
        scan_index_forward=not newest_first,
    )
    entries = list(results)
    return QueryPage(items=full_items(entries), last_evaluated_key=results.last_evaluated_key)


def full_items(entries: list[m.MessageModel]) -> list[m.MessageModel]:
    """The items of index entries, in their order (BatchGetItem, 100 keys per request). One erased or
    expired since the Query is left out."""
    found: dict[str, m.MessageModel] = {}
    for chunk in chunks(list(dict.fromkeys((e.pk, e.sk) for e in entries)), BATCH_GET_MAX_KEYS):
        for item in m.MessageModel.batch_get(chunk):
            if not item.is_expired:
                found[item.pk] = item
    return [found[e.pk] for e in entries if e.pk in found]


def items(ws: str, contact_id: str, *, newest_first: bool = True, page_size: int = 100) -> Iterator[m.MessageModel]:
    """Every live thread item, in thread order, read page by page (bounded callers: the export)."""
    start: dict[str, Any] | None = None
    while True:
        found = page(ws, contact_id, limit=page_size, exclusive_start_key=start, newest_first=newest_first)
        yield from found.items
        start = found.last_evaluated_key
        if not start:
            return


def count_inbound_after(ws: str, contact_id: str, key: str | None) -> int:
    """Inbound thread items after the sort key `key` (all when None): from the index alone
    (`direction` is projected), one COUNT Query."""
    model = m.MessageModel
    return model.count(
        m.conversation_pk(ws, contact_id),
        model.timeline_sk > key if key else None,
        filter_condition=(model.direction == "in") & model.live_condition(),
        index_name=model.timeline.Meta.index_name,
    )
