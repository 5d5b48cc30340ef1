"""The read half of the contacts repository: one contact, many by id, by phone / wa_id / user_id,
pages in creation order, by tag and by search word, and the whole workspace for the export.

`DynamoContactReads` is the base of `relasify.data.contacts.DynamoContactRepository`, which adds the
writes; apart because the reads' paging and search rules have nothing to do with the transactions
that keep markers, tags and words in step with a contact.
"""

from __future__ import annotations

from collections.abc import Iterator

from relasify.data import contact_search
from relasify.data import models as m
from relasify.data.base import QueryPage, query_all, query_page
from relasify.data.contact_items import UniqueKind, contact_from_item, contact_key
from relasify.data.contact_markers import unique_marker_key
from relasify.data.cursor import decode_cursor, encode_cursor
from relasify.data.records import Contact, Page

MAX_PAGE = 100
SEARCH_ROUNDS = 5  # word-partition Queries per search page at most (a tag filter may drop many hits)


class DynamoContactReads:
    """The reads of `ContactRepository` on the single table."""

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
