"""Contacts repository: one contact per phone / wa_id / user_id per workspace, enforced with
uniqueness markers written in the same transaction as the contact.

`ContactRepository` is the interface; `DynamoContactRepository` the single-table implementation
(its writes here, its reads inherited from `relasify.data.contact_reads.DynamoContactReads`);
`contact_repository()` the process-wide instance. Phones arrive already normalised to E.164.
The items beside a contact (tags, search words) are built by `relasify.data.contact_items`, its
markers by `relasify.data.contact_markers`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from pynamodb.constants import ALL_OLD, NONE
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from relasify.data import changes as change_feed
from relasify.data import contact_search
from relasify.data import models as m
from relasify.data.base import transaction
from relasify.data.contact_items import (
    UNIQUE_KINDS,
    UniqueKind,
    clear_index_keys,
    contact_from_item,
    contact_key,
    event_map,
    legacy_index_key_removals,
    search_words,
    tag_item,
    tag_item_key,
    unique_values,
)
from relasify.data.contact_markers import marker_is_free, unique_marker_key
from relasify.data.contact_reads import DynamoContactReads
from relasify.data.ids import new_id
from relasify.data.records import ConsentEvent, Contact, ContactChanges, NewContact, Page
from relasify.data.tx import Failure, Key, cancellation_codes, is_condition_failure
from relasify.errors import Conflict, DuplicateContact, NotFound, ValidationFailed

# A create/update is one TransactWriteItems (at most 100 items): contact + 6 marker moves +
# tag changes (remove old + add new) must fit, hence the tag bound.
MAX_TAGS = 40
TRANSACTION_MAX_ITEMS = 100  # DynamoDB TransactWriteItems
_RETRIES = 3


class ContactRepository(Protocol):
    def create(self, ws: str, new: NewContact) -> Contact: ...
    def create_or_get(self, ws: str, new: NewContact) -> tuple[Contact, bool]: ...
    def get(self, ws: str, contact_id: str) -> Contact | None: ...
    def get_many(self, ws: str, contact_ids: list[str]) -> list[Contact]: ...
    def find_by(self, ws: str, kind: UniqueKind, value: str) -> Contact | None: ...
    def find_by_phone(self, ws: str, phone: str) -> Contact | None: ...
    def find_by_wa_id(self, ws: str, wa_id: str) -> Contact | None: ...
    def find_by_user_id(self, ws: str, user_id: str) -> Contact | None: ...
    def update(self, ws: str, contact_id: str, changes: ContactChanges) -> Contact: ...
    def link_identity(
        self, ws: str, contact_id: str, *, wa_id: str | None = None, user_id: str | None = None
    ) -> Contact: ...
    def delete(self, ws: str, contact_id: str) -> bool: ...
    def list_contacts(self, ws: str, *, limit: int = 50, cursor: str | None = None) -> Page[Contact]: ...
    def list_by_tag(self, ws: str, tag: str, *, limit: int = 50, cursor: str | None = None) -> Page[Contact]: ...
    def tag_member_ids(self, ws: str, tag: str, *, limit: int = 100, cursor: str | None = None) -> Page[str]: ...
    def search(
        self, ws: str, prefix: str, *, also: list[str], tag: str | None, limit: int = 50, cursor: str | None = None
    ) -> Page[Contact]: ...
    def iter_contacts(self, ws: str) -> Iterator[Contact]: ...
    def set_consent(self, ws: str, contact_id: str, event: ConsentEvent) -> Contact: ...
    def set_restricted(self, ws: str, contact_id: str, restricted: bool) -> Contact: ...
    def set_unreachable(self, ws: str, contact_id: str, unreachable: bool) -> Contact: ...
    def record_inbound(self, ws: str, contact_id: str, at: datetime) -> bool: ...


def _follow_phone_change(item: m.ContactModel, *, wa_id_given: bool) -> None:
    """The phone changed: the wa_id and `unreachable` described the old number. Sends address the
    wa_id first, so a kept wa_id would keep messaging the old (possibly someone else's) number.
    The wa_id is cleared rather than derived (sends then use the phone, and Meta's answer or the
    next inbound message links the real wa_id); its marker is released with the contact's write."""
    if not wa_id_given:
        item.wa_id = None
    item.unreachable = False


def _check_transaction_size(
    old_unique: dict[str, str],
    new_unique: dict[str, str],
    old_tags: list[str],
    new_tags: list[str],
    old_words: list[str],
    new_words: list[str],
) -> None:
    """An update is one TransactWriteItems of at most 100 items: refuse (422) the rare change that
    would need more (all 40 tags replaced while name, e-mail and phone change too)."""
    markers = sum(2 for kind in UNIQUE_KINDS if old_unique.get(kind) != new_unique.get(kind))
    tags = len(set(old_tags) ^ set(new_tags))
    words = len(set(old_words) ^ set(new_words))
    if 1 + markers + tags + words > TRANSACTION_MAX_ITEMS:
        raise ValidationFailed(
            "Too many changes in one request: change the tags and the name, e-mail or phone separately."
        )


def _normalise_tags(tags: list[str]) -> list[str]:
    unique = list(dict.fromkeys(t for t in tags if t))
    if len(unique) > MAX_TAGS:
        raise ValidationFailed(
            f"A contact has at most {MAX_TAGS} tags.",
            errors=[{"location": "body/tags", "in": "body", "message": f"at most {MAX_TAGS} tags", "type": "too_long"}],
        )
    return unique


class DynamoContactRepository(DynamoContactReads):
    """`ContactRepository` on the single table (the reads: `DynamoContactReads`)."""

    # --- create -------------------------------------------------------------------------------
    def create(self, ws: str, new: NewContact) -> Contact:
        """Create a contact and its uniqueness markers atomically. A phone / wa_id / user_id already
        taken raises DuplicateContact with `existing_id` (the contact holding it) and `field`."""
        tags = _normalise_tags(new.tags)
        for _ in range(_RETRIES):
            contact_id = new_id()
            item = m.ContactModel(
                *contact_key(ws, contact_id),
                ws_id=ws,
                contact_id=contact_id,
                phone=new.phone,
                wa_id=new.wa_id,
                user_id=new.user_id,
                name=new.name,
                email=new.email,
                tags=tags,
                custom_attributes=dict(new.attributes),
            )
            if new.consent is not None:
                event = event_map(new.consent)
                item.consent = m.ConsentMap(
                    status=new.consent.status, source=new.consent.source, at=new.consent.at, history=[event]
                )
            try:
                with transaction() as tx:
                    tx.save(item, condition=m.ContactModel.pk.does_not_exist())
                    for kind, value in unique_values(item).items():
                        self._claim(tx, ws, kind, value, contact_id)
                    for tag in tags:
                        tx.save(tag_item(ws, tag, contact_id))
                    for word in search_words(item):
                        tx.save(contact_search.word_item(ws, word, contact_id))
                    change_feed.add_contact_event(tx, ws, "contact.created", contact_id)  # outgoing webhooks
            except TransactWriteError as exc:
                self._raise_duplicate(ws, tx.failures(exc))
                if "TransactionConflict" in cancellation_codes(exc):
                    continue  # a concurrent transaction touched a marker: re-check
                raise
            return contact_from_item(item)
        raise Conflict("The contact changed concurrently; retry.")

    def create_or_get(self, ws: str, new: NewContact) -> tuple[Contact, bool]:
        """The new contact and True, or the contact already holding its phone/wa_id/user_id and False."""
        try:
            return self.create(ws, new), True
        except DuplicateContact as dup:
            existing = self.get(ws, dup.extra["existing_id"])
            if existing is None:  # pragma: no cover - the holder vanished between the two reads
                raise
            return existing, False

    # --- update -------------------------------------------------------------------------------
    def update(self, ws: str, contact_id: str, changes: ContactChanges) -> Contact:
        """Apply the fields set in `changes`. Moving a phone / wa_id / user_id moves its marker in
        the same transaction (a taken value raises DuplicateContact); tag items follow the tags.
        A phone change also drops the wa_id and `unreachable` of the old number (see
        `_follow_phone_change`), their markers moving in the same transaction.
        Optimistic: the write is conditional on the `updated_at` we read, retried on a race."""
        fields = changes.model_fields_set
        for _ in range(_RETRIES):
            item = m.ContactModel.get_live(*contact_key(ws, contact_id), consistent_read=True)
            if item is None:
                raise NotFound("Contact not found.")
            read_at = item.updated_at
            old_unique = unique_values(item)
            old_tags = list(item.tags or [])
            old_phone = item.phone
            old_words = search_words(item)
            for name in ("phone", "wa_id", "user_id", "name", "email"):
                if name in fields:
                    setattr(item, name, getattr(changes, name))
            if item.phone != old_phone:
                _follow_phone_change(item, wa_id_given="wa_id" in fields)
            if "tags" in fields:
                item.tags = _normalise_tags(changes.tags or [])
            if "attributes" in fields:
                item.custom_attributes = dict(changes.attributes or {})
            clear_index_keys(item)
            new_unique = unique_values(item)
            new_tags = list(item.tags or [])
            new_words = search_words(item)
            _check_transaction_size(old_unique, new_unique, old_tags, new_tags, old_words, new_words)
            try:
                with transaction() as tx:
                    unchanged = (
                        m.ContactModel.updated_at == read_at
                        if read_at is not None
                        else m.ContactModel.updated_at.does_not_exist()
                    )
                    tx.save(item, condition=m.ContactModel.pk.exists() & unchanged)
                    for kind in UNIQUE_KINDS:
                        old, new = old_unique.get(kind), new_unique.get(kind)
                        if old == new:
                            continue
                        if new is not None:
                            self._claim(tx, ws, kind, new, contact_id)
                        if old is not None:
                            tx.delete(
                                m.ContactUniqueModel(*unique_marker_key(ws, kind, old)),
                                condition=m.ContactUniqueModel.contact_id == contact_id,
                            )
                    for tag in set(old_tags) - set(new_tags):
                        tx.delete(m.ContactTagModel(*tag_item_key(ws, tag, contact_id)))
                    for tag in set(new_tags) - set(old_tags):
                        tx.save(tag_item(ws, tag, contact_id))
                    for word in set(old_words) - set(new_words):
                        tx.delete(contact_search.ContactWordModel(*contact_search.word_key(ws, word, contact_id)))
                    for word in set(new_words) - set(old_words):
                        tx.save(contact_search.word_item(ws, word, contact_id))
                    change_feed.add_contact_event(tx, ws, "contact.updated", contact_id)
            except TransactWriteError as exc:
                failed = tx.failures(exc)
                self._raise_duplicate(ws, failed)
                if (item.pk, item.sk) in failed or "TransactionConflict" in cancellation_codes(exc):
                    continue  # changed since we read it: re-read and re-apply
                raise
            return contact_from_item(item)
        raise Conflict("The contact changed concurrently; retry.")

    def link_identity(
        self, ws: str, contact_id: str, *, wa_id: str | None = None, user_id: str | None = None
    ) -> Contact:
        """Attach Meta's wa_id and/or user_id to an existing contact (markers claimed atomically)."""
        values: dict[str, Any] = {}
        if wa_id is not None:
            values["wa_id"] = wa_id
        if user_id is not None:
            values["user_id"] = user_id
        if not values:
            current = self.get(ws, contact_id)
            if current is None:
                raise NotFound("Contact not found.")
            return current
        return self.update(ws, contact_id, ContactChanges(**values))

    # --- single-attribute updates (no marker involved) ----------------------------------------
    def set_consent(self, ws: str, contact_id: str, event: ConsentEvent) -> Contact:
        """Set the current consent and append the event to the append-only history."""
        model = m.ContactModel
        return self._update(
            ws,
            contact_id,
            [
                model.consent.status.set(event.status),
                model.consent.source.set(event.source) if event.source is not None else model.consent.source.remove(),
                model.consent.at.set(event.at),
                model.consent.history.set(model.consent.history.append([event_map(event)])),  # exists: default []
            ],
            event="contact.opted_out" if event.status == "opted_out" else "contact.updated",
        )

    def set_restricted(self, ws: str, contact_id: str, restricted: bool) -> Contact:
        return self._update(ws, contact_id, [m.ContactModel.restricted.set(restricted)], event="contact.updated")

    def set_unreachable(self, ws: str, contact_id: str, unreachable: bool) -> Contact:
        return self._update(ws, contact_id, [m.ContactModel.unreachable.set(unreachable)])

    def record_inbound(self, ws: str, contact_id: str, at: datetime) -> bool:
        """Move `last_inbound_at` forward to `at`; never backwards (webhooks arrive out of order).
        A newer inbound message also clears `unreachable`. Returns whether it moved."""
        model = m.ContactModel
        try:
            # No echo of the contact (the webhook processor needs none): pynamodb's Model.update
            # always asks for ALL_NEW.
            model._get_connection().update_item(
                *contact_key(ws, contact_id),
                # They just wrote to us, so a 131026 "unreachable" mark no longer holds.
                # The legacy index keys go too: a contact written before sheds its index entries
                # once, and no later inbound message rewrites any.
                actions=[
                    model.last_inbound_at.set(at),
                    model.unreachable.set(False),
                    model.touch(),
                    *legacy_index_key_removals(),
                ],
                condition=model.pk.exists() & (model.last_inbound_at.does_not_exist() | (model.last_inbound_at < at)),
                return_values=NONE,
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    # --- delete -------------------------------------------------------------------------------
    def delete(self, ws: str, contact_id: str) -> bool:
        """Delete the contact, its markers and tag items together. False when it did not exist."""
        item = m.ContactModel.get_live(*contact_key(ws, contact_id), consistent_read=True)
        if item is None:
            return False
        mine = m.ContactUniqueModel.pk.does_not_exist() | (m.ContactUniqueModel.contact_id == contact_id)
        with transaction() as tx:
            tx.delete(item)
            for kind, value in unique_values(item).items():
                tx.delete(m.ContactUniqueModel(*unique_marker_key(ws, kind, value)), condition=mine)
            for tag in item.tags or []:
                tx.delete(m.ContactTagModel(*tag_item_key(ws, tag, contact_id)))
            for word in search_words(item):
                tx.delete(contact_search.ContactWordModel(*contact_search.word_key(ws, word, contact_id)))
        return True

    # --- helpers ------------------------------------------------------------------------------
    def _update(
        self, ws: str, contact_id: str, actions: list[Any], *, event: change_feed.ContactEventType | None = None
    ) -> Contact:
        """One UpdateItem; with `event`, a transaction writing the change-feed event too (the
        outgoing webhooks' outbox), then a consistent read (a transaction returns no item)."""
        model = m.ContactModel
        item = model(*contact_key(ws, contact_id))
        condition = model.pk.exists() & model.live_condition()
        try:
            if event is None:
                item.update(actions=[*actions, model.touch()], condition=condition)
            else:
                with transaction() as tx:
                    tx.update(item, actions=[*actions, model.touch()], condition=condition)
                    change_feed.add_contact_event(tx, ws, event, contact_id)
        except Exception as exc:
            refused = isinstance(exc, TransactWriteError) and "ConditionalCheckFailed" in cancellation_codes(exc)
            if refused or is_condition_failure(exc):
                raise NotFound("Contact not found.") from exc
            raise
        if event is not None:
            fresh = model.get_live(*contact_key(ws, contact_id), consistent_read=True)
            if fresh is None:  # pragma: no cover - erased between the commit and the read
                raise NotFound("Contact not found.")
            item = fresh
        return contact_from_item(item)

    @staticmethod
    def _marker(ws: str, kind: str, value: str, contact_id: str) -> m.ContactUniqueModel:
        return m.ContactUniqueModel(
            *unique_marker_key(ws, kind, value), ws_id=ws, kind=kind, value=value, contact_id=contact_id
        )

    def _claim(self, tx: TransactWrite, ws: str, kind: str, value: str, contact_id: str) -> None:
        # ALL_OLD: a failed claim returns the marker, so the conflict names its contact unread.
        tx.save(self._marker(ws, kind, value, contact_id), condition=marker_is_free(), return_values=ALL_OLD)

    def _raise_duplicate(self, ws: str, failed: dict[Key, Failure]) -> None:
        """If a marker claim was refused, raise DuplicateContact naming the contact holding it."""
        prefix = m.contact_unique_pk(ws, "", "")[:-1]  # "WS#<ws>#UNIQ#"
        for (pk, _sk), failure in failed.items():
            if failure.code != "ConditionalCheckFailed" or not pk.startswith(prefix):
                continue
            kind, _, value = pk[len(prefix) :].partition("#")
            existing_id = ((failure.item or {}).get("contact_id") or {}).get("S")
            if existing_id is None:  # emulators may ignore ALL_OLD: read the marker
                marker = m.ContactUniqueModel.get_live(*unique_marker_key(ws, kind, value), consistent_read=True)
                existing_id = marker.contact_id if marker else None
            raise DuplicateContact(f"A contact with this {kind} already exists.", existing_id=existing_id, field=kind)


@lru_cache(maxsize=1)
def contact_repository() -> ContactRepository:
    return DynamoContactRepository()
