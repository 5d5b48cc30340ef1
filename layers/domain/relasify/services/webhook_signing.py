"""The outgoing-webhook signature (SPEC 5c): `X-Relasify-Signature: t=<unix seconds>,v1=<hex>`,
where hex is HMAC-SHA256 over `"<t>.<raw body>"` keyed with the subscription's secret. The time
is signed too, so a receiver can refuse replays older than its tolerance (docs/INTEGRATIONS.md)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

HEADER = "X-Relasify-Signature"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def header_value(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, *, now: int, tolerance_seconds: int = 300) -> bool:
    """What a receiver does (and the tests): parse, check the age, compare in constant time."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if sep:
            fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_seconds:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))
