"""Canned replies (SPEC section 5a): agents read and search them by shortcut prefix; admins manage them."""

from __future__ import annotations

from relasify.data import canned_replies as store
from relasify.data.canned_replies import CannedReply
from relasify.data.memberships import Membership
from relasify.data.records import Page
from relasify.errors import NotFound
from relasify.schemas.canned_replies import CannedReplyCreate, CannedReplyPatch


def search(ws: str, q: str | None, *, limit: int, cursor: str | None) -> Page[CannedReply]:
    """By shortcut prefix (what an agent types after "/"); the query is lower-cased like shortcuts."""
    return store.search(ws, (q or "").strip().lower(), limit=limit, cursor=cursor)


def create(caller: Membership, body: CannedReplyCreate) -> CannedReply:
    return store.create(caller.ws, shortcut=body.shortcut, body=body.body, actor=caller.sub)


def get(ws: str, reply_id: str) -> CannedReply:
    reply = store.get(ws, reply_id)
    if reply is None:
        raise NotFound("Canned reply not found.")
    return reply


def update(caller: Membership, reply_id: str, body: CannedReplyPatch) -> CannedReply:
    return store.update(caller.ws, reply_id, shortcut=body.shortcut, body=body.body, actor=caller.sub)


def delete(caller: Membership, reply_id: str) -> None:
    if not store.delete(caller.ws, reply_id):
        raise NotFound("Canned reply not found.")
