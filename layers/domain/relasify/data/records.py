"""What repositories return: plain pydantic records, free of pynamodb and boto3 types.

Services and handlers work with these; only `relasify.data` sees the table models.
"""

# No `from __future__ import annotations`: pydantic would compile and evaluate every field's
# annotation string at class creation; real annotations skip that (cold start, bench cold_start).

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

RoleName = Literal["owner", "admin", "agent"]
ConsentStatus = Literal["opted_in", "opted_out", "unknown"]
AttributeValue = str | int | float | bool


class Record(BaseModel):
    # defer_build: each record's validator is built on first use, not at import (cold start).
    model_config = ConfigDict(frozen=True, defer_build=True)


class Page(Record, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


# --- identity --------------------------------------------------------------------------------


class User(Record):
    sub: str
    email: str
    name: str | None = None
    picture: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Workspace(Record):
    id: str
    name: str
    status: Literal["active", "closed"] = "active"
    closed_at: datetime | None = None
    created_by: str | None = None
    owner_count: int = 0
    expires_at: int | None = None  # set at closure (account retention)
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Membership(Record):
    ws: str
    sub: str
    role: RoleName
    email: str | None = None
    name: str | None = None
    workspace_name: str | None = None
    added_by: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Invitation(Record):
    ws: str
    email: str
    role: RoleName
    invited_by: str | None = None
    workspace_name: str | None = None
    created_at: datetime | None = None


class WhatsAppConnection(Record):
    """The stored connection. `encrypted_access_token` is KMS ciphertext (base64); never return it
    from an API and never log it."""

    ws: str
    waba_id: str
    phone_number_id: str
    display_phone_number: str | None = None
    encrypted_access_token: str = Field(repr=False)
    token_status: str = "valid"  # noqa: S105 - a status, not a secret
    quality_rating: str | None = None
    messaging_limit: str | None = None
    restrictions: list[Any] = Field(default_factory=list)
    account_status: str | None = None
    throughput_per_second: float | None = None
    connected_by: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class PhoneRoute(Record):
    phone_number_id: str
    ws: str
    waba_id: str
    display_phone_number: str | None = None


class AuditEntry(Record):
    """A security/audit log entry: ids and non-personal facts only."""

    id: str
    ws: str | None = None
    action: str
    actor_id: str | None = None
    target_ids: list[str] = Field(default_factory=list)
    request_id: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    at: datetime  # for a counted entry: the start of its minute
    occurrences: int = 1  # a counted entry: how often the event happened in that minute


class UsageEntry(Record):
    request_id: str
    ws: str | None = None
    route: str
    method: str
    status_code: int
    latency_ms: float
    actor_id: str | None = None
    at: datetime


# --- contacts --------------------------------------------------------------------------------


class ConsentEvent(Record):
    status: ConsentStatus
    source: str | None = None
    at: datetime
    actor_id: str | None = None
    note: str | None = None


class Consent(Record):
    status: ConsentStatus = "unknown"
    source: str | None = None
    at: datetime | None = None
    history: list[ConsentEvent] = Field(default_factory=list)


class Contact(Record):
    id: str
    ws: str
    phone: str | None = None
    wa_id: str | None = None
    user_id: str | None = None
    name: str | None = None
    email: str | None = None
    tags: list[str] = Field(default_factory=list)
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)
    consent: Consent = Field(default_factory=Consent)
    restricted: bool = False
    last_inbound_at: datetime | None = None
    unreachable: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None


class NewContact(Record):
    """Input of `ContactRepository.create`; the phone is already E.164 (services normalise)."""

    phone: str | None = None
    wa_id: str | None = None
    user_id: str | None = None
    name: str | None = None
    email: str | None = None
    tags: list[str] = Field(default_factory=list)
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)
    consent: ConsentEvent | None = None  # initial consent, recorded as the first history event


class ContactChanges(Record):
    """Input of `ContactRepository.update`: only the fields present in `model_fields_set` change;
    an explicit None clears a field."""

    phone: str | None = None
    wa_id: str | None = None
    user_id: str | None = None
    name: str | None = None
    email: str | None = None
    tags: list[str] | None = None
    attributes: dict[str, AttributeValue] | None = None
