"""Outgoing webhooks (SPEC section 5c): request bodies and views. The secret appears only in the
creation answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from relasify.schemas.common import Input, Output

EventName = Literal[
    "message.created",
    "message.updated",
    "note.created",
    "conversation.updated",
    "contact.created",
    "contact.updated",
    "contact.opted_out",
]
WebhookUrl = Annotated[str, StringConstraints(min_length=8, max_length=2048)]


class WebhookCreate(Input):
    url: WebhookUrl
    events: list[EventName] = Field(min_length=1, max_length=7)

    @field_validator("events")
    @classmethod
    def _unique(cls, events: list[str]) -> list[str]:
        return list(dict.fromkeys(events))


class WebhookPatch(Input):
    enabled: bool


class WebhookOut(Output):
    id: str
    url: str
    events: list[str]
    enabled: bool
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    created_by: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class WebhookCreated(WebhookOut):
    secret: str = Field(description="Signs every delivery (X-Relasify-Signature); shown only in this answer.")


class WebhookList(Output):
    items: list[WebhookOut] = Field(default_factory=list)


class DeliveryOut(Output):
    id: str
    event_id: str
    event_type: str
    attempt: int
    outcome: Literal["delivered", "retrying", "failed", "skipped"] | str
    status_code: int | None = None
    error: str | None = None
    duration_ms: int | None = None
    next_retry_at: datetime | None = None
    created_at: datetime | None = None


class DeliveryPage(Output):
    items: list[DeliveryOut] = Field(default_factory=list)
    next_cursor: str | None = None
