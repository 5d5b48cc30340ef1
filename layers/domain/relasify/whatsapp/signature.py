"""Meta's `X-Hub-Signature-256` check: HMAC-SHA256 of the raw request bytes with the app secret.

Standard library only: the webhook receiver imports this on its cold-start path.
The bytes must be exactly what Meta sent (Meta signs its escaped-unicode wire form), never a
re-serialisation of parsed JSON.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "x-hub-signature-256"
_PREFIX = "sha256="
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def sign(body: bytes, app_secret: str | bytes) -> str:
    """The header value Meta would send for `body` (used by tests and the local sandbox)."""
    key = app_secret.encode() if isinstance(app_secret, str) else app_secret
    return _PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


def is_valid_signature(body: bytes, header_value: str | None, app_secret: str | bytes) -> bool:
    """True only for a well-formed `sha256=<64 hex>` header matching `body` under `app_secret`.

    A missing header, an empty secret or any malformed value is a failure, never a pass.
    The digest comparison is constant-time.
    """
    if not header_value or not app_secret:
        return False
    value = header_value.strip()
    if not value.lower().startswith(_PREFIX):
        return False
    received = value[len(_PREFIX) :]
    if len(received) != hashlib.sha256().digest_size * 2 or not _HEX_DIGITS.issuperset(received):
        return False
    expected = sign(body, app_secret)[len(_PREFIX) :]
    return hmac.compare_digest(expected, received.lower())
