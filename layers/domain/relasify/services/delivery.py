"""Delivering one outbound message (docs/SENDING.md): shared by the API's send (services/sending.py)
and the broadcast pipeline (services/broadcast_pipeline.py).

`deliver`:
1. writes the outbox item (our message id, status `accepted`, the id in `biz_opaque_callback_data`)
   BEFORE the Graph call, conditional on being new, under an id the caller derives from its request;
2. makes the Graph call;
3. attaches the wamid and applies any status that beat us (services/statuses.py).

A crash between Meta accepting the send and step 3 leaves the message `accepted` without a wamid:
Meta has no idempotency key, so a retry sends again; both sends carry the same callback data, so
their statuses land on one message.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from relasify import clock
from relasify.data import contact_consent, conversations, outbox, status_changes, status_routes
from relasify.data import messages as message_store
from relasify.data.contacts import contact_repository
from relasify.data.kms_tokens import decrypt_token
from relasify.data.messages import Message
from relasify.data.records import Contact, WhatsAppConnection
from relasify.data.whatsapp_connections import whatsapp_connection_repository
from relasify.errors import Conflict, DomainError, DuplicateContact, NotFound, SendInProgress, SendRefused
from relasify.observability import logger
from relasify.services.statuses import apply_pending_statuses
from relasify.settings import Settings, get_settings
from relasify.whatsapp.errors import GRAPH_ERRORS, GraphError, classify

# Recording the wamid after Meta accepted a message: attempts (each with botocore's own retries) and backoff.
WAMID_RECORD_ATTEMPTS = 4
WAMID_RECORD_BACKOFF_SECONDS = 0.2
_T = TypeVar("_T")


class IdempotencyKeyReused(DomainError):
    status = 422
    type_slug = "idempotency-key-reused"
    title = "Idempotency-Key already used with another request"


def key_reused() -> IdempotencyKeyReused:
    return IdempotencyKeyReused("This Idempotency-Key was used with a different request body; use a new key.")


# --- refusals -----------------------------------------------------------------------------------


def refuse(slug: str, detail: str, *, status: int = 409, **extra: Any) -> SendRefused:
    return SendRefused(slug, detail, status=status, **extra)


def connection_for_sending(ws: str) -> WhatsAppConnection:
    connection = whatsapp_connection_repository().get_whatsapp_connection(ws)
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


# --- delivery -----------------------------------------------------------------------------------


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
        raise key_reused() from None
    if not created:
        if message.wamid is not None:
            return message  # Meta accepted it already: never send twice
        if message.status == "failed":
            raise stored_failure(message)
        # accepted without a wamid: an earlier attempt crashed or Meta's answer was lost (the window),
        # or an earlier attempt is still running (a redelivered job, a retried request): never join it.
        if not outbox.take_send_lease(ws, message.id, lease_seconds=delivery.lease_seconds):
            current = message_store.get_message(ws, message.id, consistent=True)
            if current is not None and current.wamid is not None:
                return current
            if current is not None and current.status == "failed":
                raise stored_failure(current)
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
    client = graph or graph_client()
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


def graph_client() -> Any:
    """The Graph client sends use (the benches' seam for Meta's API); imported on first use."""
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
        conversations.apply_message_status(ws, contact_id, message.id, "failed", status_changes.STATUS_RANK["failed"])
    if error.needs_new_token:
        whatsapp_connection_repository().update_whatsapp_health(ws, token_status="expired")  # noqa: S106
        logger.warning("WhatsApp token expired; connection marked", extra={"graph_error_code": error.code})
    elif error.code == 131026:
        contact_repository().set_unreachable(ws, contact_id, True)
    elif error.code == 131050:
        contact_consent.set_consent_if_newer(ws, contact_id, "opted_out", "send_error_131050", clock.now())
    return refusal


def stored_failure(message: Message) -> SendRefused:
    spec = classify(message.error_code) if message.error_code in GRAPH_ERRORS else classify(None)
    return refuse(
        spec.problem_type,
        message.error_details or message.error_title or "The message failed.",
        status=spec.api_status,
        message_id=message.id,
        meta_error_code=message.error_code,
    )
