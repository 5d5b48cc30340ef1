"""How the WhatsApp sandbox speaks Graph (relasify_local.sandbox): Meta's error bodies for the codes it
can answer with, a phone number's fields, bearer tokens, JSON bodies and Graph's paging cursors."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from typing import Any

Answer = tuple[int, Any, dict[str, str]]  # HTTP status, body (JSON-able, or bytes as they are), headers

# Meta's titles for the codes the sandbox can be told to answer with; HTTP statuses per whatsapp.md section 6.
ERROR_TITLES: dict[int, tuple[int, str]] = {
    1: (500, "An unknown error occurred"),
    2: (503, "Service temporarily unavailable"),
    4: (400, "Application request limit reached"),
    100: (400, "Invalid parameter"),
    190: (401, "Error validating access token: Session has expired"),
    80007: (400, "Rate limit issues"),
    130429: (429, "Rate limit hit"),
    131000: (500, "Something went wrong"),
    131008: (400, "Required parameter is missing"),
    131009: (400, "Parameter value is not valid"),
    131016: (503, "Service unavailable"),
    131021: (400, "Recipient cannot be sender"),
    131026: (400, "Message undeliverable"),
    131047: (400, "Re-engagement message"),
    131050: (400, "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages"),
    131056: (400, "(Business Account, Consumer Account) pair rate limit hit"),
    132000: (400, "Number of parameters does not match the expected number of params"),
    132001: (400, "Template name does not exist in the translation"),
    132005: (400, "Translated text too long"),
    132007: (400, "Template Format Character Policy Violated"),
    132012: (400, "Parameter format does not match format in the created template"),
    132015: (400, "Template is Paused"),
    132016: (400, "Template is Disabled"),
}
ERROR_DETAILS: dict[int, str] = {
    131047: "Message failed to send because more than 24 hours have passed since the customer last replied "
    "to this number.",
    131026: "Message Undeliverable.",
    132001: "template name does not exist in the translation",
}
_NOT_VISIBLE = (
    "Unsupported {method} request. Object with ID '{object_id}' does not exist, cannot be loaded due to "
    "missing permissions, or does not support this operation. Please read the Graph API documentation at "
    "https://developers.facebook.com/docs/graph-api"
)


@dataclass
class Number:
    """A business phone number as Graph describes it."""

    phone_number_id: str
    display_phone_number: str
    quality_rating: str = "GREEN"
    messaging_limit: str = "TIER_2K"


def error_title(code: int, default: str) -> str:
    return ERROR_TITLES.get(code, (400, default))[1]


def graph_error(
    code: int,
    *,
    http_status: int | None = None,
    message: str | None = None,
    details: str | None = None,
    subcode: int | None = None,
) -> Answer:
    default_status, title = ERROR_TITLES.get(code, (400, "Graph API error"))
    error: dict[str, Any] = {
        "message": message or f"(#{code}) {title}",
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details or ERROR_DETAILS.get(code, title)},
        "fbtrace_id": "A" + secrets.token_urlsafe(16),
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    if code in (1, 2, 131000, 131016):
        error["is_transient"] = True
    return http_status or default_status, {"error": error}, {"WWW-Authenticate": "OAuth"} if code == 190 else {}


def not_visible(method: str, object_id: str) -> Answer:
    """Graph's answer for an object the token cannot see: code 100, subcode 33, GraphMethodException."""
    status, error, headers = graph_error(
        100, message=_NOT_VISIBLE.format(method=method.lower(), object_id=object_id), subcode=33
    )
    error["error"]["type"] = "GraphMethodException"
    error["error"].pop("error_data", None)
    return status, error, headers


def number_fields(number: Number) -> dict[str, Any]:
    return {
        "id": number.phone_number_id,
        "display_phone_number": number.display_phone_number,
        "verified_name": "Relasify Sandbox",
        "quality_rating": number.quality_rating,
        "code_verification_status": "VERIFIED",
        "platform_type": "CLOUD_API",
        "throughput": {"level": "STANDARD"},
        "whatsapp_business_manager_messaging_limit": number.messaging_limit,
    }


def bearer_token(header: str | None) -> str | None:
    if not header or not header.startswith("Bearer "):
        return None
    token = header[len("Bearer ") :].strip()
    return token or None


def json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body or b"null")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def encode_cursor(index: int) -> str:
    return base64.urlsafe_b64encode(str(index).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    if not cursor:
        return 0
    try:
        return max(0, int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()))
    except ValueError:
        return 0


def int_param(query: dict[str, list[str]], name: str, default: int, *, maximum: int) -> int:
    try:
        return max(1, min(maximum, int(query.get(name, [str(default)])[0])))
    except ValueError:
        return default
