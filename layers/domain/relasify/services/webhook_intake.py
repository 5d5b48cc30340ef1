"""The webhook receiver's whole job: answer Meta's subscription challenge, and for a delivery check
the signature over the raw bytes, enqueue the payload durably (inline, or in S3 when too big for the
queue message). Nothing else.

Kept off pydantic and pynamodb (cold start): configuration comes from the environment through
small dataclasses that mirror `relasify.settings.Settings`; the secrets come from SSM through
Powertools parameters (cached per container). Only the rare rejection path imports the data layer.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from datetime import UTC, datetime

from relasify.data import aws_clients, webhook_inbox
from relasify.observability import logger
from relasify.whatsapp.signature import is_valid_signature

# Secrets are re-read from SSM at most every five minutes per container (rotation picks up quickly).
SECRET_MAX_AGE_SECONDS = 300
SIGNATURE_REJECTED_ACTION = "webhook.signature_rejected"


@dataclass(frozen=True, slots=True)
class IntakeConfig:
    app_secret_parameter: str
    verify_token_parameter: str
    inbox: webhook_inbox.WebhookInboxConfig

    @classmethod
    def from_environment(cls) -> IntakeConfig:
        return cls(
            app_secret_parameter=os.environ.get("APP_SECRET_PARAMETER", "/relasify/whatsapp/app-secret"),
            verify_token_parameter=os.environ.get("VERIFY_TOKEN_PARAMETER", "/relasify/whatsapp/verify-token"),
            inbox=webhook_inbox.WebhookInboxConfig.from_environment(),
        )


def _secret(name: str) -> str:
    return aws_clients.ssm_parameter(name, max_age=SECRET_MAX_AGE_SECONDS)


def challenge_answer(
    mode: str | None, verify_token: str | None, challenge: str | None, config: IntakeConfig
) -> str | None:
    """The challenge to echo when Meta's subscription request is genuine, else None (403)."""
    if mode != "subscribe" or not verify_token or challenge is None:
        return None
    expected = _secret(config.verify_token_parameter)
    if not expected or not hmac.compare_digest(expected.encode(), verify_token.encode()):
        return None
    return challenge


def accept_delivery(raw: bytes, signature_header: str | None, config: IntakeConfig, *, request_id: str | None) -> bool:
    """Verify, store and enqueue one POST. False (store nothing) when the signature is missing or bad."""
    if not is_valid_signature(raw, signature_header, _secret(config.app_secret_parameter)):
        _record_rejection(signature_present=bool(signature_header), body_bytes=len(raw), request_id=request_id)
        return False
    key = webhook_inbox.enqueue(raw, datetime.now(UTC), config.inbox)  # raw_key None: inline, no S3 copy
    logger.info("webhook accepted", extra={"raw_key": key, "body_bytes": len(raw)})
    return True


def _record_rejection(*, signature_present: bool, body_bytes: int, request_id: str | None) -> None:
    """Security log for a rejected delivery: facts about the request, never its content. Counted per
    minute and kind (missing or invalid signature), so a flood of forged POSTs costs one write each
    but stores one entry a minute; the log line carries the request id of each."""
    from relasify.data.identity import identity_repository  # lazy: keeps pynamodb off the accept path

    details = {"signature_present": signature_present, "body_bytes": body_bytes}
    logger.warning("webhook signature rejected", extra={**details, "rejected_request_id": request_id})
    try:
        identity_repository().count_security_event(
            SIGNATURE_REJECTED_ACTION,
            "invalid" if signature_present else "missing",
            actor_id="meta-webhook",
            details=details,
        )
    except Exception as exc:  # a throttled log write must not turn the 401 into a 5xx; the line above remains
        logger.warning("security log write failed", extra={"error_type": type(exc).__name__})
