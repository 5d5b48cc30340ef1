"""Contacts as a conversation list row shows them: name and phone only, read for a whole page at
once (BatchGetItem), without the contacts repository's full record and its consent history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from relasify.data import models as m
from relasify.data.base import BATCH_GET_MAX_KEYS, chunks


@dataclass(frozen=True, slots=True)
class ContactSummary:
    id: str
    name: str | None
    phone: str | None


def contact_summaries(ws: str, contact_ids: Iterable[str]) -> dict[str, ContactSummary]:
    """Name and phone of the contacts of a page, in BatchGetItem requests (100 keys each)."""
    model = m.ContactModel
    out: dict[str, ContactSummary] = {}
    for chunk in chunks(sorted(set(contact_ids)), BATCH_GET_MAX_KEYS):
        for item in model.batch_get([(m.ws_pk(ws), f"{model.SK_PREFIX}{cid}") for cid in chunk]):
            if not item.is_expired and item.ws_id == ws:
                out[item.contact_id] = ContactSummary(id=item.contact_id, name=item.name, phone=item.phone)
    return out
