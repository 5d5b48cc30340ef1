"""Canned replies (SPEC section 5a): request bodies and views."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from relasify.schemas.common import Input, Output

SHORTCUT_PATTERN = r"^[a-z0-9_-]{1,32}$"
Shortcut = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=SHORTCUT_PATTERN)]
# WhatsApp's text body limit: a canned reply is inserted into a text message.
ReplyBody = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class CannedReplyCreate(Input):
    shortcut: Shortcut
    body: ReplyBody


class CannedReplyPatch(Input):
    shortcut: Shortcut | None = None
    body: ReplyBody | None = None

    @model_validator(mode="after")
    def _something(self) -> CannedReplyPatch:
        if self.shortcut is None and self.body is None:
            raise ValueError("give shortcut and/or body")
        return self


class CannedReplyOut(Output):
    id: str
    shortcut: str
    body: str
    created_by: str | None = None
    updated_by: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class CannedReplyPage(Output):
    items: list[CannedReplyOut] = Field(default_factory=list)
    next_cursor: str | None = None
