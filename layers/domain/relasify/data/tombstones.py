"""Erasure tombstones: an erased contact's WhatsApp sender ids, as keyed hashes, with the erasure time.

Meta redelivers a webhook for up to 7 days, and a received delivery can wait in the webhook DLQ for
14 more; without a trace of the erasure, such an old message or status would re-create the person
the erasure removed. A tombstone holds no personal data: `HMAC-SHA256(key, ws, kind, value)` under
the deployment's secret erasure key (an SSM SecureString, `relasify.data.secrets`): the workspace id
in the message, so the same person hashes differently in two workspaces; the secret key, so the
table alone cannot be matched against phone numbers, which are few enough to enumerate. Plus
`erased_at`. It expires with
`retention.ERASURE_TOMBSTONE_WINDOW` (22 days).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from datetime import datetime

from relasify import clock, retention
from relasify.data import models as m
from relasify.data import secrets

# Used when no erasure key is configured (tests, local tools); deployments keep theirs in SSM.
_DEV_KEY = "relasify-dev-erasure-hash-key"
SENDER_KINDS = ("wa_id", "user_id")
# Also kept for each erased message's wamid: a status of it arriving after the erasure (a customer
# reads it a day later) is dropped whatever its time, instead of being kept as an early status.
MESSAGE_KIND = "wamid"


def keyed_digest(*parts: str) -> str:
    """HMAC-SHA256 of the parts under the secret erasure key (also used by `relasify.data.deleted_users`)."""
    key = (secrets.erasure_hash_key() or _DEV_KEY).encode()
    return hmac.new(key, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()


def sender_digest(ws: str, kind: str, value: str) -> str:
    return keyed_digest(ws, kind, value)


def _key(ws: str, kind: str, value: str) -> tuple[str, str]:
    return m.erasure_tombstone_pk(ws, sender_digest(ws, kind, value)), m.ErasureTombstoneModel.SK_VALUE


def put(ws: str, senders: Iterable[tuple[str, str | None]], *, erased_at: datetime | None = None) -> int:
    """Write one tombstone per sender id ((kind, value) pairs); returns how many. A later erasure
    of the same id overwrites the time (the later one is what counts)."""
    at = erased_at or clock.now()
    expires = int((at + retention.ERASURE_TOMBSTONE_WINDOW).timestamp())
    items = [
        m.ErasureTombstoneModel(*_key(ws, kind, value), erased_at=int(at.timestamp()), expires_at=expires)
        for kind, value in dict.fromkeys(senders)
        if value
    ]
    with m.ErasureTombstoneModel.batch_write() as batch:
        for item in items:
            batch.save(item)
    return len(items)


def erased_at(ws: str, senders: Iterable[tuple[str, str | None]]) -> int | None:
    """The latest erasure (epoch seconds) of any of these sender ids in the workspace, or None.
    One BatchGetItem for both ids; callers ask only on the create path (an unknown sender)."""
    found = erasures(ws, senders)
    return max(found.values()) if found else None


def erasures(ws: str, ids: Iterable[tuple[str, str | None]]) -> dict[tuple[str, str], int]:
    """Each of these (kind, value) ids with a live tombstone, with its erasure time (epoch
    seconds); one BatchGetItem."""
    wanted = {_key(ws, kind, value): (kind, value) for kind, value in dict.fromkeys(ids) if value}
    if not wanted:
        return {}
    return {
        wanted[(t.pk, t.sk)]: int(t.erased_at)
        for t in m.ErasureTombstoneModel.batch_get(list(wanted))
        if not t.is_expired
    }
