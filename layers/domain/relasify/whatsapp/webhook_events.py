"""A WhatsApp webhook POST body flattened into typed events (its models: `relasify.whatsapp.webhook_models`).

`flatten_payload` turns one body into one event per inbound message, status, template update, user
preference, phone/account update and unknown field, each carrying the routing keys (WABA id, phone
number id, display phone number) the processor needs to find the workspace. A `messages` change with
statuses only is validated as `StatusesValue`, so the inbound message models are not built for it.
"""

# No `from __future__ import annotations`: pydantic would compile and evaluate every field's
# annotation string at class creation; real annotations skip that (cold start, bench cold_start).

from typing import Any, Literal

from relasify.whatsapp.webhook_models import (
    AccountUpdate,
    Change,
    Entry,
    InboundMessage,
    MessageStatus,
    MessagesValue,
    Metadata,
    PhoneNumberQualityUpdate,
    StatusesValue,
    TemplateCategoryUpdate,
    TemplateComponentsUpdate,
    TemplateQualityUpdate,
    TemplateStatusUpdate,
    UserPreference,
    UserPreferencesValue,
    WebhookContact,
    WebhookError,
    WebhookModel,
    WebhookPayload,
)

# --- flattened events ---------------------------------------------------------------------------


class Routing(WebhookModel):
    """Where an event belongs: by phone number id when given, else by WABA id (+ display number)."""

    waba_id: str
    phone_number_id: str | None = None
    display_phone_number: str | None = None


class WebhookEvent(WebhookModel):
    routing: Routing
    field: str
    entry_time: int | None = None


class InboundMessageEvent(WebhookEvent):
    kind: Literal["inbound_message"] = "inbound_message"
    message: InboundMessage
    contact: WebhookContact | None = None  # the matching `value.contacts[]` item


class StatusEvent(WebhookEvent):
    kind: Literal["status"] = "status"
    status: MessageStatus


class TemplateStatusEvent(WebhookEvent):
    kind: Literal["template_status"] = "template_status"
    update: TemplateStatusUpdate


class TemplateQualityEvent(WebhookEvent):
    kind: Literal["template_quality"] = "template_quality"
    update: TemplateQualityUpdate


class TemplateCategoryEvent(WebhookEvent):
    kind: Literal["template_category"] = "template_category"
    update: TemplateCategoryUpdate


class TemplateComponentsEvent(WebhookEvent):
    kind: Literal["template_components"] = "template_components"
    update: TemplateComponentsUpdate


class UserPreferenceEvent(WebhookEvent):
    kind: Literal["user_preference"] = "user_preference"
    preference: UserPreference


class PhoneQualityEvent(WebhookEvent):
    kind: Literal["phone_quality"] = "phone_quality"
    update: PhoneNumberQualityUpdate


class AccountUpdateEvent(WebhookEvent):
    kind: Literal["account_update"] = "account_update"
    update: AccountUpdate


class MessagesErrorEvent(WebhookEvent):
    """`value.errors[]` of a `messages` change: a system-level problem reported by Meta."""

    kind: Literal["messages_error"] = "messages_error"
    error: WebhookError


class UnknownFieldEvent(WebhookEvent):
    """A field we do not handle (yet): kept raw; the full payload is also stored in S3."""

    kind: Literal["unknown_field"] = "unknown_field"
    value: dict[str, Any]


AnyWebhookEvent = (
    InboundMessageEvent
    | StatusEvent
    | TemplateStatusEvent
    | TemplateQualityEvent
    | TemplateCategoryEvent
    | TemplateComponentsEvent
    | UserPreferenceEvent
    | PhoneQualityEvent
    | AccountUpdateEvent
    | MessagesErrorEvent
    | UnknownFieldEvent
)

_TEMPLATE_FIELDS: dict[str, tuple[type[WebhookModel], type[WebhookEvent]]] = {
    "message_template_status_update": (TemplateStatusUpdate, TemplateStatusEvent),
    "message_template_quality_update": (TemplateQualityUpdate, TemplateQualityEvent),
    "template_category_update": (TemplateCategoryUpdate, TemplateCategoryEvent),
    "message_template_components_update": (TemplateComponentsUpdate, TemplateComponentsEvent),
}


def parse_payload(raw: bytes | str | dict[str, Any]) -> WebhookPayload:
    if isinstance(raw, dict):
        return WebhookPayload.model_validate(raw)
    return WebhookPayload.model_validate_json(raw)


def _contact_for(message: InboundMessage, contacts: list[WebhookContact]) -> WebhookContact | None:
    for contact in contacts:
        if (message.from_ and contact.wa_id == message.from_) or (
            message.from_user_id and contact.user_id == message.from_user_id
        ):
            return contact
    return contacts[0] if len(contacts) == 1 else None


def _change_events(entry: Entry, change: Change) -> list[AnyWebhookEvent]:
    base: dict[str, Any] = {"field": change.field, "entry_time": entry.time}
    value = change.value
    metadata = Metadata.model_validate(value.get("metadata") or {})
    routing = Routing(
        waba_id=entry.id,
        phone_number_id=metadata.phone_number_id,
        display_phone_number=metadata.display_phone_number or value.get("display_phone_number"),
    )
    base["routing"] = routing

    if change.field == "messages":
        events: list[AnyWebhookEvent] = []
        parsed: MessagesValue | StatusesValue
        if "messages" in value or "contacts" in value:
            parsed = MessagesValue.model_validate(value)
            events += [
                InboundMessageEvent(**base, message=m, contact=_contact_for(m, parsed.contacts))
                for m in parsed.messages
            ]
        else:
            parsed = StatusesValue.model_validate(value)
        events += [StatusEvent(**base, status=s) for s in parsed.statuses]
        events += [MessagesErrorEvent(**base, error=e) for e in parsed.errors]
        return events
    if change.field in _TEMPLATE_FIELDS:
        model, event_type = _TEMPLATE_FIELDS[change.field]
        return [event_type(**base, update=model.model_validate(value))]
    if change.field == "user_preferences":
        prefs = UserPreferencesValue.model_validate(value)
        return [UserPreferenceEvent(**base, preference=p) for p in prefs.user_preferences]
    if change.field == "phone_number_quality_update":
        return [PhoneQualityEvent(**base, update=PhoneNumberQualityUpdate.model_validate(value))]
    if change.field == "account_update":
        return [AccountUpdateEvent(**base, update=AccountUpdate.model_validate(value))]
    return [UnknownFieldEvent(**base, value=value)]


def flatten_payload(payload: WebhookPayload) -> list[AnyWebhookEvent]:
    """Every entry, change, message and status of a (possibly batched) webhook, in payload order."""
    return [event for entry in payload.entry for change in entry.changes for event in _change_events(entry, change)]
