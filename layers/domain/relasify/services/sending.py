"""Sending messages through the API (SPEC section 5; docs/SENDING.md).

`send_message` is the API's entry: policy checks in the SPEC's order, then `delivery.deliver`
(services/delivery.py, shared with the broadcast worker), under an outbox id derived from the request
(`derived_message_id`). The template parameter checks here serve broadcasts too.

The outbox item is the API's only idempotency record: its id is derived from (workspace,
Idempotency-Key) and it keeps a hash of the request body. A retry that finds it with a wamid gets
that message without a call to Meta; one that finds it `failed` gets the same problem; another body
under the key is refused (422); a duplicate arriving while the first is talking to Meta waits for its
answer. One window stays open (services/delivery.py): a crash between Meta accepting the send and
the wamid being recorded.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from relasify import clock
from relasify.data import messages as message_store
from relasify.data import outbox, rate_limit
from relasify.data import templates as template_store
from relasify.data.contacts import contact_repository
from relasify.data.messages import Message
from relasify.data.records import Contact, NewContact
from relasify.data.templates import Template
from relasify.errors import Conflict, DomainError, NotFound, SendInProgress, ValidationFailed
from relasify.services.delivery import (
    Delivery,
    connection_for_sending,
    contact_refusal,
    deliver,
    key_reused,
    refuse,
    send_rate,
    stored_failure,
)

SERVICE_WINDOW = timedelta(hours=24)
MARKETING = "MARKETING"
# How long a duplicate request waits for the first one holding its key (API Gateway allows 29 s).
IN_PROGRESS_WAIT_SECONDS = 25.0
IN_PROGRESS_POLL_SECONDS = 0.1
API_RATE_LIMIT_WAIT_SECONDS = 5.0
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


class IdempotencyKeyRequired(DomainError):
    status = 400
    type_slug = "idempotency-key-required"
    title = "Idempotency-Key header required"


class IdempotencyKeyInProgress(Conflict):
    type_slug = "idempotency-key-in-progress"
    title = "A request with this Idempotency-Key is still being processed"


def outside_service_window(contact: Contact) -> bool:
    last = contact.last_inbound_at
    return last is None or clock.now() - last > SERVICE_WINDOW


def expected_parameters(template: Template) -> dict[str, int]:
    """Placeholders per component type ("body", "header") of an approved template definition."""
    out: dict[str, int] = {}
    body = _component(template, "body")
    if body is not None and (count := _placeholders(body)):
        out["body"] = count
    header_kind = header_parameter_kind(template)
    if header_kind is not None:  # a media header takes one media parameter
        out["header"] = _placeholders(_component(template, "header") or {}) if header_kind == "text" else 1
    return out


def header_parameter_kind(template: Template) -> str | None:
    """What the header's one parameter is: "text", "image", "video", "document" or "location"; None
    when the header takes none (no header, or a text header without a placeholder)."""
    header = _component(template, "header")
    if header is None:
        return None
    kind = str(header.get("format", "TEXT")).lower()
    if kind != "text":
        return kind
    return "text" if _placeholders(header) else None


def _component(template: Template, kind: str) -> dict[str, Any] | None:
    return next((c for c in template.components if str(c.get("type", "")).lower() == kind), None)


def _placeholders(component: dict[str, Any]) -> int:
    return len(set(_PLACEHOLDER.findall(str(component.get("text") or ""))))


def given_parameters(components: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for component in components:
        kind = str(component.get("type", "")).lower()
        if kind in ("body", "header"):
            params = component.get("parameters")
            out[kind] = out.get(kind, 0) + (len(params) if isinstance(params, list) else 0)
    return {k: v for k, v in out.items() if v}


def check_template(ws: str, name: str, language: str, components: list[dict[str, Any]]) -> Template:
    template = template_store.get_template(ws, name, language)
    if template is None or template.status != "APPROVED":
        state = "does not exist" if template is None else f"is {template.status}"
        raise refuse("template-not-approved", f"Template {name} ({language}) {state}; only APPROVED templates send.")
    expected, given = expected_parameters(template), given_parameters(components)
    # A template known only from a webhook (created in Meta's UI, not synced yet) has no definition
    # here: Meta checks its parameters (error 132000) rather than us refusing every send.
    if template.components and expected != given:
        raise refuse(
            "template-not-approved",
            f"Template {name} ({language}) expects parameters {expected or 'none'}, got {given or 'none'}.",
            status=422,
            expected_parameters=expected,
        )
    return template


# --- the API's send ---------------------------------------------------------------------------


def resolve_contact(ws: str, *, contact_id: str | None, to: str | None) -> tuple[Contact, NewContact | None]:
    """The addressed contact, created by nobody: for a `to` without a contact, a blank stand-in
    (no window, consent unknown, not restricted or unreachable) and the NewContact to create once
    the send goes ahead, so a refused send leaves no contact behind."""
    repo = contact_repository()
    if contact_id is not None:
        contact = repo.get(ws, contact_id)
        if contact is None:
            raise NotFound("Contact not found")
        return contact, None
    from relasify.phones import normalize_phone  # phonenumbers is heavy: only sends by phone pay for it

    phone = normalize_phone(to or "", field="to")
    existing = repo.find_by_phone(ws, phone)
    if existing is not None:
        return existing, None
    new = NewContact(phone=phone, wa_id=phone.removeprefix("+"))
    return Contact(id="", ws=ws, phone=new.phone, wa_id=new.wa_id), new


def _check_contact(contact: Contact, *, message_type: str, marketing: bool) -> None:
    refusal = contact_refusal(contact, marketing=marketing)
    if refusal is not None:
        raise refusal
    if message_type != "template" and outside_service_window(contact):
        raise refuse(
            "outside-service-window",
            "More than 24 hours since the contact's last message: send an approved template instead.",
        )


@dataclass(frozen=True, slots=True)
class ApiSend:
    """One POST /messages: its outbox id is derived from (workspace, Idempotency-Key)."""

    ws: str
    key: str
    body: dict[str, Any]
    actor: str | None
    message_id: str
    request_hash: str


def _send_once(request: ApiSend) -> Message:
    """Checks, then delivery; a request whose key was used before is answered as the first was."""
    try:
        delivery = _checked_delivery(request)
    except DomainError:
        # Refused now (the contact opted out since, the token expired, ...), yet the key may have
        # been used already: the first request's answer stands. One read, on refusals only.
        earlier = outbox.attempt(request.ws, request.message_id)
        answer = _earlier_answer(request, earlier) if earlier is not None else None
        if answer is None:
            raise
        return answer
    if isinstance(delivery, Message):
        return delivery
    return deliver(delivery, before_graph_call=lambda: _take_token(_rate_limiter(delivery)))


def _earlier_answer(request: ApiSend, earlier: outbox.OutboxAttempt) -> Message | None:
    """What an earlier request with this key ended with: its message once Meta has it, its problem
    once it failed; IdempotencyKeyReused for another body; None while it has no answer."""
    if earlier.request_hash not in (None, request.request_hash):
        raise key_reused()
    if earlier.message.wamid is not None:
        return earlier.message
    if earlier.message.status == "failed":
        raise stored_failure(earlier.message)
    return None


def _checked_delivery(request: ApiSend) -> Delivery | Message:
    """The policy checks in the SPEC's order, then the Delivery (or, for a send by phone whose key
    was answered already, that answer: a retry creates no contact)."""
    ws, body = request.ws, request.body
    message_type: str = body["type"]
    content: dict[str, Any] = body[message_type]
    connection = connection_for_sending(ws)
    contact, to_create = resolve_contact(ws, contact_id=body.get("contact_id"), to=body.get("to"))
    template: Template | None = None
    if message_type == "template":
        template = template_store.get_template(ws, content["name"], content["language"]["code"])
    marketing = template is not None and (template.category or "").upper() == MARKETING
    _check_contact(contact, message_type=message_type, marketing=marketing)
    if message_type == "template":
        check_template(ws, content["name"], content["language"]["code"], list(content.get("components") or []))
    sends_upload = _names_upload(message_type, content)
    if sends_upload:
        from relasify.services import media

        media.prepare_send(ws, message_type, content, request.message_id)
    if to_create is not None:
        earlier = outbox.attempt(ws, request.message_id)
        answer = _earlier_answer(request, earlier) if earlier is not None else None
        if answer is not None:
            return answer
        # Every check passed: only now does the number become a contact. A concurrent request may
        # have created it meanwhile; that contact is the real one, so its own state is checked.
        contact, created = contact_repository().create_or_get(ws, to_create)
        if not created:
            _check_contact(contact, message_type=message_type, marketing=marketing)
    return Delivery(
        ws=ws,
        connection=connection,
        contact=contact,
        message_id=request.message_id,
        type=message_type,
        content=content,
        sent_by=request.actor,
        request_hash=request.request_hash,
        reply_to_wamid=reply_target(ws, (body.get("context") or {}).get("message_id")),
        sends_upload=sends_upload,
    )


def _rate_limiter(delivery: Delivery) -> rate_limit.SlotRateLimiter:
    return rate_limit.limiter_for(delivery.connection.phone_number_id, send_rate(delivery.connection))


def reply_target(ws: str, message_id: str | None) -> str | None:
    """The wamid a reply quotes (`context.message_id`): our message id (of this workspace) or a wamid."""
    if not message_id or not message_id.startswith("msg_"):
        return message_id or None
    target = message_store.get_message(ws, message_id)
    if target is None or target.wamid is None or target.direction == "note":
        raise ValidationFailed(
            "context.message_id names no message of this workspace that WhatsApp knows.",
            errors=[{"loc": ["body", "context", "message_id"], "msg": "unknown message"}],
        )
    return target.wamid


def _names_upload(message_type: str, content: dict[str, Any]) -> bool:
    """A media message whose `id` is one of our upload ids (Meta's media ids are numeric)."""
    media_id = content.get("id") if message_type in ("image", "document", "audio", "video", "sticker") else None
    return isinstance(media_id, str) and not media_id.isdigit()


def _take_token(limiter: rate_limit.SlotRateLimiter) -> None:
    try:
        limiter.acquire(timeout_seconds=API_RATE_LIMIT_WAIT_SECONDS)
    except rate_limit.RateLimitTimeout:
        raise refuse(
            "whatsapp-throughput-exceeded", "The number's send rate is exhausted; retry shortly.", status=429
        ) from None


def send_message(
    ws: str,
    body: dict[str, Any],
    idempotency_key: str | None,
    *,
    actor_sub: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Message:
    """Send once per (workspace, Idempotency-Key). Raises the refusal problems of SPEC section 5."""
    if not idempotency_key or not idempotency_key.strip():
        raise IdempotencyKeyRequired("Send an Idempotency-Key header (a unique value per message).")
    key = idempotency_key.strip()
    if len(key) > 255 or not key.isprintable():
        raise ValidationFailed("The Idempotency-Key header must be at most 255 printable characters.")
    request = ApiSend(
        ws=ws,
        key=key,
        body=body,
        actor=actor_sub,
        message_id=outbox.derived_message_id(ws, "api", key),
        request_hash=outbox.request_hash(body),
    )
    deadline = time.monotonic() + IN_PROGRESS_WAIT_SECONDS
    while True:
        try:
            return _send_once(request)
        except SendInProgress:
            answer = _await_other_attempt(request, deadline, sleep)
            if answer is not None:
                return answer
            # The other attempt gave its lease back without an answer (a transient failure): this
            # request sends, as a retry would.


def _await_other_attempt(request: ApiSend, deadline: float, sleep: Callable[[float], None]) -> Message | None:
    """A duplicate arrived while the first request with its key is talking to Meta: wait for its
    answer (one consistent read per poll). None when the first ended without one (lease free)."""
    while time.monotonic() < deadline:
        sleep(IN_PROGRESS_POLL_SECONDS)
        current = outbox.attempt(request.ws, request.message_id)
        if current is None:
            return None
        answer = _earlier_answer(request, current)
        if answer is not None:
            return answer
        if current.lease_free():
            return None
    raise IdempotencyKeyInProgress("The first request with this key is still running; retry.")


def get_message(ws: str, message_id: str) -> Message:
    message = message_store.get_message(ws, message_id)
    if message is None:
        raise NotFound("Message not found")
    return message


def conversation(ws: str, contact_id: str, *, limit: int, cursor: str | None) -> Any:
    if contact_repository().get(ws, contact_id) is None:
        raise NotFound("Contact not found")
    return outbox.conversation_page(ws, contact_id, limit=limit, cursor=cursor)
