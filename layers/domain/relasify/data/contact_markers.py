"""The contacts' uniqueness markers (one item per phone / wa_id / user_id naming the contact that
holds it): their key, the condition under which one may be claimed, and contact ids read from the
markers alone.

The webhook path needs only the id of the contact holding an identity, so it reads the marker and
not the contact (`ContactRepository.find_by` reads both).
"""

from __future__ import annotations

from collections.abc import Iterable

from pynamodb.expressions.condition import Condition

from relasify import clock
from relasify.data import models as m


def unique_marker_key(ws: str, kind: str, value: str) -> tuple[str, str]:
    return m.contact_unique_pk(ws, kind, value), m.ContactUniqueModel.SK_VALUE


def marker_is_free() -> Condition:
    """A marker may be (re)claimed when absent or expired (TTL deletion lags)."""
    return m.ContactUniqueModel.pk.does_not_exist() | (m.ContactUniqueModel.expires_at <= clock.epoch())


def contact_id_by_identity(ws: str, kind: str, value: str) -> str | None:
    """The contact holding a phone / wa_id / user_id (its uniqueness marker): one read, where the
    contacts repository's `find_by` also reads the contact. Webhooks only need the id."""
    marker = m.ContactUniqueModel.get_live(m.contact_unique_pk(ws, kind, value), m.ContactUniqueModel.SK_VALUE)
    return marker.contact_id if marker else None


def contact_ids_by_identities(identities: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
    """`contact_id_by_identity` for many (workspace, kind, value) at once: their uniqueness markers in
    BatchGetItem requests of 100 (read as `contact_id_by_identity` reads one). Only those found."""
    model = m.ContactUniqueModel
    wanted = {m.contact_unique_pk(ws, kind, value): (ws, kind, value) for ws, kind, value in identities}
    found: dict[tuple[str, str, str], str] = {}
    for marker in model.batch_get([(pk, model.SK_VALUE) for pk in sorted(wanted)]):
        if not marker.is_expired and marker.pk in wanted:
            found[wanted[marker.pk]] = marker.contact_id
    return found
