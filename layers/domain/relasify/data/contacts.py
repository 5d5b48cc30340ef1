"""Contacts repository: one contact per phone / wa_id / user_id per workspace, enforced with
uniqueness markers written in the same transaction as the contact.

`ContactRepository` is the interface; `DynamoContactRepository` the single-table implementation;
`contact_repository()` the process-wide instance. Phones arrive already normalised to E.164.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal, Protocol

from pynamodb.constants import ALL_OLD, NONE
from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.transactions import TransactWrite

from relasify import clock
from relasify.data import changes as change_feed
from relasify.data import contact_search
from relasify.data import models as m
from relasify.data.base import QueryPage, query_all, query_page, transaction
from relasify.data.cursor import decode_cursor, encode_cursor
from relasify.data.ids import new_id
from relasify.data.records import (
    Consent,
    ConsentEvent,
    Contact,
    ContactChanges,
    NewContact,
    Page,
)
from relasify.data.tx import Failure, Key, cancellation_codes, is_condition_failure
from relasify.errors import Conflict, DuplicateContact, NotFound, ValidationFailed

UniqueKind = Literal["phone", "wa_id", "user_id"]
UNIQUE_KINDS: tuple[UniqueKind, ...] = ("phone", "wa_id", "user_id")
# A create/update is one TransactWriteItems (at most 100 items): contact + 6 marker moves +
# tag changes (remove old + add new) must fit, hence the tag bound.
MAX_TAGS = 40
MAX_PAGE = 100
TRANSACTION_MAX_ITEMS = 100  # DynamoDB TransactWriteItems
SEARCH_ROUNDS = 5  # word-partition Queries per search page at most (a tag filter may drop many hits)
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


# ---------------------------------------------------------------------------------------------
# keys and conversions


def contact_key(ws: str, contact_id: str) -> tuple[str, str]:
    return m.ws_pk(ws), f"{m.ContactModel.SK_PREFIX}{contact_id}"


def _tag_page(ws: str, tag: str, *, limit: int, cursor: str | None, scope: str) -> Page[str]:
    """One page of the ids of the contacts with a tag: one Query on the tag partition."""
    page = query_page(
        m.ContactTagModel,
        m.contact_tag_pk(ws, tag),
        limit=_bounded(limit),
        exclusive_start_key=decode_cursor(cursor, ws=ws, scope=scope),
    )
    return Page(
        items=[t.contact_id for t in page.items],
        next_cursor=encode_cursor(page.last_evaluated_key, ws=ws, scope=scope),
    )


def unique_marker_key(ws: str, kind: str, value: str) -> tuple[str, str]:
    return m.contact_unique_pk(ws, kind, value), m.ContactUniqueModel.SK_VALUE


def tag_item_key(ws: str, tag: str, contact_id: str) -> tuple[str, str]:
    return m.contact_tag_pk(ws, tag), f"{m.ContactModel.SK_PREFIX}{contact_id}"


def _consent_event(raw: m.ConsentEventMap) -> ConsentEvent:
    return ConsentEvent(status=raw.status, source=raw.source, at=raw.at, actor_id=raw.actor_id, note=raw.note)  # type: ignore[arg-type]


def contact_from_item(item: m.ContactModel) -> Contact:
    consent = item.consent or m.ConsentMap()
    return Contact(
        id=item.contact_id,
        ws=item.ws_id,
        phone=item.phone,
        wa_id=item.wa_id,
        user_id=item.user_id,
        name=item.name,
        email=item.email,
        tags=list(item.tags or []),
        attributes=item.custom_attributes.as_dict() if item.custom_attributes is not None else {},
        consent=Consent(
            status=consent.status or "unknown",  # type: ignore[arg-type]
            source=consent.source,
            at=consent.at,
            history=[_consent_event(e) for e in consent.history or []],
        ),
        restricted=bool(item.restricted),
        last_inbound_at=item.last_inbound_at,
        unreachable=bool(item.unreachable),
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


def _clear_index_keys(item: m.ContactModel) -> None:
    """A contact is in no index (nothing queried its old phone and name prefix entries, and each one
    was rewritten with every `last_inbound_at`): a Put of a contact written before drops them."""
    item.gsi1pk = item.gsi1sk = item.gsi2pk = item.gsi2sk = None


def legacy_index_key_removals() -> list[Any]:
    """Update actions dropping the GSI1/GSI2 keys contacts carried before (no-ops on the others)."""
    model = m.ContactModel
    return [model.gsi1pk.remove(), model.gsi1sk.remove(), model.gsi2pk.remove(), model.gsi2sk.remove()]


def _follow_phone_change(item: m.ContactModel, *, wa_id_given: bool) -> None:
    """The phone changed: the wa_id and `unreachable` described the old number. Sends address the
    wa_id first, so a kept wa_id would keep messaging the old (possibly someone else's) number.
    The wa_id is cleared rather than derived (sends then use the phone, and Meta's answer or the
    next inbound message links the real wa_id); its marker is released with the contact's write."""
    if not wa_id_given:
        item.wa_id = None
    item.unreachable = False


def _search_words(item: m.ContactModel) -> list[str]:
    return contact_search.contact_words(item.name, item.email, item.phone)


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


def _unique_values(item: m.ContactModel) -> dict[str, str]:
    return {kind: value for kind in UNIQUE_KINDS if (value := getattr(item, kind))}


def _normalise_tags(tags: list[str]) -> list[str]:
    unique = list(dict.fromkeys(t for t in tags if t))
    if len(unique) > MAX_TAGS:
        raise ValidationFailed(
            f"A contact has at most {MAX_TAGS} tags.",
            errors=[{"location": "body/tags", "in": "body", "message": f"at most {MAX_TAGS} tags", "type": "too_long"}],
        )
    return unique


def marker_is_free() -> Condition:
    """A marker may be (re)claimed when absent or expired (TTL deletion lags)."""
    return m.ContactUniqueModel.pk.does_not_exist() | (m.ContactUniqueModel.expires_at <= clock.epoch())


class DynamoContactRepository:
    """`ContactRepository` on the single table."""

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
                    for kind, value in _unique_values(item).items():
                        self._claim(tx, ws, kind, value, contact_id)
                    for tag in tags:
                        tx.save(self._tag_item(ws, tag, contact_id))
                    for word in _search_words(item):
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

    # --- reads --------------------------------------------------------------------------------
    def get(self, ws: str, contact_id: str) -> Contact | None:
        item = m.ContactModel.get_live(*contact_key(ws, contact_id))
        return contact_from_item(item) if item else None

    def get_many(self, ws: str, contact_ids: list[str]) -> list[Contact]:
        """Live contacts among `contact_ids`, in the given order (BatchGetItem, 100 keys a request)."""
        wanted = list(dict.fromkeys(contact_ids))
        if not wanted:
            return []
        by_id = {c.contact_id: c for c in m.ContactModel.batch_get([contact_key(ws, cid) for cid in wanted])}
        return [contact_from_item(by_id[cid]) for cid in wanted if cid in by_id and not by_id[cid].is_expired]

    def find_by(self, ws: str, kind: UniqueKind, value: str) -> Contact | None:
        marker = m.ContactUniqueModel.get_live(*unique_marker_key(ws, kind, value))
        if marker is None:
            return None
        return self.get(ws, marker.contact_id)

    def find_by_phone(self, ws: str, phone: str) -> Contact | None:
        return self.find_by(ws, "phone", phone)

    def find_by_wa_id(self, ws: str, wa_id: str) -> Contact | None:
        return self.find_by(ws, "wa_id", wa_id)

    def find_by_user_id(self, ws: str, user_id: str) -> Contact | None:
        return self.find_by(ws, "user_id", user_id)

    def list_contacts(self, ws: str, *, limit: int = 50, cursor: str | None = None) -> Page[Contact]:
        """Contacts in creation order (ids are time-ordered): one Query per page."""
        scope = "contacts"
        page = query_page(
            m.ContactModel,
            m.ws_pk(ws),
            m.ContactModel.sk.startswith(m.ContactModel.SK_PREFIX),
            limit=_bounded(limit),
            exclusive_start_key=decode_cursor(cursor, ws=ws, scope=scope),
        )
        return _page(page, ws=ws, scope=scope)

    def list_by_tag(self, ws: str, tag: str, *, limit: int = 50, cursor: str | None = None) -> Page[Contact]:
        """Contacts with a tag: one Query on the tag partition, one BatchGetItem for the contacts."""
        ids = _tag_page(ws, tag, limit=limit, cursor=cursor, scope=f"contacts:tag:{tag}")
        return Page(items=self.get_many(ws, ids.items), next_cursor=ids.next_cursor)

    def tag_member_ids(self, ws: str, tag: str, *, limit: int = 100, cursor: str | None = None) -> Page[str]:
        """Ids of the contacts with a tag: one Query on the tag partition, no contact read."""
        return _tag_page(ws, tag, limit=limit, cursor=cursor, scope=f"contacts:tag-ids:{tag}")

    def search(
        self, ws: str, prefix: str, *, also: list[str], tag: str | None, limit: int = 50, cursor: str | None = None
    ) -> Page[Contact]:
        """Contacts with a search word starting with `prefix` (data/contact_search.py), and for each of
        `also` a word starting with it, and the `tag` if given; each contact once, by its first matching
        word. A page costs one Query on the word partition and one BatchGetItem per round; a page
        that filters much away may come back short (follow `next_cursor`)."""
        limit = _bounded(limit)
        scope = f"contacts:search:{prefix}:{' '.join(also)}:{tag or ''}"
        start = contact_search.decode(cursor, ws=ws, scope=scope)
        found: list[Contact] = []
        for _ in range(SEARCH_ROUNDS):
            hits, more = contact_search.matches(ws, prefix, limit=min(MAX_PAGE, limit - len(found) + 5), start=start)
            by_id = {c.id: c for c in self.get_many(ws, [cid for _, cid in hits])}
            for consumed, (word, contact_id) in enumerate(hits, start=1):
                contact = by_id.get(contact_id)
                if contact is not None and _search_hit(contact, word, prefix, also, tag):
                    found.append(contact)
                if len(found) == limit:
                    last = consumed == len(hits) and more is None
                    key = None if last else contact_search.resume_key(ws, prefix, word, contact_id)
                    return Page(items=found, next_cursor=contact_search.encode(key, ws=ws, scope=scope))
            if more is None:
                return Page(items=found, next_cursor=None)
            start = more
        return Page(items=found, next_cursor=contact_search.encode(start, ws=ws, scope=scope))

    def iter_contacts(self, ws: str) -> Iterator[Contact]:
        """Every live contact of a workspace (export), paging through Query."""
        for item in query_all(m.ContactModel, m.ws_pk(ws), m.ContactModel.sk.startswith(m.ContactModel.SK_PREFIX)):
            yield contact_from_item(item)

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
            old_unique = _unique_values(item)
            old_tags = list(item.tags or [])
            old_phone = item.phone
            old_words = _search_words(item)
            for name in ("phone", "wa_id", "user_id", "name", "email"):
                if name in fields:
                    setattr(item, name, getattr(changes, name))
            if item.phone != old_phone:
                _follow_phone_change(item, wa_id_given="wa_id" in fields)
            if "tags" in fields:
                item.tags = _normalise_tags(changes.tags or [])
            if "attributes" in fields:
                item.custom_attributes = dict(changes.attributes or {})
            _clear_index_keys(item)
            new_unique = _unique_values(item)
            new_tags = list(item.tags or [])
            new_words = _search_words(item)
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
                        tx.save(self._tag_item(ws, tag, contact_id))
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
            for kind, value in _unique_values(item).items():
                tx.delete(m.ContactUniqueModel(*unique_marker_key(ws, kind, value)), condition=mine)
            for tag in item.tags or []:
                tx.delete(m.ContactTagModel(*tag_item_key(ws, tag, contact_id)))
            for word in _search_words(item):
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

    @staticmethod
    def _tag_item(ws: str, tag: str, contact_id: str) -> m.ContactTagModel:
        return m.ContactTagModel(*tag_item_key(ws, tag, contact_id), ws_id=ws, tag=tag, contact_id=contact_id)

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


def event_map(event: ConsentEvent) -> m.ConsentEventMap:
    return m.ConsentEventMap(
        status=event.status, source=event.source, at=event.at, actor_id=event.actor_id, note=event.note
    )


def _search_hit(contact: Contact, word: str, prefix: str, also: list[str], tag: str | None) -> bool:
    """Whether a word item found for `prefix` shows its contact: the word is still the contact's (a
    concurrent change may have moved it), it is the contact's first word matching (so a contact with
    two matching words is shown once, across pages too), the other query words match, the tag holds."""
    current = contact_search.contact_words(contact.name, contact.email, contact.phone)
    if word not in current or word != min(w for w in current if w.startswith(prefix)):
        return False
    every_word = [*contact_search.words(contact.name), *contact_search.words(contact.email), *current]
    if not all(any(w.startswith(a) for w in every_word) for a in also):
        return False
    return tag is None or tag in contact.tags


def _bounded(limit: int) -> int:
    return max(1, min(int(limit), MAX_PAGE))


def _page(page: QueryPage[m.ContactModel], *, ws: str, scope: str) -> Page[Contact]:
    return Page(
        items=[contact_from_item(i) for i in page.items],
        next_cursor=encode_cursor(page.last_evaluated_key, ws=ws, scope=scope),
    )


@lru_cache(maxsize=1)
def contact_repository() -> ContactRepository:
    return DynamoContactRepository()
