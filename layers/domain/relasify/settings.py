"""Environment configuration as one pydantic model, validated once per container."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything a function reads from its environment. Logic never reads os.environ."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    table_name: str = "relasify-table"
    idempotency_table_name: str = "relasify-idempotency"
    media_bucket: str = "relasify-media"
    webhook_queue_url: str = ""
    media_queue_url: str = ""
    broadcast_queue_url: str = ""
    import_queue_url: str = ""
    kms_key_id: str = "alias/relasify"
    # The hosted web frontend's origin, allowed by CORS (API Gateway also answers preflights in the cloud).
    frontend_origin: str = "http://localhost:5173"

    # SSM parameter names; the values are fetched with Powertools parameters (cached).
    app_secret_parameter: str = "/relasify/whatsapp/app-secret"  # noqa: S105 - a name, not a secret
    verify_token_parameter: str = "/relasify/whatsapp/verify-token"  # noqa: S105 - a name

    graph_api_base_url: str = "https://graph.facebook.com"
    graph_api_version: str = "v23.0"
    graph_timeout_seconds: float = 10.0

    # Retention windows (privacy policy section 7); defaults are the policy's values.
    retention_message_days: int = Field(default=90, ge=1)
    retention_usage_days: int = Field(default=365, ge=1)
    retention_security_days: int = Field(default=730, ge=1)
    retention_billing_days: int = Field(default=7 * 365, ge=1)
    retention_account_after_closure_days: int = Field(default=90, ge=1)

    # Per-number send cap (messages per second); Meta's default throughput is 80.
    default_send_rate_per_second: float = Field(default=80.0, gt=0)

    # Signs pagination cursors (HMAC) so a cursor cannot be forged or replayed in another
    # workspace. The dev default is for local use only; deployments set CURSOR_SIGNING_KEY.
    cursor_signing_key: str = "relasify-dev-cursor-signing-key"

    # Keys the hash of an erased person's WhatsApp ids in erasure tombstones, so the table alone
    # (a backup, an export) cannot be matched against phone numbers. Deployments set
    # ERASURE_HASH_KEY (template parameter ErasureHashKey); empty means the dev key below.
    erasure_hash_key: str = ""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
