"""Identifiers: time-ordered (ULID layout), so items keyed by id list in creation order."""

from __future__ import annotations

import secrets
import threading

from relasify import clock

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_RANDOM_BITS = 80
_lock = threading.Lock()
_last = 0
# Monotonic only across a small step back of the clock: after a larger one (a test's clock moved back
# from the future, a corrected host clock) ids follow the clock again, or every later id would carry a
# future time (the change feed serves only seqs older than its settle horizon).
_MAX_STEP_BACK_MS = 1000


def new_id(prefix: str = "") -> str:
    """26 chars of Crockford base32: 48-bit millisecond time then 80 random bits. Monotonic
    within a process: ids made in the same millisecond (or after a clock step back of up to a
    second) increment instead of re-rolling."""
    global _last
    millis = int(clock.now().timestamp() * 1000) & ((1 << 48) - 1)
    with _lock:
        value = (millis << _RANDOM_BITS) | secrets.randbits(_RANDOM_BITS - 8)  # headroom for increments
        if value <= _last and (_last >> _RANDOM_BITS) - millis <= _MAX_STEP_BACK_MS:
            value = _last + 1
        _last = value
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    body = "".join(reversed(chars))
    return f"{prefix}_{body}" if prefix else body
