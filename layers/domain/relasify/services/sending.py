"""Sending messages (SPEC section 5; docs/SENDING.md).

`send_message` is the API's entry: policy checks in the SPEC's order, then `deliver`, which the
broadcast worker shares:

1. the outbox item (our message id, status `accepted`, the id in `biz_opaque_callback_data`) is
   written BEFORE the Graph call, conditional on being new, under an id derived from the request
   (`derived_message_id`);
2. the Graph call;
3. the wamid is attached and any status that beat us is applied.

The outbox item is the API's only idempotency record: its id is derived from (workspace,
Idempotency-Key) and it keeps a hash of the request body. A retry that finds it with a wamid gets
that message without a call to Meta; one that finds it `failed` gets the same problem; another body
under the key is refused (422); a duplicate arriving while the first is talking to Meta waits for its
answer. One window stays open: a crash between Meta accepting the send and step 3. Meta has no
idempotency key, so the retry sends again; both sends carry the same callback data, so their
statuses land on one message.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from relasify import clock
from relasify.data import conversations, outbox, rate_limit, status_routes
from relasify.data import messages as message_store
from relasify.data import templates as template_store
from relasify.data.contacts import contact_repository
from relasify.data.identity import identity_repository
from relasify.data.kms_tokens import decrypt_token
from relasify.data.messages import Message
from relasify.data.records import Contact, NewContact, WhatsAppConnection
from relasify.data.templates import Template
from relasify.errors import (
    Conflict,
    DomainError,
    DuplicateContact,
    NotFound,
    SendInProgress,
    SendRefused,
    ValidationFailed,
)
from relasify.observability import logger
from relasify.settings import Settings, get_settings
from relasify.whatsapp.errors import GRAPH_ERRORS, GraphError, classify

SERVICE_WINDOW = timedelta(hours=24)
MARKETING = "MARKETING"
# How long a duplicate request waits for the first one holding its key (API Gateway allows 29 s).
IN_PROGRESS_WAIT_SECONDS = 25.0
IN_PROGRESS_POLL_SECONDS = 0.1
API_RATE_LIMIT_WAIT_SECONDS = 5.0
# Recording the wamid after Meta accepted a message: attempts (each with botocore's own retries) and backoff.
WAMID_RECORD_ATTEMPTS = 4
WAMID_RECORD_BACKOFF_SECONDS = 0.2
_T = TypeVar("_T")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


class IdempotencyKeyRequired(DomainError):
    status = 400
    type_slug = "idempotency-key-required"
    title = "Idempotency-Key header required"


class IdempotencyKeyReused(DomainError):
    status = 422
    type_slug = "idempotency-key-reused"
    title = "Idempotency-Key already used with another request"


def _key_reused() -> IdempotencyKeyReused:
    return IdempotencyKeyReused("This Idempotency-Key was used with a different request body; use a new key.")


class IdempotencyKeyInProgress(Conflict):
    type_slug = "idempotency-key-in-progress"
    title = "A request with this Idempotency-Key is still being processed"


# --- refusals -----------------------------------------------------------------------------------


def refuse(slug: str, detail: str, *, status: int = 409, **extra: Any) -> SendRefused:
    return SendRefused(slug, detail, status=status, **extra)


def connection_for_sending(ws: str) -> WhatsAppConnection:
    connection = identity_repository().get_whatsapp_connection(ws)
    if connection is None:
        raise refuse("whatsapp-not-connected", "No WhatsApp number is connected to this workspace.")
    if connection.token_status != "valid":  # noqa: S105 - a status, not a secret
        raise refuse(
            "whatsapp-not-connected",
            f"The WhatsApp access token is {connection.token_status}: reconnect the number with a new token.",
            token_status=connection.token_status,
        )
    return connection


def contact_refusal(contact: Contact, *, marketing: bool) -> SendRefused | None:
    """Contact-level refusals in the SPEC's order (restricted, opted out, unreachable)."""
    if contact.restricted:
        return refuse("contact-restricted", "Processing of this contact is restricted.")
    if marketing and contact.consent.status == "opted_out":
        return refuse("contact-opted-out", "The contact opted out of marketing messages.")
    if contact.unreachable:
        return refuse("recipient-unreachable", "WhatsApp reported this contact as unreachable.")
    return None


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


# --- delivery (shared by the API and the broadcast worker) --------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    ws: str
    connection: WhatsAppConnection
    contact: Contact
    message_id: str
    type: str
    content: dict[str, Any]
    sent_by: str | None = None
    request_hash: str | None = None  # API sends: the body's hash, kept on the outbox item (data/outbox.py)
    broadcast_id: str | None = None
    reply_to_wamid: str | None = None
    lease_seconds: int = outbox.API_SEND_LEASE_SECONDS  # over the sending function's timeout
    sends_upload: bool = False  # content["id"] names one of our uploads (services/media.py)


def send_rate(connection: WhatsAppConnection, settings: Settings | None = None) -> float:
    """The number's cap: its own throughput if configured, else the deployment default (80/s)."""
    return float(connection.throughput_per_second or (settings or get_settings()).default_send_rate_per_second)


def deliver(
    delivery: Delivery,
    *,
    graph: Any | None = None,
    before_graph_call: Callable[[], None] | None = None,
    reread: bool = True,
    record_sent: Callable[[str, str], bool] | None = None,
) -> Message:
    """Outbox write, Graph call, wamid attach. Permanent Graph failures end the message `failed`
    and raise the SendRefused of the error table (with `message_id`); transient ones that outlived
    the client's retries raise with the message left `accepted`, safe to retry. An outbox item of
    another request body (`delivery.request_hash`) raises IdempotencyKeyReused; one that another
    attempt is sending raises SendInProgress.

    `record_sent(message_id, wamid)` lets the caller record the wamid together with its own effects
    of the send in one write (the broadcast's recipient and count); when it returns False (a
    condition refused it and nothing was written) the wamid is recorded the general way."""
    ws = delivery.ws
    try:
        message, created = _put_accepted(delivery)
    except outbox.RequestMismatch:
        raise _key_reused() from None
    if not created:
        if message.wamid is not None:
            return message  # Meta accepted it already: never send twice
        if message.status == "failed":
            raise _stored_failure(message)
        # accepted without a wamid: an earlier attempt crashed or Meta's answer was lost (the window),
        # or an earlier attempt is still running (a redelivered job, a retried request): never join it.
        if not outbox.take_send_lease(ws, message.id, lease_seconds=delivery.lease_seconds):
            current = message_store.get_message(ws, message.id, consistent=True)
            if current is not None and current.wamid is not None:
                return current
            if current is not None and current.status == "failed":
                raise _stored_failure(current)
            raise SendInProgress("Another attempt is sending this message; retry in a few minutes.")
        logger.info("retrying an outbox message without wamid", extra={"message_id": message.id})
    return _send_and_record(delivery, message, graph, before_graph_call, reread=reread, record_sent=record_sent)


def _put_accepted(delivery: Delivery) -> tuple[Message, bool]:
    return outbox.put_accepted(
        outbox.NewOutbound(
            ws=delivery.ws,
            message_id=delivery.message_id,
            contact_id=delivery.contact.id,
            type=delivery.type,
            content=delivery.content,
            sent_by=delivery.sent_by,
            request_hash=delivery.request_hash,
            broadcast_id=delivery.broadcast_id,
            context_wamid=delivery.reply_to_wamid,
        ),
        lease_seconds=delivery.lease_seconds,
    )


def _send_and_record(
    delivery: Delivery,
    message: Message,
    graph: Any | None,
    before_graph_call: Callable[[], None] | None,
    *,
    reread: bool,
    record_sent: Callable[[str, str], bool] | None,
) -> Message:
    ws = delivery.ws
    try:
        result = _call_graph(delivery, message, graph, before_graph_call)
    except BaseException:
        # This attempt is over without a wamid (Meta refused it, or the window: it may have it): the
        # lease goes back, so a retry need not wait for it to run out.
        outbox.release_send_lease(ws, message.id)
        raise
    if record_sent is not None and _insist(lambda: record_sent(message.id, result.wamid), message.id):
        applied = 0  # recorded with the caller's effects; no status was waiting for it
    else:
        applied = _record_wamid(ws, message, result.wamid)
    if result.wa_id and not delivery.contact.wa_id and delivery.contact.phone:  # a wa_id for the phone we sent to
        _link_wa_id(ws, delivery.contact.id, result.wa_id)
    if not reread or not applied:  # nothing changed it but the wamid: spare a read
        return message.model_copy(update={"wamid": result.wamid})
    stored = message_store.get_message(ws, message.id, consistent=True)
    return stored or message


def _call_graph(
    delivery: Delivery, message: Message, graph: Any | None, before_graph_call: Callable[[], None] | None
) -> Any:
    """The Graph send itself (after the rate limiter, if any); Graph errors become domain errors."""
    ws = delivery.ws
    if before_graph_call is not None:
        before_graph_call()
    payload: dict[str, Any] = {
        "recipient_type": "individual",
        **_addressee(delivery.contact),
        "type": delivery.type,
        delivery.type: delivery.content,
        # The status webhooks' route (relasify.data.status_writes); an item written before it has the older one.
        "biz_opaque_callback_data": message.biz_opaque_callback_data or message_store.callback_data(ws, message.id),
    }
    if delivery.reply_to_wamid:
        payload["context"] = {"message_id": delivery.reply_to_wamid}
    client = graph or _graph_client()
    try:
        token = decrypt_token(ws, delivery.connection.encrypted_access_token)
        if delivery.sends_upload:
            from relasify.services import media  # only sends of uploaded files read S3

            payload[delivery.type] = media.graph_content(
                ws,
                message.id,
                delivery.content,
                phone_number_id=delivery.connection.phone_number_id,
                token=token,
                client=client,
            )
        return client.send_message(delivery.connection.phone_number_id, token, payload)
    except GraphError as error:
        raise _after_graph_error(delivery, message, error) from None


def _record_wamid(ws: str, message: Message, wamid: str) -> int:
    """Meta has the message now: record its wamid and apply statuses that arrived before it."""
    from relasify.services.webhook import apply_pending_statuses

    route = status_routes.parse_status_callback(message.biz_opaque_callback_data)  # for the pointer
    return _insist(lambda: apply_pending_statuses(ws, message.id, wamid, route=route), message.id)


def _insist(record: Callable[[], _T], message_id: str) -> _T:
    """Insist on recording a wamid (a message left without one is sent again when the request or job
    is retried). The records are idempotent, so retried past a throttled or failing write."""
    for attempt in range(1, WAMID_RECORD_ATTEMPTS + 1):
        try:
            return record()
        except Exception:
            if attempt == WAMID_RECORD_ATTEMPTS:
                raise
            logger.warning("recording a wamid failed; retrying", extra={"message_id": message_id, "attempt": attempt})
            time.sleep(WAMID_RECORD_BACKOFF_SECONDS * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def _graph_client() -> Any:
    from relasify.whatsapp.graph import get_graph_client

    return get_graph_client()


def _addressee(contact: Contact) -> dict[str, str]:
    """`to` (the WhatsApp id, or the phone's E.164 digits: the Cloud API's wa_id form), or, for a
    contact known only by the business-scoped user id Meta gives users with a username, `recipient`."""
    if contact.wa_id:
        return {"to": contact.wa_id}
    if contact.phone:
        return {"to": contact.phone.removeprefix("+")}
    if contact.user_id:
        return {"recipient": contact.user_id}
    raise refuse("recipient-unreachable", "The contact has no phone number or WhatsApp id.", status=422)


def _link_wa_id(ws: str, contact_id: str, wa_id: str) -> None:
    # Another contact may hold the wa_id, or the contact went: the send stands regardless.
    with contextlib.suppress(DuplicateContact, NotFound, Conflict):
        contact_repository().link_identity(ws, contact_id, wa_id=wa_id)


def _after_graph_error(delivery: Delivery, message: Message, error: GraphError) -> SendRefused:
    ws, contact_id = delivery.ws, delivery.contact.id
    refusal = error.to_domain_error()
    refusal.extra["message_id"] = message.id
    if error.retryable:
        # Out of retries on a transient error: Meta may or may not have the message. Leave it
        # `accepted` so a retry with the same key resends under the same id (docs/SENDING.md).
        return refusal
    if outbox.mark_failed(ws, message.id, code=error.code, title=error.title, details=error.details):
        conversations.apply_message_status(ws, contact_id, message.id, "failed", message_store.STATUS_RANK["failed"])
    if error.needs_new_token:
        identity_repository().update_whatsapp_health(ws, token_status="expired")  # noqa: S106
        logger.warning("WhatsApp token expired; connection marked", extra={"graph_error_code": error.code})
    elif error.code == 131026:
        contact_repository().set_unreachable(ws, contact_id, True)
    elif error.code == 131050:
        message_store.set_consent_if_newer(ws, contact_id, "opted_out", "send_error_131050", clock.now())
    return refusal


def _stored_failure(message: Message) -> SendRefused:
    spec = classify(message.error_code) if message.error_code in GRAPH_ERRORS else classify(None)
    return refuse(
        spec.problem_type,
        message.error_details or message.error_title or "The message failed.",
        status=spec.api_status,
        message_id=message.id,
        meta_error_code=message.error_code,
    )


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
        raise _key_reused()
    if earlier.message.wamid is not None:
        return earlier.message
    if earlier.message.status == "failed":
        raise _stored_failure(earlier.message)
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
