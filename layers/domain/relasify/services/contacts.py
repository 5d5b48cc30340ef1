"""Contacts: create, read, update, delete, list/search, consent (SPEC sections 4 and 8).

Phones are normalised here (region ID) before the repository sees them; the repository enforces
one contact per phone per workspace atomically.
"""

from __future__ import annotations

import re
from datetime import timedelta

from relasify import clock
from relasify.data import contact_search
from relasify.data.contacts import contact_repository
from relasify.data.memberships import Membership
from relasify.data.records import ConsentEvent, Contact, ContactChanges, NewContact, Page
from relasify.errors import DuplicateContact, NotFound, ValidationFailed
from relasify.phones import normalize_phone, try_normalize_phone
from relasify.schemas.contacts import ConsentIn, ContactCreate, ContactPatch

# Clock skew allowed on a caller-supplied consent time.
_FUTURE_SKEW = timedelta(minutes=5)
_PHONE_LIKE = re.compile(r"^\+?[0-9][0-9\s\-.()]*$")
_SEPARATORS = re.compile(r"[\s\-.()]")


def _duplicate(exc: DuplicateContact) -> DuplicateContact:
    """The 409 names the contact holding the phone as `existing_contact_id`."""
    existing = exc.extra.get("existing_id")
    field = exc.extra.get("field") or "phone"
    return DuplicateContact(f"A contact with this {field} already exists.", existing_contact_id=existing, field=field)


def _consent_event(consent: ConsentIn, actor_id: str | None, *, location: str) -> ConsentEvent:
    if consent.status == "opted_in" and not consent.source:
        raise ValidationFailed(
            "An opt-in needs its source.",
            errors=[
                {
                    "location": f"{location}/source",
                    "in": "body",
                    "message": "required for opted_in (form, import, inbound_message, api, ...)",
                    "type": "missing",
                }
            ],
        )
    now = clock.now()
    at = consent.at or now
    if at.tzinfo is None:
        raise ValidationFailed(
            "The consent time needs a timezone.",
            errors=[
                {"location": f"{location}/at", "in": "body", "message": "include a UTC offset", "type": "value_error"}
            ],
        )
    if at > now + _FUTURE_SKEW:
        raise ValidationFailed(
            "The consent time lies in the future.",
            errors=[
                {
                    "location": f"{location}/at",
                    "in": "body",
                    "message": "must not be in the future",
                    "type": "value_error",
                }
            ],
        )
    return ConsentEvent(status=consent.status, source=consent.source, at=at, actor_id=actor_id, note=consent.note)


def create_contact(caller: Membership, body: ContactCreate) -> Contact:
    if body.phone is None and body.user_id is None:
        raise ValidationFailed(
            "A contact needs a phone or a user_id.",
            errors=[
                {"location": "body/phone", "in": "body", "message": "phone or user_id is required", "type": "missing"}
            ],
        )
    phone = normalize_phone(body.phone, field="body/phone") if body.phone is not None else None
    new = NewContact(
        phone=phone,
        user_id=body.user_id,
        name=body.name,
        email=str(body.email) if body.email else None,
        tags=body.tags,
        attributes=body.attributes,
        consent=_consent_event(body.consent, caller.sub, location="body/consent") if body.consent else None,
    )
    try:
        return contact_repository().create(caller.ws, new)
    except DuplicateContact as exc:
        raise _duplicate(exc) from None


def get_contact(ws: str, contact_id: str) -> Contact:
    contact = contact_repository().get(ws, contact_id)
    if contact is None:
        raise NotFound("Contact not found.")
    return contact


def update_contact(caller: Membership, contact_id: str, body: ContactPatch) -> Contact:
    fields = body.model_fields_set
    values: dict[str, object] = {}
    for name in ("name", "tags", "attributes"):
        if name in fields:
            values[name] = getattr(body, name)
    if "email" in fields:
        values["email"] = str(body.email) if body.email else None
    if "phone" in fields:
        values["phone"] = normalize_phone(body.phone, field="body/phone") if body.phone is not None else None
        if values["phone"] is None:
            current = get_contact(caller.ws, contact_id)
            # Clearing the phone also drops the wa_id (it named that number): only a user_id remains.
            if current.phone is not None and not current.user_id:
                raise ValidationFailed(
                    "A contact without a user_id must keep a phone.",
                    errors=[
                        {"location": "body/phone", "in": "body", "message": "cannot be cleared", "type": "value_error"}
                    ],
                )
    if not values:
        return get_contact(caller.ws, contact_id)
    try:
        return contact_repository().update(caller.ws, contact_id, ContactChanges(**values))
    except DuplicateContact as exc:
        raise _duplicate(exc) from None


def delete_contact(caller: Membership, contact_id: str) -> None:
    """Delete the contact with its conversation, media and broadcast recipient items: the erasure
    path (docs/PRIVACY.md). Deleting the contact item alone left its messages for up to 90 days,
    still served by id, yet out of reach of the export and of erasure (the contact was gone)."""
    from relasify.services import rights  # only this route needs the erasure machinery

    rights.erase_contact(caller, contact_id, audit_action="contact.deleted")


def set_consent(caller: Membership, contact_id: str, body: ConsentIn) -> Contact:
    """Opt-in (with its source and time) or opt-out; the history is append-only."""
    event = _consent_event(body, caller.sub, location="body")
    return contact_repository().set_consent(caller.ws, contact_id, event)


def phone_prefix(q: str) -> str | None:
    """The E.164 prefix a phone-like query means ("0812" -> "+62812"), or None for a name query."""
    text = q.strip()
    if not _PHONE_LIKE.match(text):
        return None
    full = try_normalize_phone(text)
    if full is not None:
        return full
    digits = _SEPARATORS.sub("", text)
    if digits.startswith("+"):
        return digits
    if digits.startswith("00"):
        return "+" + digits[2:]
    if digits.startswith("0"):
        return "+62" + digits[1:]
    return "+" + digits


def list_contacts(
    ws: str, *, limit: int, cursor: str | None, tag: str | None = None, q: str | None = None
) -> Page[Contact]:
    """By `q` (a prefix of any word of the name or e-mail, accent- and case-insensitive, or phone
    digits in any Indonesian form), optionally within a `tag`; by tag; or all in creation order.
    Never a Scan: word items (data/contact_search.py), the tag partition, or the contacts partition."""
    repo = contact_repository()
    if q:
        prefix, also = search_terms(q)
        if not prefix:
            return Page(items=[], next_cursor=None)
        return repo.search(ws, prefix, also=also, tag=tag, limit=limit, cursor=cursor)
    if tag:
        return repo.list_by_tag(ws, tag, limit=limit, cursor=cursor)
    return repo.list_contacts(ws, limit=limit, cursor=cursor)


def search_terms(q: str) -> tuple[str, list[str]]:
    """(the word prefix to look up, the other words every hit must also match). A phone-like query is
    its E.164 digits ("0812-34" -> "6281234"); else the longest word leads (the most selective)."""
    prefix = phone_prefix(q)
    if prefix is not None:
        return prefix.lstrip("+"), []
    terms = list(dict.fromkeys(contact_search.words(q)))
    if not terms:
        return "", []
    lead = max(terms, key=len)
    return lead, [t for t in terms if t != lead]


def may_send_marketing(contact: Contact) -> bool:
    """Marketing and broadcast sends need a contact who has not opted out and is not restricted."""
    return contact.consent.status != "opted_out" and not contact.restricted
