"""A contact's keys and the items written beside it: the contact item <-> `Contact` record, its
tag items, search words and consent events, and the index keys contacts no longer carry.

Shared by the contacts repository (`relasify.data.contacts`, `relasify.data.contact_reads`) and the
bulk import (`relasify.data.import_contacts`), which write the same items. The uniqueness markers
are in `relasify.data.contact_markers`.
"""

from __future__ import annotations

from typing import Any, Literal

from relasify.data import contact_search
from relasify.data import models as m
from relasify.data.records import Consent, ConsentEvent, Contact

UniqueKind = Literal["phone", "wa_id", "user_id"]
UNIQUE_KINDS: tuple[UniqueKind, ...] = ("phone", "wa_id", "user_id")


def contact_key(ws: str, contact_id: str) -> tuple[str, str]:
    return m.ws_pk(ws), f"{m.ContactModel.SK_PREFIX}{contact_id}"


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


def clear_index_keys(item: m.ContactModel) -> None:
    """A contact is in no index (nothing queried its old phone and name prefix entries, and each one
    was rewritten with every `last_inbound_at`): a Put of a contact written before drops them."""
    item.gsi1pk = item.gsi1sk = item.gsi2pk = item.gsi2sk = None


def legacy_index_key_removals() -> list[Any]:
    """Update actions dropping the GSI1/GSI2 keys contacts carried before (no-ops on the others)."""
    model = m.ContactModel
    return [model.gsi1pk.remove(), model.gsi1sk.remove(), model.gsi2pk.remove(), model.gsi2sk.remove()]


def search_words(item: m.ContactModel) -> list[str]:
    return contact_search.contact_words(item.name, item.email, item.phone)


def unique_values(item: m.ContactModel) -> dict[str, str]:
    return {kind: value for kind in UNIQUE_KINDS if (value := getattr(item, kind))}


def tag_item(ws: str, tag: str, contact_id: str) -> m.ContactTagModel:
    return m.ContactTagModel(*tag_item_key(ws, tag, contact_id), ws_id=ws, tag=tag, contact_id=contact_id)


def event_map(event: ConsentEvent) -> m.ConsentEventMap:
    return m.ConsentEventMap(
        status=event.status, source=event.source, at=event.at, actor_id=event.actor_id, note=event.note
    )
