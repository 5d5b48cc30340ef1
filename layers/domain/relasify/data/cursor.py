"""Opaque pagination cursors: the Query's LastEvaluatedKey, bound to a workspace and a listing.

Format: `<base64url(json payload)>.<base64url(hmac-sha256)>`, URL-safe without padding. The
payload names the workspace and the listing ("scope"), so a cursor is useless in another
workspace or another listing; the HMAC (key derived from `settings.cursor_signing_key`)
makes tampering detectable. Anything that does not verify raises `BadCursor` (a 400).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from relasify.data import secrets
from relasify.errors import BadCursor

_MAX_CURSOR_CHARS = 4096  # a DynamoDB key is at most ~2 KB; anything longer is not ours
_VERSION = 1


def _key() -> bytes:
    # Derived rather than used raw, so the configured secret is never used for anything else.
    secret = secrets.cursor_signing_key().encode()
    return hmac.new(secret, b"relasify/pagination-cursor/v1", hashlib.sha256).digest()


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(payload: bytes) -> bytes:
    return hmac.new(_key(), payload, hashlib.sha256).digest()


def encode_cursor(last_evaluated_key: dict[str, Any] | None, *, ws: str, scope: str) -> str | None:
    """The cursor for the next page, or None when there is no next page."""
    if not last_evaluated_key:
        return None
    payload = json.dumps(
        {"v": _VERSION, "ws": ws, "s": scope, "k": last_evaluated_key}, separators=(",", ":"), sort_keys=True
    ).encode()
    return f"{_b64encode(payload)}.{_b64encode(_sign(payload))}"


def decode_cursor(cursor: str | None, *, ws: str, scope: str) -> dict[str, Any] | None:
    """The ExclusiveStartKey of a cursor issued for this workspace and listing; None for no cursor."""
    if cursor is None or cursor == "":
        return None
    if len(cursor) > _MAX_CURSOR_CHARS or cursor.count(".") != 1:
        raise BadCursor("The cursor is not valid.")
    payload_text, signature_text = cursor.split(".")
    try:
        payload = _b64decode(payload_text)
        signature = _b64decode(signature_text)
    except (binascii.Error, ValueError) as exc:
        raise BadCursor("The cursor is not valid.") from exc
    if not hmac.compare_digest(signature, _sign(payload)):
        raise BadCursor("The cursor is not valid.")
    try:
        data = json.loads(payload)
    except ValueError as exc:  # pragma: no cover - only reachable with the signing key
        raise BadCursor("The cursor is not valid.") from exc
    if not isinstance(data, dict) or data.get("v") != _VERSION or not isinstance(data.get("k"), dict):
        raise BadCursor("The cursor is not valid.")
    if data.get("ws") != ws or data.get("s") != scope:
        raise BadCursor("The cursor was issued for another workspace or listing.")
    return data["k"]
