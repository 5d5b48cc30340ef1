"""Identifiers: time-ordered (ULID layout), so items keyed by id list in creation order."""

from __future__ import annotations

import secrets

from relasify import clock

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id(prefix: str = "") -> str:
    """26 chars of Crockford base32: 48-bit millisecond time then 80 random bits."""
    millis = int(clock.now().timestamp() * 1000) & ((1 << 48) - 1)
    value = (millis << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    body = "".join(reversed(chars))
    return f"{prefix}_{body}" if prefix else body
