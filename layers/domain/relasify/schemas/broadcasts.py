"""Broadcast requests and views."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from relasify.schemas.common import IdStr, Input, Output

Tag = Annotated[str, StringConstraints(min_length=1, max_length=64)]
MAX_AUDIENCE_IDS = 10_000


class Audience(Input):
    tags: list[Tag] | None = Field(default=None, max_length=20)
    contact_ids: list[IdStr] | None = Field(default=None, max_length=MAX_AUDIENCE_IDS)

    @model_validator(mode="after")
    def _one_kind(self) -> Audience:
        if bool(self.tags) == bool(self.contact_ids):
            raise ValueError("give exactly one of tags or contact_ids (non-empty)")
        return self


class FieldParameter(Input):
    """A body parameter taken from a contact field."""

    field: Literal["name", "phone", "email"]
    default: str | None = Field(default=None, max_length=1024)


class AttributeParameter(Input):
    """A body parameter taken from a contact's custom attribute."""

    attribute: str = Field(min_length=1, max_length=64)
    default: str | None = Field(default=None, max_length=1024)


class TextParameter(Input):
    """A literal body parameter, the same for everyone."""

    text: str = Field(min_length=1, max_length=1024)


Parameter = FieldParameter | AttributeParameter | TextParameter


class MediaHeader(Input):
    """The media of a template whose header is an image, video or document: the same for everyone,
    by link or by an uploaded media id."""

    type: Literal["image", "video", "document"]
    id: str | None = Field(default=None, max_length=64, pattern=r"^[0-9A-Za-z_\-]+$")
    link: str | None = Field(default=None, max_length=2048, pattern=r"^https?://")
    filename: str | None = Field(default=None, max_length=240)

    @model_validator(mode="after")
    def _one_source(self) -> MediaHeader:
        if (self.id is None) == (self.link is None):
            raise ValueError("give exactly one of id or link")
        if self.filename is not None and self.type != "document":
            raise ValueError("filename applies to a document header only")
        return self


# A text header's one parameter comes from the contact like a body parameter; a media header names its media.
HeaderParameter = MediaHeader | FieldParameter | AttributeParameter | TextParameter


class BroadcastCreate(Input):
    template: str = Field(min_length=1, max_length=512, pattern=r"^[a-z0-9_]+$")
    language: str = Field(min_length=2, max_length=15, pattern=r"^[A-Za-z_]+$")
    audience: Audience
    parameters: list[Parameter] = Field(default_factory=list, max_length=20)
    header: HeaderParameter | None = Field(
        default=None, description="The header's parameter, when the template's header has one (text or media)."
    )
    scheduled_at: datetime | None = Field(
        default=None,
        description="When to start, with a UTC offset; within 90 days (up to 5 minutes in the past is sent now).",
    )

    @field_validator("scheduled_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("scheduled_at needs a timezone offset (e.g. 2026-01-31T09:00:00+07:00)")
        return value


class CountsOut(Output):
    queued: int = 0
    sent: int = 0
    delivered: int = 0
    read: int = 0
    failed: int = 0
    skipped: int = 0
    skipped_reasons: dict[str, int] = Field(default_factory=dict)


class BroadcastOut(Output):
    id: str
    status: str
    template: str
    language: str
    audience: dict[str, Any]
    parameters: list[dict[str, Any]] = Field(default_factory=list)
    header: dict[str, Any] | None = None
    scheduled_at: datetime | None = None
    total: int | None = None  # None in listings: counts are read per broadcast (GET .../broadcasts/{id})
    counts: CountsOut | None = None
    created_by: str | None = None
    created_at: datetime | None = None
    cancelled_at: datetime | None = None
    completed_at: datetime | None = None


class BroadcastList(Output):
    items: list[BroadcastOut]
    next_cursor: str | None = None
