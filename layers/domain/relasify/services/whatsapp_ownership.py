"""Proving that a caller owns the WhatsApp number they connect (SPEC section 3).

Whoever connects a number receives its webhooks and acts on its WhatsApp Business Account (WABA):
templates, quality and account updates are routed by the WABA id. So before anything is stored,
Graph must confirm with the given token that the number exists and is readable
(`GET /{phone_number_id}`) and that the WABA lists it (`GET /{waba_id}/phone_numbers`); then the app
is subscribed to the WABA's webhooks. Meta's answer also gives the number's quality and limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relasify.errors import DomainError, PhoneNumberNotInAccount, WhatsAppCredentialsRejected, WhatsAppUnavailable
from relasify.observability import logger
from relasify.whatsapp.errors import TOKEN_EXPIRED_CODE, ErrorCategory, GraphError

if TYPE_CHECKING:
    from relasify.whatsapp.graph import GraphClient

# Graph's "object does not exist, cannot be loaded due to missing permissions" (code 100, subcode 33)
# and its permission codes: the token cannot see the object. Anything else from Meta is its own failure.
_NOT_VISIBLE_CODES = frozenset({100})
_REFUSED_CATEGORIES = frozenset({ErrorCategory.AUTH, ErrorCategory.PERMISSION})


@dataclass(frozen=True, slots=True)
class ProvenNumber:
    """What Meta reported about the number while proving it (no token, no personal data)."""

    waba_id: str
    phone_number_id: str
    display_phone_number: str | None
    verified_name: str | None
    quality_rating: str | None
    messaging_limit: str | None


def _graph() -> GraphClient:
    from relasify.whatsapp.graph import get_graph_client

    return get_graph_client()


def prove_ownership(
    waba_id: str, phone_number_id: str, token: str, *, graph: GraphClient | None = None
) -> ProvenNumber:
    """Graph's word that `token` reads `phone_number_id` and that `waba_id` lists it.

    Raises WhatsAppCredentialsRejected, PhoneNumberNotInAccount (both 422) or WhatsAppUnavailable
    (503) and calls nothing that changes state."""
    client = graph or _graph()
    try:
        number = client.get_phone_number(phone_number_id, token)
    except GraphError as error:
        raise _refusal(error, WhatsAppCredentialsRejected, "the phone number cannot be read with this token") from None
    if str(number.get("id")) != phone_number_id:
        raise WhatsAppCredentialsRejected("Graph answered for another object than this phone number id")
    try:
        listed = client.list_phone_numbers(waba_id, token)
    except GraphError as error:
        if error.code == TOKEN_EXPIRED_CODE:
            raise _refusal(error, WhatsAppCredentialsRejected, "the access token was refused") from None
        raise _refusal(error, PhoneNumberNotInAccount, "the WhatsApp Business Account is not readable") from None
    if phone_number_id not in {str(item.get("id")) for item in listed}:
        _log_refusal("phone-number-not-in-account", None)
        raise PhoneNumberNotInAccount("The WhatsApp Business Account does not list this phone number")
    return ProvenNumber(
        waba_id=waba_id,
        phone_number_id=phone_number_id,
        display_phone_number=_text(number.get("display_phone_number")),
        verified_name=_text(number.get("verified_name")),
        quality_rating=_text(number.get("quality_rating")),
        messaging_limit=_messaging_limit(number),
    )


def subscribe_to_webhooks(waba_id: str, token: str, *, graph: GraphClient | None = None) -> None:
    """POST /{waba_id}/subscribed_apps (idempotent at Meta)."""
    try:
        (graph or _graph()).subscribe_app(waba_id, token)
    except GraphError as error:
        raise _refusal(error, WhatsAppCredentialsRejected, "the app cannot be subscribed with this token") from None


def _refusal(error: GraphError, refused: type[DomainError], reason: str) -> DomainError:
    """A 422 when Meta says no to this token; a 503 when Meta failed to answer."""
    if error.code == TOKEN_EXPIRED_CODE or error.code in _NOT_VISIBLE_CODES or error.category in _REFUSED_CATEGORIES:
        _log_refusal(refused.type_slug, error)
        return refused(f"Meta refused: {reason} (Graph error {error.code}).", meta_error_code=error.code)
    _log_refusal("whatsapp-unavailable", error)
    return WhatsAppUnavailable(
        "Meta's Graph API did not answer the ownership check; nothing was changed. Try again shortly.",
        meta_error_code=error.code,
    )


def _log_refusal(outcome: str, error: GraphError | None) -> None:
    # Ids of the number and the account are the customer's business: codes only.
    logger.info(
        "WhatsApp connection refused",
        extra={"outcome": outcome, "graph_error_code": error.code if error else None},
    )


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and str(value) else None


def _messaging_limit(number: dict[str, Any]) -> str | None:
    """Meta's current field first (reference/whatsapp.md section 7: `messaging_limit_tier` is
    deprecated for `whatsapp_business_manager_messaging_limit`), which may be a tier name or an object."""
    for field in ("whatsapp_business_manager_messaging_limit", "messaging_limit_tier"):
        value = number.get(field)
        if isinstance(value, dict):
            value = value.get("tier") or value.get("limit") or value.get("current_limit")
        if (text := _text(value)) is not None:
            return text
    return None
