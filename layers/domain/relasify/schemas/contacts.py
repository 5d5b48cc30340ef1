"""Contacts API shapes with their documented bounds (SPEC sections 4 and 10).

The bounds are constants so the import worker applies exactly the same rules to CSV rows.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, EmailStr, Field, StringConstraints

from relasify.schemas.common import Input, Output

MAX_TAGS = 20
MAX_TAG_LENGTH = 50
TAG_PATTERN = r"^[\w][\w .:/&+-]{0,49}$"  # letters/digits (any script) first; no ; | , (CSV separators)
MAX_ATTRIBUTES = 50
ATTRIBUTE_KEY_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
MAX_ATTRIBUTE_STRING = 500
MAX_NAME = 200
MAX_EMAIL = 254
MAX_PHONE_INPUT = 64
MAX_CONSENT_SOURCE = 40
CONSENT_SOURCE_PATTERN = r"^[a-z][a-z0-9_]{1,39}$"
MAX_NOTE = 500
MAX_FILENAME = 200
MAX_PAGE = 100

_TAG_RE = re.compile(TAG_PATTERN)
_KEY_RE = re.compile(ATTRIBUTE_KEY_PATTERN)

AttributeValue = Annotated[str, StringConstraints(max_length=MAX_ATTRIBUTE_STRING)] | int | float | bool


def check_tags(tags: list[str]) -> list[str]:
    """Tags are kept as given (trimmed), without duplicates, in order."""
    for tag in tags:
        if not _TAG_RE.match(tag):
            raise ValueError(f"a tag is 1-{MAX_TAG_LENGTH} characters: letters, digits, space and . : / & + - _")
    unique = list(dict.fromkeys(tags))
    if len(unique) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return unique


def check_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    if len(attributes) > MAX_ATTRIBUTES:
        raise ValueError(f"at most {MAX_ATTRIBUTES} attributes")
    for key in attributes:
        if not _KEY_RE.match(key):
            raise ValueError(f"attribute keys match {ATTRIBUTE_KEY_PATTERN}")
    return attributes


Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TAG_LENGTH)]
Tags = Annotated[
    list[Tag],
    Field(
        max_length=MAX_TAGS * 2,  # duplicates are dropped, so the real bound is checked after
        description=f"At most {MAX_TAGS} tags, each 1-{MAX_TAG_LENGTH} characters matching {TAG_PATTERN}.",
    ),
    AfterValidator(check_tags),
]
Attributes = Annotated[
    dict[str, AttributeValue],
    Field(
        description=(
            f"At most {MAX_ATTRIBUTES} keys matching {ATTRIBUTE_KEY_PATTERN}; values are strings "
            f"(at most {MAX_ATTRIBUTE_STRING} characters), numbers (finite, at most 38 significant digits, "
            "magnitude 1E-130 to 9.99E+125) or booleans."
        )
    ),
    AfterValidator(check_attributes),
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME)]
Email = Annotated[EmailStr, Field(max_length=MAX_EMAIL)]
PhoneInput = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_PHONE_INPUT),
    Field(description="Any common format: 0812-3456-7890, +62 812 3456 7890, 6281234567890, wa.me links."),
]
UserIdInput = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
ConsentSource = Annotated[
    str,
    StringConstraints(min_length=2, max_length=MAX_CONSENT_SOURCE, pattern=CONSENT_SOURCE_PATTERN),
    Field(description="Where the consent was given: form, import, inbound_message, api, event, ..."),
]


class ConsentIn(Input):
    """Opt-in needs a source; the time defaults to now and may not lie in the future."""

    status: Literal["opted_in", "opted_out"]
    source: ConsentSource | None = None
    at: datetime | None = None
    note: Annotated[str, StringConstraints(max_length=MAX_NOTE)] | None = None


class ContactCreate(Input):
    """A phone, or Meta's business-scoped `user_id` when no phone is known."""

    phone: PhoneInput | None = None
    user_id: UserIdInput | None = None
    name: Name | None = None
    email: Email | None = None
    tags: Tags = Field(default_factory=list)
    attributes: Attributes = Field(default_factory=dict)
    consent: ConsentIn | None = None


class ContactPatch(Input):
    """Only the fields present change; `null` clears name, email or phone."""

    phone: PhoneInput | None = None
    name: Name | None = None
    email: Email | None = None
    tags: Tags | None = None
    attributes: Attributes | None = None


class ConsentEventOut(Output):
    status: str
    source: str | None = None
    at: datetime
    actor_id: str | None = None
    note: str | None = None


class ConsentOut(Output):
    status: Literal["opted_in", "opted_out", "unknown"] = "unknown"
    source: str | None = None
    at: datetime | None = None
    history: list[ConsentEventOut] = Field(default_factory=list, description="Append-only, oldest first.")


class ContactOut(Output):
    id: str
    phone: str | None = None
    wa_id: str | None = None
    user_id: str | None = None
    name: str | None = None
    email: str | None = None
    tags: list[str] = Field(default_factory=list)
    attributes: dict[str, str | int | float | bool] = Field(default_factory=dict)
    consent: ConsentOut = Field(default_factory=ConsentOut)
    restricted: bool = False
    unreachable: bool = Field(
        default=False,
        description="WhatsApp reported the number unreachable (error 131026): sends are refused until the "
        "contact writes to us or its phone changes.",
    )
    last_inbound_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class ContactPage(Output):
    items: list[ContactOut]
    next_cursor: str | None = None


class ImportCreate(Input):
    """A large file: ask for an upload URL, PUT the CSV there, then POST `.../imports/{id}/start`."""

    filename: Annotated[str, StringConstraints(min_length=1, max_length=MAX_FILENAME)]


class RowError(Output):
    row: int = Field(description="Record number in the file; the header is row 1.")
    column: str | None = None
    reason: str


class ImportOut(Output):
    id: str
    status: Literal["awaiting_upload", "queued", "running", "completed", "failed"]
    total: int | None = Field(default=None, description="Data rows in the file, once counted.")
    processed: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[RowError] = Field(default_factory=list, description="The first 1000 row errors.")
    errors_truncated: bool = False
    upload_url: str | None = Field(default=None, description="Presigned PUT URL (large files), short-lived.")
    upload_expires_at: datetime | None = None
    failure_reason: str | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None


class ExportOut(Output):
    id: str
    format: Literal["csv", "json"]
    status: Literal["queued", "running", "completed", "failed"]
    count: int = Field(description="Contacts in the file (0 until completed).")
    url: str | None = Field(default=None, description="Presigned GET URL of the file once completed, short-lived.")
    expires_at: datetime | None = Field(default=None, description="When `url` stops working.")
    created_at: datetime | None = None
    finished_at: datetime | None = None
    failure_reason: str | None = None
