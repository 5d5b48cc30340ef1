"""Deployment secrets kept in SSM Parameter Store (SecureString), read through Powertools parameters
and cached per container for SECRET_MAX_AGE_SECONDS, so a rotated value reaches every container
within minutes. Where no parameter name is configured (tests, local tools), the plain value of the
settings is used instead.
"""

from __future__ import annotations

from relasify.data import aws_clients
from relasify.settings import get_settings

SECRET_MAX_AGE_SECONDS = 300


def _secret(parameter_name: str | None, fallback: str) -> str:
    if not parameter_name:
        return fallback
    value = aws_clients.ssm_parameter(parameter_name, max_age=SECRET_MAX_AGE_SECONDS)
    if not value:
        raise RuntimeError(f"SSM parameter {parameter_name} is empty")
    return value


def cursor_signing_key() -> str:
    """The key pagination cursors are signed with (HMAC)."""
    settings = get_settings()
    return _secret(settings.cursor_signing_key_parameter, settings.cursor_signing_key)


def erasure_hash_key() -> str:
    """The key of the HMAC that erasure tombstones store instead of an erased person's ids ("" = dev key)."""
    settings = get_settings()
    return _secret(settings.erasure_hash_key_parameter, settings.erasure_hash_key)
