"""Send requests in the Cloud API's own shapes (whatsapp.md section 5) and message views."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from relasify.schemas.common import IdStr, Input, Output

MessageType = Literal["text", "template", "image", "document", "audio", "video", "sticker", "interactive"]
MEDIA_TYPES = ("image", "document", "audio", "video", "sticker")
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]


class _Part(Input):
    """A content object inside a send request: the same rules as a request body (unknown fields, numbers)."""


class TextContent(_Part):
    body: str = Field(min_length=1, max_length=4096)
    preview_url: bool = False


class TemplateLanguage(_Part):
    code: str = Field(min_length=2, max_length=15, pattern=r"^[A-Za-z_]+$")
    policy: Literal["deterministic"] | None = None


class TemplateContent(_Part):
    name: str = Field(min_length=1, max_length=512, pattern=r"^[a-z0-9_]+$")
    language: TemplateLanguage
    # Meta's component objects (header/body/button parameters), passed through as given.
    components: list[dict[str, Any]] = Field(default_factory=list, max_length=20)


class MediaContent(_Part):
    # Meta's media id (digits), or the id of one of our uploads (POST .../media).
    id: str | None = Field(default=None, max_length=64, pattern=r"^[0-9A-Za-z_\-]+$")
    link: str | None = Field(default=None, max_length=2048, pattern=r"^https?://")
    caption: str | None = Field(default=None, max_length=1024)
    filename: str | None = Field(default=None, max_length=240)

    @model_validator(mode="after")
    def _one_source(self) -> MediaContent:
        if (self.id is None) == (self.link is None):
            raise ValueError("give exactly one of id or link")
        return self


class InteractiveText(_Part):
    text: str = Field(min_length=1, max_length=1024)


class InteractiveContent(_Part):
    type: Literal["button", "list"]
    header: dict[str, Any] | None = None
    body: InteractiveText
    footer: InteractiveText | None = None
    action: dict[str, Any]

    @model_validator(mode="after")
    def _action_shape(self) -> InteractiveContent:
        if self.type == "button":
            buttons = self.action.get("buttons")
            if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
                raise ValueError("a button message needs action.buttons with 1 to 3 reply buttons")
        else:
            sections = self.action.get("sections")
            if not isinstance(self.action.get("button"), str) or not isinstance(sections, list) or not sections:
                raise ValueError("a list message needs action.button and at least one action.sections entry")
        return self


class SendMessage(Input):
    """`{"contact_id" | "to", "type": ..., <type>: {...}}`: one content object, named by `type`."""

    contact_id: IdStr | None = None
    to: str | None = Field(default=None, min_length=3, max_length=32)
    type: MessageType
    text: TextContent | None = None
    template: TemplateContent | None = None
    image: MediaContent | None = None
    document: MediaContent | None = None
    audio: MediaContent | None = None
    video: MediaContent | None = None
    sticker: MediaContent | None = None
    interactive: InteractiveContent | None = None
    context: dict[str, str] | None = None  # {"message_id": "<wamid>"}: a reply

    @model_validator(mode="after")
    def _addressed_and_typed(self) -> SendMessage:
        if (self.contact_id is None) == (self.to is None):
            raise ValueError("give exactly one of contact_id or to")
        present = [name for name in MessageType.__args__ if getattr(self, name) is not None]  # type: ignore[attr-defined]
        if present != [self.type]:
            raise ValueError(f"a {self.type} message carries exactly one `{self.type}` object")
        return self

    def content(self) -> dict[str, Any]:
        """The type's object as the Cloud API wants it."""
        part = getattr(self, self.type)
        return part.model_dump(mode="json", exclude_none=True)


class MessageError(Output):
    code: int | None = None
    title: str | None = None
    details: str | None = None


class MessageOut(Output):
    id: str
    contact_id: str
    direction: Literal["in", "out"]
    type: str
    content: dict[str, Any] = Field(default_factory=dict)
    wamid: str | None = None
    status: str
    error: MessageError | None = None
    broadcast_id: str | None = None
    message_at: datetime | None = None
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    read_at: datetime | None = None
    failed_at: datetime | None = None
    created_at: datetime | None = None


class MessagePage(Output):
    items: list[MessageOut]
    next_cursor: str | None = None


def message_out(message: Any) -> MessageOut:
    """The API view of a stored message record (`relasify.data.messages.Message`)."""
    error = None
    if message.status == "failed" or message.error_code is not None:
        error = MessageError(code=message.error_code, title=message.error_title, details=message.error_details)
    return MessageOut(
        id=message.id,
        contact_id=message.contact_id,
        direction=message.direction,
        type=message.type,
        content=message.content,
        wamid=message.wamid,
        status=message.status,
        error=error,
        broadcast_id=message.broadcast_id,
        message_at=message.message_at,
        sent_at=message.sent_at,
        delivered_at=message.delivered_at,
        read_at=message.read_at,
        failed_at=message.failed_at,
        created_at=message.created_at,
    )
