"""WhatsApp access tokens (and outgoing-webhook signing secrets), encrypted with the customer-managed
KMS key before they are stored.

The plaintext exists only in memory where a Graph call needs it. The encryption context binds
a ciphertext to its workspace, so a ciphertext copied into another workspace cannot be
decrypted there (the context is logged in CloudTrail: a workspace id, no personal data).
"""

from __future__ import annotations

import base64
import time
from typing import Any

from relasify.data import aws_clients
from relasify.settings import get_settings

# Decrypted tokens cached per warm container; a short TTL bounds how long a rotated token lingers.
_DECRYPT_CACHE_SECONDS = 300.0
_cache: dict[str, tuple[str, float]] = {}


def _kms() -> Any:
    return aws_clients.client("kms")


WHATSAPP_TOKEN = "whatsapp-access-token"  # noqa: S105 - a purpose name, not a secret
WEBHOOK_SECRET = "outgoing-webhook-secret"  # noqa: S105 - a purpose name (SPEC 5c signing secrets)


def encrypt_token(ws: str, plaintext: str, *, purpose: str = WHATSAPP_TOKEN) -> str:
    response = _kms().encrypt(
        KeyId=get_settings().kms_key_id,
        Plaintext=plaintext.encode(),
        EncryptionContext={"workspace": ws, "purpose": purpose},
    )
    return base64.b64encode(response["CiphertextBlob"]).decode()


def decrypt_token(ws: str, ciphertext_b64: str, *, purpose: str = WHATSAPP_TOKEN) -> str:
    cached = _cache.get(ciphertext_b64)
    if cached is not None and time.monotonic() - cached[1] < _DECRYPT_CACHE_SECONDS:
        return cached[0]
    response = _kms().decrypt(
        # Named, though the ciphertext names its key: KMS then refuses a blob made under another key.
        KeyId=get_settings().kms_key_id,
        CiphertextBlob=base64.b64decode(ciphertext_b64),
        EncryptionContext={"workspace": ws, "purpose": purpose},
    )
    plaintext = response["Plaintext"].decode()
    _cache[ciphertext_b64] = (plaintext, time.monotonic())
    return plaintext


def clear_cache() -> None:
    """Forget decrypted tokens (the local stack's call recorder: each function decrypts for itself)."""
    _cache.clear()


def reset_for_tests() -> None:
    aws_clients.reset()
    clear_cache()
