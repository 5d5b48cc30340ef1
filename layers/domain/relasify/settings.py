"""Environment configuration as one pydantic model, validated once per container.

A plain pydantic model filled from the environment the way pydantic-settings does it for these
flat fields (variable name = field name, any case; values validated and converted by pydantic;
explicit arguments win). pydantic-settings itself cost every function about 15 ms of cold start
(its sources, dotenv and CLI machinery) for nothing these fields need.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Settings(BaseModel):
    """Everything a function reads from its environment. Logic never reads os.environ."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, given: Any) -> Any:
        # Environment variables named like a field (case-insensitive) fill what the caller did not pass.
        if not isinstance(given, dict):
            return given
        environment = {name.lower(): value for name, value in os.environ.items() if name.lower() in cls.model_fields}
        return {**environment, **given}

    table_name: str = "relasify-table"
    media_bucket: str = "relasify-media"
    webhook_queue_url: str = ""
    media_queue_url: str = ""
    broadcast_queue_url: str = ""
    import_queue_url: str = ""
    # Dead-letter queues: erasure removes the messages in them that name the erased person.
    webhook_dlq_url: str = ""
    media_dlq_url: str = ""
    broadcast_dlq_url: str = ""
    import_dlq_url: str = ""
    # The WebhookQueue's maxReceiveCount: the processor parks an inline delivery's last try itself.
    webhook_max_receives: int = Field(default=5, ge=1)
    # Outgoing webhooks (SPEC 5c): their own queue (never the WhatsApp webhook's) and its DLQ.
    outgoing_webhook_queue_url: str = ""
    outgoing_webhook_dlq_url: str = ""
    # The local stack also delivers to http://127.0.0.1 (a developer's receiver); off in the template.
    outgoing_webhooks_allow_local_http: bool = False
    # First retry delay; each next one doubles, capped at SQS's 900 s DelaySeconds (docs/INTEGRATIONS.md).
    outgoing_webhook_first_retry_seconds: int = Field(default=30, ge=1, le=900)
    kms_key_id: str = "alias/relasify"
    # The hosted web frontend's origin, allowed by CORS (API Gateway also answers preflights in the cloud).
    frontend_origin: str = "http://localhost:5173"
    # More exact origins allowed by CORS (preview-deploy aliases), comma separated; "" = none.
    cors_extra_origins: str = ""

    # SSM parameter names; the values are fetched with Powertools parameters (cached).
    app_secret_parameter: str = "/relasify/whatsapp/app-secret"  # noqa: S105 - a name, not a secret
    verify_token_parameter: str = "/relasify/whatsapp/verify-token"  # noqa: S105 - a name

    # The WebSocket endpoint clients connect to with a ticket (SPEC section 5b); the cloud sets the
    # API Gateway WebSocket stage URL, the local stack its own listener.
    realtime_url: str = "ws://127.0.0.1:3001"
    # The WebSocket API's management endpoint (https://{api}.execute-api.{region}.amazonaws.com/{stage});
    # "" leaves it to botocore (the local stack sets AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI).
    realtime_management_url: str = ""
    # The API authorizer (relasify.web.authorizer) verifies Cognito ID tokens of this issuer (the user
    # pool's URL) and audience (the app client id); only the authorizer function sets them.
    jwt_issuer: str = ""
    jwt_audience: str = ""

    graph_api_base_url: str = "https://graph.facebook.com"
    graph_api_version: str = "v23.0"
    graph_timeout_seconds: float = 10.0

    # Retention windows (privacy policy section 7); defaults are the policy's values.
    retention_message_days: int = Field(default=90, ge=1)
    retention_usage_days: int = Field(default=365, ge=1)
    retention_security_days: int = Field(default=730, ge=1)
    retention_billing_days: int = Field(default=7 * 365, ge=1)
    retention_account_after_closure_days: int = Field(default=90, ge=1)
    # The sweep deletes only items whose TTL passed more than this long ago: DynamoDB's TTL deletes
    # expired items for free, "typically within a few days" (AWS), and reads hide them meanwhile.
    # So an expired item is gone at most this long, plus the wait for the next daily run, after its
    # window ends (docs/PRIVACY.md).
    retention_sweep_grace_days: int = Field(default=3, ge=0, le=30)

    # Per-number send cap (messages per second); Meta's default throughput is 80.
    default_send_rate_per_second: float = Field(default=80.0, gt=0)

    # Request budgets of the /v1 API (docs/SCALING.md "API request budgets"): a token bucket per
    # user (across all their workspaces) and per workspace (all its members together), refilled at
    # `*_rate_per_second` and holding at most `*_burst` requests. A person in the web app makes a
    # few requests a second (a page load fans out 5-10 at once): 20/s with a burst of 40 never
    # stops them, and caps one token (a leaked one, a runaway script) at 20 sends/s. A workspace
    # gets 100/s, burst 200: its number's default Meta throughput (80 msg/s) through the one-message
    # send route plus its agents' reads; bulk sending goes through broadcasts (one request).
    api_user_rate_per_second: float = Field(default=20.0, gt=0)
    api_user_burst: int = Field(default=40, ge=1)
    api_workspace_rate_per_second: float = Field(default=100.0, gt=0)
    api_workspace_burst: int = Field(default=200, ge=1)

    # Signs pagination cursors (HMAC) so a cursor cannot be forged or replayed in another
    # workspace. Deployments name an SSM SecureString (CURSOR_SIGNING_KEY_PARAMETER, template
    # parameter CursorSigningKeyParameterName); the plain value is for tests and local tools.
    cursor_signing_key_parameter: str | None = None
    cursor_signing_key: str = "relasify-dev-cursor-signing-key"

    # Keys the hash of an erased person's WhatsApp ids in erasure tombstones, so the table alone
    # (a backup, an export) cannot be matched against phone numbers. Deployments name an SSM
    # SecureString (ERASURE_HASH_KEY_PARAMETER, template parameter ErasureHashKeyParameterName);
    # an empty plain value means the dev key of relasify.data.tombstones.
    erasure_hash_key_parameter: str | None = None
    erasure_hash_key: str = ""

    # The Cognito user pool whose users `DELETE /v1/me` removes (template: the account API only).
    # Empty (local stack, tests): tokens come from another issuer and there is no account to delete.
    user_pool_id: str = ""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
