"""Media uploads and links (SPEC section 5a)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from relasify.schemas.common import Input, Output

MAX_UPLOAD_BYTES = 100 * 1000 * 1000  # the largest type (documents); each type has its own limit
# A file name is shown to the customer (documents): printable, no path separators.
Filename = Annotated[str, StringConstraints(min_length=1, max_length=240, pattern=r"^[^/\\\x00-\x1f\x7f]+$")]


class MediaUploadCreate(Input):
    mime_type: str = Field(min_length=3, max_length=127, pattern=r"^[A-Za-z0-9.+-]+/[A-Za-z0-9.+-]+$")
    size: int = Field(ge=1, le=MAX_UPLOAD_BYTES, description="exact size in bytes; the upload must match it")
    filename: Filename | None = None


class PresignedPost(Output):
    url: str
    fields: dict[str, str]


class MediaUploadOut(Output):
    id: str
    type: str = Field(description="the message type to send it as: image, audio, video, document or sticker")
    mime_type: str
    size: int
    filename: str | None = None
    upload: PresignedPost
    upload_expires_at: datetime


class MediaLinkOut(Output):
    url: str
    mime_type: str
    size: int
    expires_at: datetime
