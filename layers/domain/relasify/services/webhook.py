"""Applying verified WhatsApp webhooks to the workspaces they belong to.

One queued delivery is parsed into typed events (`relasify.whatsapp.webhook_events`), each routed
to its workspace (by `metadata.phone_number_id`; account-level fields by the WABA id `entry[].id`
and, where given, the display phone number) and applied through the repositories. Every effect is
idempotent by a conditional write or a forward-only guard, so a redelivered webhook, a retried
SQS record or a replayed backlog changes nothing twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from relasify import clock
from relasify.data import (
    contact_consent,
    contact_markers,
    conversations,
    status_routes,
    templates,
    tombstones,
    webhook_inbox,
)
from relasify.data import messages as message_store
from relasify.data.contacts import contact_repository
from relasify.data.records import NewContact
from relasify.data.whatsapp_connections import whatsapp_connection_repository
from relasify.errors import DuplicateContact
from relasify.observability import logger
from relasify.phones import e164_from_wa_id
from relasify.services import statuses
from relasify.services.opt_out_keywords import is_opt_out_button, is_opt_out_text
from relasify.services.webhook_routing import RouteCache, WebhookContext
from relasify.whatsapp.webhook_events import (
    AccountUpdateEvent,
    AnyWebhookEvent,
    InboundMessageEvent,
    MessagesErrorEvent,
    PhoneQualityEvent,
    StatusEvent,
    TemplateCategoryEvent,
    TemplateComponentsEvent,
    TemplateQualityEvent,
    TemplateStatusEvent,
    UnknownFieldEvent,
    UserPreferenceEvent,
    flatten_payload,
    parse_payload,
)
from relasify.whatsapp.webhook_models import InboundMessage

# Meta retries for 7 days: anything older than that is a replayed backlog, stored but flagged.
STALE_AFTER = timedelta(days=7)
# A duplicate re-enqueues a media copy only when the first job had time to finish and did not.
MEDIA_RETRY_AFTER = timedelta(minutes=2)
CONSENT_SOURCE_KEYWORD = "inbound_keyword"
CONSENT_SOURCE_PREFERENCES = "user_preferences"


@dataclass
class ProcessSummary:
    """Counts per event kind and outcome, for metrics and tests (no personal data)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1


# --- contacts ------------------------------------------------------------------------------------


class _WebhookContacts:
    """The contact operations webhooks need, on the contacts repository. Each is idempotent."""

    def find_or_create(
        self,
        ws: str,
        *,
        wa_id: str | None,
        user_id: str | None,
        name: str | None,
        at: datetime,
        known: Mapping[tuple[str, str, str], str] | None = None,
    ) -> str | None:
        """The contact id for a sender: by wa_id or user_id (one marker read in the common case),
        then by the phone behind the wa_id (a contact created through the API before the customer
        wrote); else a new contact. Meta ids the contact lacks are linked once.

        None when the sender is unknown because they were ERASED after `at` (the event's own time):
        a redelivered old webhook must not re-create them. The tombstone read happens only on this
        create path, so events of known contacts cost no extra request. `known`: markers the
        invocation read ahead, by (workspace, kind, value); one it did not find is read here."""
        identities = {kind: value for kind, value in (("wa_id", wa_id), ("user_id", user_id)) if value}
        known = known or {}
        found = {
            kind: known.get((ws, kind, value)) or contact_markers.contact_id_by_identity(ws, kind, value)
            for kind, value in identities.items()
        }
        contact_id = next((cid for cid in found.values() if cid), None)
        repo = contact_repository()
        phone = e164_from_wa_id(wa_id) if wa_id else None
        if contact_id is None and phone:
            by_phone = repo.find_by_phone(ws, phone)
            contact_id = by_phone.id if by_phone else None
        if contact_id is None:
            if _erased_since(ws, wa_id=wa_id, user_id=user_id, at=at):
                return None
            created, _ = repo.create_or_get(ws, NewContact(phone=phone, wa_id=wa_id, user_id=user_id, name=name))
            return created.id
        missing = {kind: value for kind, value in identities.items() if found.get(kind) != contact_id}
        if missing:
            try:
                repo.link_identity(ws, contact_id, **missing)
            except DuplicateContact:
                # Another contact already holds that id (e.g. a number reassigned): keep both as they are.
                logger.warning("webhook identity held by another contact", extra={"contact_id": contact_id})
        return contact_id

    def touch_inbound(self, ws: str, contact_id: str, at: datetime) -> None:
        contact_repository().record_inbound(ws, contact_id, at)

    def set_consent(self, ws: str, contact_id: str, status: str, source: str, at: datetime) -> bool:
        return contact_consent.set_consent_if_newer(ws, contact_id, status, source, at)


contacts = _WebhookContacts()


def _erased_since(ws: str, *, wa_id: str | None, user_id: str | None, at: datetime) -> bool:
    """Whether this sender's contact was erased at or after `at` (an erasure tombstone says so)."""
    erased = tombstones.erased_at(ws, [("wa_id", wa_id), ("user_id", user_id)])
    return erased is not None and int(at.timestamp()) <= erased


# --- entry points ----------------------------------------------------------------------------------


def process_queued_webhook(
    message_body: str,
    *,
    routes: RouteCache | None = None,
    discard_raw: Callable[[str], None] = webhook_inbox.discard_raw,
) -> ProcessSummary:
    """Apply one webhook queue message (an SQS record body). `discard_raw` deletes the raw copy (if the
    message has one) once every effect is stored; the processor passes `RawDiscards.deferrer` to
    delete a batch's copies together."""
    queued = webhook_inbox.read_queued(message_body)
    try:
        summary = process_payload(queued.raw, routes=routes)
    except ValidationError as exc:
        # A correctly signed body that is not a webhook (empty, not JSON, not the envelope) will
        # never parse: retrying it only burns invocations until the DLQ. Keep a raw copy (its
        # retention window applies) and drop the record; log the S3 key and error count only.
        kept = keep_raw_copy(message_body, queued)
        logger.warning("unparseable webhook kept", extra={"s3_key": kept, "errors": exc.error_count()})
        return ProcessSummary(counts={"unparseable:kept": 1})
    # Once every effect is stored, a raw copy has served its purpose (durability until processed).
    # Deleting it keeps personal data only in items that erasure and the sweep reach. A payload
    # with a field we do not handle yet is kept for its retention window (lifecycle rule), as SPEC
    # asks: nothing Meta sent is lost before we can process it.
    if any(key.startswith("unknown_field:") for key in summary.counts):
        keep_raw_copy(message_body, queued)
    else:
        discard_raw(message_body)
    return summary


def keep_raw_copy(message_body: str, queued: webhook_inbox.QueuedWebhook) -> str:
    """The S3 key of a raw copy of this delivery, written now when the message carried the body alone
    (v2 inline): the copy outlives the message for the retention window (lifecycle rule)."""
    bucket = webhook_inbox.WebhookInboxConfig.from_environment().media_bucket
    return webhook_inbox.keep_raw(message_body, queued, bucket, clock.now())[1]


class RawDiscards:
    """The raw copies of one processor invocation's processed records, deleted together at its end:
    one S3 DeleteObjects per batch instead of one DeleteObject per record. A record counts as done
    only once its copy is deleted, as when each record deleted its own. Inline records (v2) have no
    copy: nothing to delete."""

    def __init__(self) -> None:
        self._by_record: dict[str, tuple[str, str]] = {}

    def deferrer(self, record_id: str) -> Callable[[str], None]:
        """The `discard_raw` for one record: remembers its copy, if any, for `flush`."""

        def defer(message_body: str) -> None:
            location = webhook_inbox.raw_location(message_body)
            if location is not None:
                self._by_record[record_id] = location

        return defer

    def flush(self, failed: Mapping[str, str] | None = None) -> list[str]:
        """Delete the remembered copies; returns the records whose copy could not be deleted (report
        them failed: SQS redelivers them, their effects are idempotent and the retry deletes again).
        `failed` maps the batch's failed records to their bodies: their copies, and any copy one of them
        also refers to (a redelivery of the same bytes, same content-addressed key), are kept for the
        retry."""
        failed = failed or {}
        kept_for_retry = set()
        for body in failed.values():
            with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):  # a malformed body
                location = webhook_inbox.raw_location(body)
                if location is not None:
                    kept_for_retry.add(location)
        done = {record_id: loc for record_id, loc in self._by_record.items() if record_id not in failed}
        self._by_record = {}
        to_delete = {loc for loc in done.values() if loc not in kept_for_retry}
        not_deleted = webhook_inbox.discard_raw_objects(sorted(to_delete)) if to_delete else set()
        return [record_id for record_id, loc in done.items() if loc in not_deleted]


def process_payload(raw: bytes | str | dict[str, Any], *, routes: RouteCache | None = None) -> ProcessSummary:
    """Apply every event of one delivery. An exception fails the whole delivery; since every effect
    is idempotent, the retry re-applies what was done and completes the rest."""
    summary = ProcessSummary()
    delivery = WebhookContext(routes)
    events = flatten_payload(parse_payload(raw))
    statuses = [e.status for e in events if isinstance(e, StatusEvent)]
    if statuses:
        # Statuses with a route (status_writes) need no read; the others are read in batches.
        statuses = [s for s in statuses if status_routes.parse_status_callback(s.biz_opaque_callback_data) is None]
        callbacks = {s.id: message_store.parse_callback_data(s.biz_opaque_callback_data) for s in statuses}
        billable = [s for s in statuses if s.pricing is not None and s.pricing.billable]
        delivery.statuses.prefetch(
            pointer_wamids=[s.id for s in statuses if callbacks[s.id] is None],
            message_wamids=[s.id for s in billable if callbacks[s.id] is None],
            locations=[loc for s in billable if (loc := callbacks[s.id]) is not None],
        )
    for event in events:
        summary.add(f"{event.kind}:{apply_event(event, delivery)}")
    return summary


def apply_event(event: AnyWebhookEvent, delivery: WebhookContext | None = None) -> str:
    """Apply one event; returns a short outcome label (logged and counted, never personal)."""
    delivery = delivery or WebhookContext()
    handler = _HANDLERS.get(type(event))
    if handler is None:  # pragma: no cover - every event type has a handler
        return "ignored"
    return handler(event, delivery)


# --- inbound messages --------------------------------------------------------------------------


def _handle_inbound(event: InboundMessageEvent, delivery: WebhookContext) -> str:
    ws = delivery.by_phone_number_id(event.routing.phone_number_id or "")
    if ws is None:
        logger.warning("webhook for an unconnected number", extra={"field": event.field, "kind": event.kind})
        return "unrouted"
    message = event.message
    wa_id = message.from_ or (event.contact.wa_id if event.contact else None) or None
    user_id = message.from_user_id or (event.contact.user_id if event.contact else None) or None
    if not wa_id and not user_id:
        logger.warning("inbound message without sender id", extra={"type": message.type})
        return "no_sender"
    profile_name = event.contact.profile.name if event.contact and event.contact.profile else None
    now = clock.now()
    message_at = message.sent_at or now
    contact_id = contacts.find_or_create(
        ws, wa_id=wa_id, user_id=user_id, name=profile_name, at=message_at, known=delivery.routes.contact_ids
    )
    if contact_id is None:
        # Sent before the sender's erasure and redelivered since: dropped, nothing stored.
        # WARNING, not INFO: the webhook path keeps WARN and above (template HotPathLogLevel).
        logger.warning("webhook about an erased contact dropped", extra={"ws": ws, "kind": event.kind})
        return "erased"

    flags = (message_store.STALE_BACKLOG_FLAG,) if now - message_at > STALE_AFTER else ()
    media = message.media
    content = message.type_payload() or {}
    content.pop("url", None)  # Meta's media URL is short-lived and bearer-protected: never stored
    if message.errors:
        content["errors"] = [e.model_dump(mode="json", exclude_none=True) for e in message.errors]
    if message.referral is not None:
        content["referral"] = message.referral.model_dump(mode="json", exclude_none=True)

    recorded = conversations.record_inbound(  # the message and its conversation, in one transaction
        message_store.NewInboundMessage(
            ws=ws,
            contact_id=contact_id,
            wamid=message.id,
            type=message.type,
            content=content,
            message_at=message_at,
            context_wamid=message.context.id if message.context else None,
            media_id=media.id if media else None,
            flags=flags,
            in_conversation=message.type != "reaction",
        ),
        reads=delivery.routes.conversations,  # read ahead with the batch, kept current
    )
    outcome = "recorded" if recorded else "duplicate"
    stored = recorded or message_store.get_inbound(ws, message.id)

    # Effects below are idempotent, so they run for duplicates too: a delivery that failed half-way
    # completes on its retry.
    contacts.touch_inbound(ws, contact_id, message_at)
    if is_opt_out_message(message):
        contacts.set_consent(ws, contact_id, "opted_out", CONSENT_SOURCE_KEYWORD, message_at)
    if message.type == "reaction" and message.reaction and message.reaction.message_id:
        _attach_reaction(
            ws, wa_id or user_id or "", message.reaction.message_id, message.reaction.emoji, message.id, message_at
        )
    if media is not None and media.id and _media_copy_due(stored, ws, fresh=recorded is not None, now=now):
        webhook_inbox.enqueue_media_job(ws, stored.id, media.id, webhook_inbox.WebhookInboxConfig.from_environment())
    return outcome


def _media_copy_due(stored: message_store.Message | None, ws: str, *, fresh: bool, now: datetime) -> bool:
    """A new message's media is always queued; a duplicate re-queues it only when the first job had
    time to finish and did not (a delivery that failed between recording and enqueueing)."""
    if stored is None or stored.ws != ws or stored.media_s3_key is not None or stored.media_error is not None:
        return False
    return fresh or stored.created_at is None or now - stored.created_at > MEDIA_RETRY_AFTER


def is_opt_out_message(message: InboundMessage) -> bool:
    """An opt-out keyword typed or tapped, or the template opt-out quick-reply button."""
    if message.type == "button" and message.button is not None:
        return is_opt_out_button(message.button.payload, message.button.text)
    if message.type in ("text", "interactive"):
        return is_opt_out_text(message.text_for_keywords())
    return False


def _attach_reaction(ws: str, reactor: str, target_wamid: str, emoji: str | None, wamid: str, at: datetime) -> None:
    target = message_store.locate_wamid(target_wamid)  # our outbound messages have a wamid pointer
    target_id = target.message_id if target is not None and target.ws == ws else None
    if target_id is None and message_store.get_inbound(ws, target_wamid) is not None:
        target_id = message_store.inbound_message_id(target_wamid)
    if target_id is None:
        return  # a reaction to a message we never stored (or another workspace's): nothing to attach
    reaction = message_store.Reaction(emoji=emoji or None, from_wa_id=reactor, wamid=wamid, at=at)
    message_store.attach_reaction(ws, target_id, reaction)


# --- statuses (services/statuses.py) -----------------------------------------------------------------


def _handle_status(event: StatusEvent, delivery: WebhookContext) -> str:
    ws = delivery.by_phone_number_id(event.routing.phone_number_id or "")
    if ws is None:
        logger.warning("webhook for an unconnected number", extra={"field": event.field, "kind": event.kind})
        return "unrouted"
    return statuses.apply_status_event(event, ws, delivery.statuses, delivery.routes.conversations)


# --- templates, preferences, account -----------------------------------------------------------------


def _event_time(event: AnyWebhookEvent) -> datetime:
    return datetime.fromtimestamp(event.entry_time, clock.now().tzinfo) if event.entry_time else clock.now()


def _apply_template_update(event: Any, delivery: WebhookContext, **fields: Any) -> str:
    """Every template webhook (status, category, quality) upserts the template in each workspace
    the WABA routes to, guarded by the event time; only the reported fields differ."""
    update = event.update
    if not update.message_template_name or not update.message_template_language:
        return "incomplete"
    changed = 0
    for ws in delivery.by_account(event.routing):
        changed += templates.apply_template_webhook(
            ws, update.message_template_name, update.message_template_language, at=_event_time(event), **fields
        )
    return "applied" if changed else "unchanged"


def _meta_template_id(update: Any) -> str | None:
    return str(update.message_template_id) if update.message_template_id is not None else None


def _handle_template_status(event: TemplateStatusEvent, delivery: WebhookContext) -> str:
    update = event.update
    rejection = update.rejection_info.reason if update.rejection_info and update.rejection_info.reason else None
    return _apply_template_update(
        event,
        delivery,
        status=update.event,
        reason=rejection or update.reason,
        category=update.message_template_category,
        meta_template_id=_meta_template_id(update),
    )


def _handle_template_category(event: TemplateCategoryEvent, delivery: WebhookContext) -> str:
    update = event.update
    return _apply_template_update(
        event,
        delivery,
        category=update.new_category or update.correct_category,
        meta_template_id=_meta_template_id(update),
    )


def _handle_template_quality(event: TemplateQualityEvent, delivery: WebhookContext) -> str:
    return _apply_template_update(event, delivery, quality_score=event.update.new_quality_score)


def _handle_template_components(event: TemplateComponentsEvent, delivery: WebhookContext) -> str:
    # Meta's summary of an edited template is not the full component list: the on-demand sync
    # fetches the definition. Logged so operators see it.
    logger.info("template components changed", extra={"template_id": str(event.update.message_template_id)})
    return "logged"


def _handle_user_preference(event: UserPreferenceEvent, delivery: WebhookContext) -> str:
    ws = delivery.by_phone_number_id(event.routing.phone_number_id or "")
    if ws is None:
        return "unrouted"
    pref = event.preference
    if pref.category not in (None, "marketing_messages") or pref.value not in ("stop", "resume"):
        logger.warning("user preference not tracked", extra={"category": pref.category, "value": pref.value})
        return "untracked"
    if not pref.wa_id and not pref.user_id:
        return "no_sender"
    at = pref.occurred_at or _event_time(event)
    contact_id = contacts.find_or_create(ws, wa_id=pref.wa_id or None, user_id=pref.user_id or None, name=None, at=at)
    if contact_id is None:
        logger.warning("webhook about an erased contact dropped", extra={"ws": ws, "kind": event.kind})
        return "erased"
    status = "opted_out" if pref.value == "stop" else "opted_in"
    changed = contacts.set_consent(ws, contact_id, status, CONSENT_SOURCE_PREFERENCES, at)
    return "applied" if changed else "unchanged"


_QUALITY_BY_EVENT = {"FLAGGED": "RED", "UNFLAGGED": "GREEN"}


def _handle_phone_quality(event: PhoneQualityEvent, delivery: WebhookContext) -> str:
    update = event.update
    extra = update.model_extra or {}
    quality = extra.get("quality_rating") or _QUALITY_BY_EVENT.get(update.event or "")
    limit = (
        extra.get("whatsapp_business_manager_messaging_limit")
        or update.max_daily_conversations_per_business
        or update.current_limit
    )
    workspaces, unrouted = delivery.route_account(event.routing, update.display_phone_number)
    changed = 0
    for ws in workspaces:
        connection = whatsapp_connection_repository().update_whatsapp_health(
            ws, quality_rating=quality, messaging_limit=limit, account_status=None
        )
        changed += connection is not None
    return "applied" if changed else unrouted


def _handle_account_update(event: AccountUpdateEvent, delivery: WebhookContext) -> str:
    update = event.update
    restrictions: list[Any] | None = None
    if update.event == "ACCOUNT_RESTRICTION" or update.restriction_info:
        restrictions = [r.model_dump(mode="json", exclude_none=True) for r in update.restriction_info]
    workspaces, unrouted = delivery.route_account(event.routing, update.phone_number)
    changed = 0
    for ws in workspaces:
        connection = whatsapp_connection_repository().update_whatsapp_health(
            ws, account_status=update.event, restrictions=restrictions
        )
        changed += connection is not None
    return "applied" if changed else unrouted


def _handle_messages_error(event: MessagesErrorEvent, delivery: WebhookContext) -> str:
    logger.warning("webhook reported an error", extra={"code": event.error.code})
    return "logged"


def _handle_unknown(event: UnknownFieldEvent, delivery: WebhookContext) -> str:
    # The raw payload is already in S3 (message-content retention); log the field name only.
    logger.info("unhandled webhook field kept", extra={"field": event.field})
    return "kept"


_HANDLERS: dict[type, Callable[[Any, WebhookContext], str]] = {
    InboundMessageEvent: _handle_inbound,
    StatusEvent: _handle_status,
    TemplateStatusEvent: _handle_template_status,
    TemplateCategoryEvent: _handle_template_category,
    TemplateQualityEvent: _handle_template_quality,
    TemplateComponentsEvent: _handle_template_components,
    UserPreferenceEvent: _handle_user_preference,
    PhoneQualityEvent: _handle_phone_quality,
    AccountUpdateEvent: _handle_account_update,
    MessagesErrorEvent: _handle_messages_error,
    UnknownFieldEvent: _handle_unknown,
}
