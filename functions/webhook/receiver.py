"""`GET|POST /webhooks/whatsapp`: Meta's subscription challenge, and verified, durable intake.

Served by the function's own URL (template.yaml, AuthType NONE: the signature authenticates each
POST), which passes every path in the payload format 2.0 event API Gateway also uses; only the
webhook path is answered, anything else is a 404 problem. A plain handler rather than a resolver:
two routes, and every import here is on the cold-start path Meta waits on (no pydantic, no
pynamodb). Processing happens in `processor.py`.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from relasify.cold_start import collector_paused

with collector_paused():  # the imports below, without collector passes (relasify.cold_start)
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from relasify.observability import logger
    from relasify.services import webhook_intake

_config = webhook_intake.IntakeConfig.from_environment()

_PROBLEM_BASE = "https://relasify.id/problems/"
WEBHOOK_PATH = "/webhooks/whatsapp"  # the path of template.yaml's WebhookUrl output

# The OpenAPI responses of each route (read by the local stack's merged document; plain dicts, no imports).
_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_TEXT = {"text/plain": {"schema": {"type": "string"}}}
OPENAPI_RESPONSES: dict[str, dict[str, Any]] = {
    "GET": {
        "200": {"description": "The `hub.challenge`, echoed", "content": _TEXT},
        "403": {"description": "The verify token does not match", "content": _PROBLEM},
    },
    "POST": {
        "200": {"description": "`EVENT_RECEIVED`: the delivery is stored for processing", "content": _TEXT},
        "400": {"description": "A base64 body that does not decode", "content": _PROBLEM},
        "401": {"description": "Missing or invalid X-Hub-Signature-256", "content": _PROBLEM},
    },
}


def _problem(status: int, slug: str, title: str, detail: str) -> dict[str, Any]:
    body = {"type": _PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail}
    return {"statusCode": status, "headers": {"Content-Type": "application/problem+json"}, "body": json.dumps(body)}


def _not_found() -> dict[str, Any]:
    return _problem(404, "not-found", "Not found", "No such route")


def _text(status: int, body: str) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "text/plain; charset=utf-8"}, "body": body}


def _raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("rawPath", WEBHOOK_PATH).rstrip("/") != WEBHOOK_PATH:
        return _not_found()
    method = event.get("requestContext", {}).get("http", {}).get("method", "")
    if method == "GET":
        query = event.get("queryStringParameters") or {}
        challenge = webhook_intake.challenge_answer(
            query.get("hub.mode"), query.get("hub.verify_token"), query.get("hub.challenge"), _config
        )
        if challenge is None:
            return _problem(403, "forbidden", "Verification failed", "The verify token does not match")
        return _text(200, challenge)
    if method == "POST":
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        try:
            raw = _raw_body(event)
        except binascii.Error:
            return _problem(400, "invalid-encoding", "Invalid encoding", "The body is not valid base64")
        accepted = webhook_intake.accept_delivery(
            raw,
            headers.get("x-hub-signature-256"),
            _config,
            request_id=event.get("requestContext", {}).get("requestId"),
        )
        if not accepted:
            return _problem(
                401, "invalid-signature", "Missing or invalid X-Hub-Signature-256", "Signature check failed"
            )
        return _text(200, "EVENT_RECEIVED")
    # Any other method reaches the function URL too: the same 404 problem as an unserved API path.
    return _not_found()
