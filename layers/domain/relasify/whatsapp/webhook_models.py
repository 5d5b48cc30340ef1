"""Pydantic models of the WhatsApp Cloud API webhook payload, as Meta sends it (its flattening into
typed events: `relasify.whatsapp.webhook_events`).

Every model tolerates unknown keys (`extra="allow"`): Meta adds fields without notice and a
webhook must never fail on them. Fields whose shape we do not model are kept raw.
"""

# No `from __future__ import annotations`: pydantic would compile and evaluate every field's
# annotation string at class creation; real annotations skip that (cold start, bench cold_start).

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class WebhookModel(BaseModel):
    # defer_build: a model's validator is built on first use, so a container that only ever sees
    # statuses never pays for the inbound/template/account models (cold start).
    model_config = ConfigDict(
        extra="allow", populate_by_name=True, frozen=True, coerce_numbers_to_str=True, defer_build=True
    )


def epoch_to_datetime(value: str | int | None) -> datetime | None:
    """Meta sends unix timestamps as strings (messages, statuses) or ints (entry.time)."""
    if value is None or value == "":
        return None
    return datetime.fromtimestamp(int(value), UTC)


# --- shared parts -------------------------------------------------------------------------------


class Metadata(WebhookModel):
    display_phone_number: str | None = None
    phone_number_id: str | None = None


class Profile(WebhookModel):
    name: str | None = None
    username: str | None = None


class WebhookContact(WebhookModel):
    """`value.contacts[]`: who sent the inbound messages of this change."""

    wa_id: str | None = None
    user_id: str | None = None
    profile: Profile | None = None


class ErrorData(WebhookModel):
    details: str | None = None


class WebhookError(WebhookModel):
    code: int | None = None
    title: str | None = None
    message: str | None = None
    error_data: ErrorData | None = None
    href: str | None = None


# --- inbound messages ---------------------------------------------------------------------------


class Context(WebhookModel):
    """Reply / button-click context: the message this one refers to."""

    from_: str | None = Field(default=None, alias="from")
    id: str | None = None
    forwarded: bool | None = None
    frequently_forwarded: bool | None = None
    referred_product: dict[str, Any] | None = None


class Referral(WebhookModel):
    """Click-to-WhatsApp ad / page call-to-action that opened the chat."""

    source_url: str | None = None
    source_id: str | None = None
    source_type: str | None = None
    headline: str | None = None
    body: str | None = None
    media_type: str | None = None
    image_url: str | None = None
    video_url: str | None = None
    thumbnail_url: str | None = None
    ctwa_clid: str | None = None


class Text(WebhookModel):
    body: str = ""


class Media(WebhookModel):
    """image, video, audio, document and sticker share this shape."""

    id: str | None = None
    mime_type: str | None = None
    sha256: str | None = None
    caption: str | None = None
    filename: str | None = None  # documents
    voice: bool | None = None  # audio: a voice note
    animated: bool | None = None  # stickers
    url: str | None = None  # sometimes present; never stored (valid for minutes)


class Location(WebhookModel):
    latitude: float | None = None
    longitude: float | None = None
    name: str | None = None
    address: str | None = None
    url: str | None = None


class SharedContactName(WebhookModel):
    formatted_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class SharedContact(WebhookModel):
    """One card of a `contacts` message (vCard-like; sub-objects kept raw)."""

    name: SharedContactName | None = None
    phones: list[dict[str, Any]] = Field(default_factory=list)
    emails: list[dict[str, Any]] = Field(default_factory=list)
    addresses: list[dict[str, Any]] = Field(default_factory=list)
    org: dict[str, Any] | None = None
    urls: list[dict[str, Any]] = Field(default_factory=list)
    birthday: str | None = None


class ReplyChoice(WebhookModel):
    id: str | None = None
    title: str | None = None
    description: str | None = None


class FlowReply(WebhookModel):
    """`nfm_reply`: a WhatsApp Flow's completion; `response_json` is a JSON string."""

    name: str | None = None
    body: str | None = None
    response_json: str | None = None


class Interactive(WebhookModel):
    type: str
    button_reply: ReplyChoice | None = None
    list_reply: ReplyChoice | None = None
    nfm_reply: FlowReply | None = None


class Button(WebhookModel):
    """A template quick-reply click arrives as `type: "button"`, not as interactive."""

    payload: str | None = None
    text: str | None = None


class Reaction(WebhookModel):
    message_id: str | None = None
    emoji: str | None = None  # empty or missing: the reaction was removed


class System(WebhookModel):
    """E.g. the customer changed number (`type: user_changed_number`)."""

    body: str | None = None
    type: str | None = None
    wa_id: str | None = None
    new_wa_id: str | None = None
    identity: str | None = None
    customer: str | None = None


class OrderItem(WebhookModel):
    product_retailer_id: str | None = None
    quantity: int | str | None = None
    item_price: float | str | None = None
    currency: str | None = None


class Order(WebhookModel):
    catalog_id: str | None = None
    text: str | None = None
    product_items: list[OrderItem] = Field(default_factory=list)


class Identity(WebhookModel):
    acknowledged: bool | None = None
    created_timestamp: str | int | None = None
    hash: str | None = None


MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})


class InboundMessage(WebhookModel):
    """`value.messages[]`. `type` is kept as a plain string so new types never fail validation."""

    from_: str | None = Field(default=None, alias="from")
    from_user_id: str | None = None  # business-scoped user id, may come without a phone
    id: str
    timestamp: str | None = None
    type: str = "unknown"
    context: Context | None = None
    referral: Referral | None = None
    errors: list[WebhookError] = Field(default_factory=list)  # `unsupported` carries 131051 here

    text: Text | None = None
    image: Media | None = None
    video: Media | None = None
    audio: Media | None = None
    document: Media | None = None
    sticker: Media | None = None
    location: Location | None = None
    contacts: list[SharedContact] | None = None
    interactive: Interactive | None = None
    button: Button | None = None
    reaction: Reaction | None = None
    system: System | None = None
    order: Order | None = None
    identity: Identity | None = None
    unsupported: dict[str, Any] | None = None
    request_welcome: dict[str, Any] | None = None

    @property
    def sent_at(self) -> datetime | None:
        return epoch_to_datetime(self.timestamp)

    @property
    def media(self) -> Media | None:
        """The media part of an image/video/audio/document/sticker message, if any."""
        if self.type in MEDIA_TYPES:
            return getattr(self, self.type)
        return None

    def type_payload(self) -> dict[str, Any] | None:
        """The object named by `type` (e.g. `text`, `image`), JSON-ready, unknown keys included."""
        part = (
            getattr(self, self.type, None) if self.type in type(self).model_fields else self.model_extra.get(self.type)
        )
        if part is None:
            return None
        if isinstance(part, BaseModel):
            return part.model_dump(mode="json", by_alias=True, exclude_none=True)
        if isinstance(part, list):
            return {
                "items": [
                    p.model_dump(mode="json", by_alias=True, exclude_none=True) if isinstance(p, BaseModel) else p
                    for p in part
                ]
            }
        return part if isinstance(part, dict) else {"value": part}

    def text_for_keywords(self) -> str | None:
        """What the customer typed or tapped: text body, quick-reply text, interactive title."""
        if self.text is not None:
            return self.text.body
        if self.button is not None:
            return self.button.text
        if self.interactive is not None:
            choice = self.interactive.button_reply or self.interactive.list_reply
            return choice.title if choice else None
        return None


# --- statuses -----------------------------------------------------------------------------------


class ConversationOrigin(WebhookModel):
    type: str | None = None


class Conversation(WebhookModel):
    id: str | None = None
    expiration_timestamp: str | int | None = None
    origin: ConversationOrigin | None = None


class Pricing(WebhookModel):
    billable: bool | None = None
    pricing_model: str | None = None  # PMP (per message) or the legacy CBP
    type: str | None = None  # regular, free_customer_service, free_entry_point
    category: str | None = None  # marketing, utility, authentication, service, ...


class MessageStatus(WebhookModel):
    """`value.statuses[]`: the delivery receipt of one of our outbound messages."""

    id: str
    status: str  # sent, delivered, read, failed, played (voice), deleted, ...
    timestamp: str | None = None
    recipient_id: str | None = None
    recipient_user_id: str | None = None
    biz_opaque_callback_data: str | None = None
    conversation: Conversation | None = None
    pricing: Pricing | None = None
    errors: list[WebhookError] = Field(default_factory=list)

    @property
    def occurred_at(self) -> datetime | None:
        return epoch_to_datetime(self.timestamp)


class MessagesValue(WebhookModel):
    """`changes[].value` of the `messages` field: inbound messages and/or statuses."""

    messaging_product: str | None = None
    metadata: Metadata = Field(default_factory=Metadata)
    contacts: list[WebhookContact] = Field(default_factory=list)
    messages: list[InboundMessage] = Field(default_factory=list)
    statuses: list[MessageStatus] = Field(default_factory=list)
    errors: list[WebhookError] = Field(default_factory=list)


class StatusesValue(WebhookModel):
    """A `messages` change without `messages` or `contacts` (statuses and/or errors: most webhooks),
    parsed without building the inbound message models' validators (cold start)."""

    messaging_product: str | None = None
    metadata: Metadata = Field(default_factory=Metadata)
    statuses: list[MessageStatus] = Field(default_factory=list)
    errors: list[WebhookError] = Field(default_factory=list)


# --- template updates ---------------------------------------------------------------------------


class RejectionInfo(WebhookModel):
    reason: str | None = None
    recommendation: str | None = None


class TemplateStatusUpdate(WebhookModel):
    event: str  # APPROVED, REJECTED, PAUSED, DISABLED, PENDING_DELETION, ...
    message_template_id: int | str | None = None
    message_template_name: str | None = None
    message_template_language: str | None = None
    reason: str | None = None
    message_template_category: str | None = None
    rejection_info: RejectionInfo | None = None
    disable_info: dict[str, Any] | None = None
    other_info: dict[str, Any] | None = None


class TemplateQualityUpdate(WebhookModel):
    previous_quality_score: str | None = None
    new_quality_score: str | None = None
    message_template_id: int | str | None = None
    message_template_name: str | None = None
    message_template_language: str | None = None


class TemplateCategoryUpdate(WebhookModel):
    message_template_id: int | str | None = None
    message_template_name: str | None = None
    message_template_language: str | None = None
    previous_category: str | None = None
    new_category: str | None = None
    correct_category: str | None = None


class TemplateComponentsUpdate(WebhookModel):
    message_template_id: int | str | None = None
    message_template_name: str | None = None
    message_template_language: str | None = None
    message_template_element: str | None = None
    message_template_title: str | None = None
    message_template_footer: str | None = None
    message_template_buttons: list[dict[str, Any]] | None = None


# --- user preferences, phone and account updates -------------------------------------------------


class UserPreference(WebhookModel):
    wa_id: str | None = None
    user_id: str | None = None
    detail: str | None = None
    category: str | None = None  # marketing_messages
    value: str | None = None  # stop | resume
    timestamp: str | int | None = None

    @property
    def occurred_at(self) -> datetime | None:
        return epoch_to_datetime(self.timestamp)


class UserPreferencesValue(WebhookModel):
    messaging_product: str | None = None
    metadata: Metadata = Field(default_factory=Metadata)
    contacts: list[WebhookContact] = Field(default_factory=list)
    user_preferences: list[UserPreference] = Field(default_factory=list)


class PhoneNumberQualityUpdate(WebhookModel):
    display_phone_number: str | None = None
    event: str | None = None  # FLAGGED, UNFLAGGED, UPGRADE, DOWNGRADE, ONBOARDING, THROUGHPUT_UPGRADE
    current_limit: str | None = None
    old_limit: str | None = None
    max_daily_conversations_per_business: str | None = None


class ViolationInfo(WebhookModel):
    violation_type: str | None = None


class RestrictionInfo(WebhookModel):
    restriction_type: str | None = None
    expiration: str | int | None = None


class BanInfo(WebhookModel):
    waba_ban_state: list[str] | str | None = None
    waba_ban_date: str | None = None


class AccountUpdate(WebhookModel):
    phone_number: str | None = None
    event: str | None = None  # ACCOUNT_VIOLATION, ACCOUNT_RESTRICTION, DISABLED_UPDATE, ...
    violation_info: ViolationInfo | None = None
    restriction_info: list[RestrictionInfo] = Field(default_factory=list)
    ban_info: BanInfo | None = None
    lock_info: dict[str, Any] | None = None
    volume_tier_info: dict[str, Any] | None = None


# --- envelope -----------------------------------------------------------------------------------


class Change(WebhookModel):
    field: str
    value: dict[str, Any] = Field(default_factory=dict)  # parsed per field by `flatten_payload`


class Entry(WebhookModel):
    id: str  # WhatsApp Business Account id
    time: int | None = None
    changes: list[Change] = Field(default_factory=list)


class WebhookPayload(WebhookModel):
    object: str | None = None
    entry: list[Entry] = Field(default_factory=list)
