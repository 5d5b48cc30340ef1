"""Canned replies of a workspace (SPEC section 5a): saved answers agents insert by shortcut.

Items live in the workspace's own partition, so the closure stamp (`data/sweep.workspace_account_keys`
walks `WS#<ws>`) reaches them with no extra code; they are account data (kept while the workspace is
active, stamped at closure):
- the reply: PK `WS#<ws>`, SK `CANNED#<id>`; GSI1 `WS#<ws>#CANNED` / `<shortcut>#<id>` (prefix search
  on the shortcut is a key condition, listings are in shortcut order);
- the shortcut marker: PK `WS#<ws>`, SK `CANNEDKEY#<shortcut>` -> the reply id. Created, moved and
  deleted in the same transaction as the reply, conditional on `attribute_not_exists`: one reply per
  shortcut per workspace, atomically (the loser learns the holder's id from ALL_OLD).
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel
from pynamodb.attributes import UnicodeAttribute
from pynamodb.constants import ALL_OLD
from pynamodb.exceptions import TransactWriteError

from relasify.data import models as m
from relasify.data.base import TableModel, query_page, transaction
from relasify.data.cursor import decode_cursor, encode_cursor
from relasify.data.ids import new_id
from relasify.data.records import Page
from relasify.data.tx import cancellation_codes
from relasify.errors import Conflict, NotFound
from relasify.retention import DataClass

REPLY_SK_PREFIX = "CANNED#"
SHORTCUT_SK_PREFIX = "CANNEDKEY#"
MAX_PAGE = 100
_RETRIES = 3


class DuplicateShortcut(Conflict):
    type_slug = "duplicate-shortcut"
    title = "A canned reply with this shortcut already exists"


class CannedReplyModel(TableModel):
    """PK `WS#<ws>`, SK `CANNED#<id>`; GSI1 `WS#<ws>#CANNED` / `<shortcut>#<id>`."""

    data_class: ClassVar[DataClass] = DataClass.ACCOUNT

    ws_id = UnicodeAttribute()
    reply_id = UnicodeAttribute()
    shortcut = UnicodeAttribute()
    body = UnicodeAttribute()
    created_by = UnicodeAttribute(null=True)
    updated_by = UnicodeAttribute(null=True)


class CannedShortcutModel(TableModel):
    """PK `WS#<ws>`, SK `CANNEDKEY#<shortcut>`: the shortcut is taken by `reply_id`."""

    data_class: ClassVar[DataClass] = DataClass.ACCOUNT

    ws_id = UnicodeAttribute()
    reply_id = UnicodeAttribute()


class CannedReply(BaseModel):
    id: str
    shortcut: str
    body: str
    created_by: str | None = None
    updated_by: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


def index_pk(ws: str) -> str:
    return f"WS#{ws}#CANNED"


def _reply_key(ws: str, reply_id: str) -> tuple[str, str]:
    return m.ws_pk(ws), f"{REPLY_SK_PREFIX}{reply_id}"


def _shortcut_key(ws: str, shortcut: str) -> tuple[str, str]:
    return m.ws_pk(ws), f"{SHORTCUT_SK_PREFIX}{shortcut}"


def _record(item: CannedReplyModel) -> CannedReply:
    return CannedReply(
        id=item.reply_id,
        shortcut=item.shortcut,
        body=item.body,
        created_by=item.created_by,
        updated_by=item.updated_by,
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


def _marker(ws: str, shortcut: str, reply_id: str) -> CannedShortcutModel:
    return CannedShortcutModel(*_shortcut_key(ws, shortcut), ws_id=ws, reply_id=reply_id)


def _raise_if_taken(ws: str, shortcut: str, tx: object, exc: TransactWriteError) -> None:
    failures = tx.failures(exc)  # type: ignore[attr-defined]
    failure = failures.get(_shortcut_key(ws, shortcut))
    if failure is None or failure.code != "ConditionalCheckFailed":
        return
    holder = ((failure.item or {}).get("reply_id") or {}).get("S")
    if holder is None:  # an emulator that ignores ALL_OLD: read the marker
        marker = CannedShortcutModel.get_live(*_shortcut_key(ws, shortcut), consistent_read=True)
        holder = marker.reply_id if marker else None
    raise DuplicateShortcut(f"The shortcut {shortcut!r} is already used.", existing_id=holder)


def create(ws: str, *, shortcut: str, body: str, actor: str | None) -> CannedReply:
    reply_id = new_id()
    item = CannedReplyModel(
        *_reply_key(ws, reply_id), ws_id=ws, reply_id=reply_id, shortcut=shortcut, body=body, created_by=actor
    )
    item.gsi1pk, item.gsi1sk = index_pk(ws), f"{shortcut}#{reply_id}"
    with_tx = transaction()
    try:
        with with_tx as tx:
            tx.save(item, condition=CannedReplyModel.pk.does_not_exist())
            tx.save(
                _marker(ws, shortcut, reply_id),
                condition=CannedShortcutModel.pk.does_not_exist(),
                return_values=ALL_OLD,
            )
    except TransactWriteError as exc:
        _raise_if_taken(ws, shortcut, with_tx, exc)
        raise
    return _record(item)


def get(ws: str, reply_id: str, *, consistent: bool = False) -> CannedReply | None:
    item = CannedReplyModel.get_live(*_reply_key(ws, reply_id), consistent_read=consistent)
    return _record(item) if item else None


def search(ws: str, prefix: str, *, limit: int, cursor: str | None) -> Page[CannedReply]:
    """Replies whose shortcut starts with `prefix` ("" for all), in shortcut order: one GSI1 Query."""
    scope = f"canned:{prefix}"
    page = query_page(
        CannedReplyModel,
        index_pk(ws),
        CannedReplyModel.gsi1sk.startswith(prefix) if prefix else None,
        index=CannedReplyModel.gsi1,
        limit=max(1, min(limit, MAX_PAGE)),
        exclusive_start_key=decode_cursor(cursor, ws=ws, scope=scope),
    )
    return Page(
        items=[_record(i) for i in page.items],
        next_cursor=encode_cursor(page.last_evaluated_key, ws=ws, scope=scope),
    )


def update(ws: str, reply_id: str, *, shortcut: str | None, body: str | None, actor: str | None) -> CannedReply:
    """Change the body and/or the shortcut (the marker moves in the same transaction). Optimistic:
    conditional on the `updated_at` read, retried on a race."""
    for _ in range(_RETRIES):
        item = CannedReplyModel.get_live(*_reply_key(ws, reply_id), consistent_read=True)
        if item is None:
            raise NotFound("Canned reply not found.")
        read_at = item.updated_at
        old_shortcut = item.shortcut
        if body is not None:
            item.body = body
        if shortcut is not None:
            item.shortcut = shortcut
            item.gsi1sk = f"{shortcut}#{reply_id}"
        item.updated_by = actor
        moved = item.shortcut != old_shortcut
        with_tx = transaction()
        try:
            with with_tx as tx:
                tx.save(item, condition=CannedReplyModel.pk.exists() & (CannedReplyModel.updated_at == read_at))
                if moved:
                    tx.save(
                        _marker(ws, item.shortcut, reply_id),
                        condition=CannedShortcutModel.pk.does_not_exist(),
                        return_values=ALL_OLD,
                    )
                    tx.delete(
                        CannedShortcutModel(*_shortcut_key(ws, old_shortcut)),
                        condition=CannedShortcutModel.reply_id == reply_id,
                    )
        except TransactWriteError as exc:
            if moved:
                _raise_if_taken(ws, item.shortcut, with_tx, exc)
            if "ConditionalCheckFailed" in cancellation_codes(exc) or "TransactionConflict" in cancellation_codes(exc):
                continue  # changed (or deleted) since we read it: re-read
            raise
        return _record(item)
    raise Conflict("The canned reply changed concurrently; retry.")


def delete(ws: str, reply_id: str) -> bool:
    """Delete the reply and its shortcut marker together. False when there was none."""
    item = CannedReplyModel.get_live(*_reply_key(ws, reply_id), consistent_read=True)
    if item is None:
        return False
    try:
        with transaction() as tx:
            tx.delete(item, condition=CannedReplyModel.pk.exists())
            tx.delete(
                CannedShortcutModel(*_shortcut_key(ws, item.shortcut)),
                condition=CannedShortcutModel.pk.does_not_exist() | (CannedShortcutModel.reply_id == reply_id),
            )
    except TransactWriteError as exc:
        if "ConditionalCheckFailed" in cancellation_codes(exc):
            return False  # deleted concurrently
        raise
    return True
