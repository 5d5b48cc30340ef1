"""The import worker's batched contact writes: reading the contacts a batch's phones belong to, and
writing its creates and merges (step 2 of the checkpoint protocol in relasify/data/imports.py). Every
write is an idempotent merge (re-applying a row changes nothing), so replaying a batch is harmless.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import lru_cache
from typing import Any

from pydantic import Field
from pynamodb.constants import ALL_OLD, NONE

from relasify.data import contact_search
from relasify.data import models as m
from relasify.data.base import BATCH_GET_MAX_KEYS, chunks
from relasify.data.contact_items import (
    contact_from_item,
    contact_key,
    event_map,
    legacy_index_key_removals,
    tag_item,
)
from relasify.data.contact_markers import marker_is_free, unique_marker_key
from relasify.data.imports import JobStateConflict, update_quietly
from relasify.data.records import AttributeValue, ConsentEvent, Contact, Record
from relasify.data.tx import is_condition_failure


class NewImportedContact(Record):
    contact_id: str
    phone: str
    name: str | None = None
    email: str | None = None
    tags: list[str] = Field(default_factory=list)
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)
    consent: ConsentEvent | None = None


class ContactMerge(Record):
    """Changes to an existing contact; None leaves a field as it is."""

    contact_id: str
    phone: str
    expected_updated_at: datetime | None
    name: str | None = None
    email: str | None = None
    tags: list[str] | None = None  # the full new list
    added_tags: list[str] = Field(default_factory=list)
    attributes: dict[str, AttributeValue] | None = None  # the full new map
    consent: ConsentEvent | None = None


# What planning a merge needs of an existing contact (smaller reads than the whole item).
_MERGE_FIELDS = [
    "PK",
    "SK",
    "ws_id",
    "contact_id",
    "phone",
    "name",
    "email",
    "tags",
    "attributes",
    "consent",
    "updated_at",
    "expires_at",
]


def existing_by_phone(ws: str, phones: Iterable[str]) -> tuple[dict[str, Contact], dict[str, str]]:
    """The live contacts holding these phones, and "orphan" markers (phone -> contact id) whose
    contact was never written because an import died between claiming and writing; the import
    that finds one completes it under that id. Consistent reads: a replay must see its own writes."""
    wanted = list(dict.fromkeys(phones))
    owners: dict[str, str] = {}
    for group in chunks(wanted, BATCH_GET_MAX_KEYS):
        keys = [unique_marker_key(ws, "phone", p) for p in group]
        for marker in m.ContactUniqueModel.batch_get(keys, consistent_read=True):
            if not marker.is_expired:
                owners[marker.value] = marker.contact_id
    found: dict[str, Contact] = {}
    by_id = {cid: phone for phone, cid in owners.items()}
    for group in chunks(list(by_id), BATCH_GET_MAX_KEYS):
        keys = [contact_key(ws, cid) for cid in group]
        for item in m.ContactModel.batch_get(keys, consistent_read=True, attributes_to_get=_MERGE_FIELDS):
            if not item.is_expired and item.phone == by_id.get(item.contact_id):
                found[item.phone] = contact_from_item(item)
    orphans = {phone: cid for phone, cid in owners.items() if phone not in found}
    return found, orphans


def _contact_item(ws: str, new: NewImportedContact) -> m.ContactModel:
    item = m.ContactModel(
        *contact_key(ws, new.contact_id),
        ws_id=ws,
        contact_id=new.contact_id,
        phone=new.phone,
        name=new.name,
        email=new.email,
        tags=list(new.tags),
        custom_attributes=dict(new.attributes),
    )
    if new.consent is not None:
        item.consent = m.ConsentMap(
            status=new.consent.status, source=new.consent.source, at=new.consent.at, history=[event_map(new.consent)]
        )
    return item


def _claim_phone(ws: str, phone: str, contact_id: str) -> bool:
    """Claim the phone's uniqueness marker for `contact_id` (or find it already ours)."""
    marker = m.ContactUniqueModel(
        *unique_marker_key(ws, "phone", phone), ws_id=ws, kind="phone", value=phone, contact_id=contact_id
    )
    try:
        marker.save(condition=marker_is_free() | (m.ContactUniqueModel.contact_id == contact_id))
    except Exception as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def _merge_contact(ws: str, merge: ContactMerge) -> bool:
    """One conditional update (the contact is as we read it); False when it changed meanwhile."""
    model = m.ContactModel
    actions: list[Any] = [model.touch(), *legacy_index_key_removals()]
    if merge.name is not None:
        actions.append(model.name.set(merge.name))
    if merge.email is not None:
        actions.append(model.email.set(merge.email))
    if merge.tags is not None:
        actions.append(model.tags.set(merge.tags))
    if merge.attributes is not None:
        actions.append(model.custom_attributes.set(merge.attributes))
    if merge.consent is not None:
        event = merge.consent
        actions += [
            model.consent.status.set(event.status),
            model.consent.source.set(event.source) if event.source else model.consent.source.remove(),
            model.consent.at.set(event.at),
            model.consent.history.set(model.consent.history.append([event_map(event)])),
        ]
    condition = model.pk.exists() & model.live_condition() & (model.phone == merge.phone)
    if merge.expected_updated_at is not None:
        condition = condition & (model.updated_at == merge.expected_updated_at)
    renamed = merge.name is not None or merge.email is not None
    try:
        response = update_quietly(
            contact_key(ws, merge.contact_id), actions, condition, JobStateConflict, ALL_OLD if renamed else NONE
        )
    except JobStateConflict:
        return False
    if renamed:
        # The search words follow the name and e-mail (after the update: only then is the old item
        # known; a crash here leaves words the search skips as stale until the contact's next write).
        old = response.get("Attributes") or {}
        name, email = (old.get("name") or {}).get("S"), (old.get("email") or {}).get("S")
        before = contact_search.contact_words(name, email, merge.phone)
        after = contact_search.contact_words(
            merge.name if merge.name is not None else name,
            merge.email if merge.email is not None else email,
            merge.phone,
        )
        contact_search.put_words(ws, merge.contact_id, [w for w in after if w not in before])
        contact_search.delete_words(ws, merge.contact_id, [w for w in before if w not in after])
    return True


def write_contacts(
    ws: str,
    creates: list[NewImportedContact],
    merges: list[ContactMerge],
    *,
    after_step: Callable[[], None] | None = None,
) -> set[str]:
    """Apply a batch's creates and merges; returns the phones refused because of a concurrent change
    (the caller re-reads and re-plans those).

    Order matters for a crash at any point: phone markers are claimed first (conditional puts: one
    contact per phone even against concurrent API creates), then tag items, then the contacts
    (batched puts), then merges (tag items before the conditional update). A re-run finds claimed
    markers without a contact ("orphans") and completes them under the same id; tag items are
    written before the contact that lists them, so a re-run that sees the tag on the contact
    knows its item exists. DynamoDB transactions would do the same in fewer steps, but cost a
    round trip per 100 items either way, and emulators copy the whole table per transaction item.
    """
    hit = after_step or (lambda: None)
    pool = _pool()
    claimed = list(pool.map(lambda new: _claim_phone(ws, new.phone, new.contact_id), creates))
    refused = {new.phone for new, ok in zip(creates, claimed, strict=True) if not ok}
    hit()
    winners = [new for new in creates if new.phone not in refused]
    with m.ContactTagModel.batch_write() as batch:
        for new in winners:
            for tag in new.tags:
                batch.save(tag_item(ws, tag, new.contact_id))
            # Search words, like tag items, before the contact: a re-run rewrites them harmlessly.
            for word in contact_search.contact_words(new.name, new.email, new.phone):
                batch.save(contact_search.word_item(ws, word, new.contact_id))
        for merge in merges:
            for tag in merge.added_tags:
                batch.save(tag_item(ws, tag, merge.contact_id))
    with m.ContactModel.batch_write() as contacts:
        for new in winners:
            contacts.save(_contact_item(ws, new))
    hit()
    merged = list(pool.map(lambda merge: _merge_contact(ws, merge), merges))
    refused |= {merge.phone for merge, ok in zip(merges, merged, strict=True) if not ok}
    hit()
    return refused


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    # Conditional single-item writes are independent round trips: overlap them.
    return ThreadPoolExecutor(max_workers=8, thread_name_prefix="import-writes")
