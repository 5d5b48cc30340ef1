"""User-deletion markers: who deleted their account (`DELETE /v1/me`) and when.

The HTTP API's JWT authorizer keeps accepting a deleted user's tokens until they expire, and the
first request with one would re-create the user record (and accept invitations again). The marker
lets sign-in refuse tokens from a sign-in at or before the deletion. It holds no personal data:
`HMAC-SHA256(erasure key, "user", sub)` (`relasify.data.tombstones.keyed_digest`) and the deletion
time, and expires with `retention.USER_DELETION_MARKER_WINDOW`.
"""

from __future__ import annotations

from datetime import datetime

from relasify import clock, retention
from relasify.data import models as m
from relasify.data.tombstones import keyed_digest


def _key(sub: str) -> tuple[str, str]:
    return m.deleted_user_pk(keyed_digest("user", "sub", sub)), m.DeletedUserModel.SK_VALUE


def mark_deleted(sub: str, *, deleted_at: datetime | None = None) -> int:
    """Record the deletion (a later one overwrites the time); returns it as epoch seconds."""
    at = deleted_at or clock.now()
    epoch = int(at.timestamp())
    expires = int((at + retention.USER_DELETION_MARKER_WINDOW).timestamp())
    m.DeletedUserModel(*_key(sub), deleted_at=epoch, expires_at=expires).save()
    return epoch


def deleted_at(sub: str) -> int | None:
    """When this user deleted their account (epoch seconds), or None. Consistent read: a deletion
    through another container a moment ago must count. Read only when the user record is missing."""
    marker = m.DeletedUserModel.get_live(*_key(sub), consistent_read=True)
    return int(marker.deleted_at) if marker is not None else None
