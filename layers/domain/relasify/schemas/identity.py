from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import EmailStr, Field, StringConstraints

from relasify.schemas.common import Input, Output

RoleName = Literal["owner", "admin", "agent"]
WorkspaceName = Annotated[str, StringConstraints(min_length=1, max_length=100)]
MetaId = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[0-9]+$")]


class WorkspaceCreate(Input):
    name: WorkspaceName


class WorkspaceOut(Output):
    id: str
    name: str
    status: Literal["active", "closed"]
    role: RoleName | None = None
    created_at: datetime | None = None
    closed_at: datetime | None = None


class WorkspaceList(Output):
    items: list[WorkspaceOut]


class UserOut(Output):
    id: str
    email: str
    name: str | None = None
    picture: str | None = None
    created_at: datetime | None = None


class MemberAdd(Input):
    email: EmailStr = Field(max_length=254)
    role: RoleName = "agent"


class MemberPatch(Input):
    role: RoleName


class MemberOut(Output):
    user_id: str | None = None
    email: str | None = None
    name: str | None = None
    role: RoleName
    status: Literal["active", "invited"] = "active"
    created_at: datetime | None = None


class MemberList(Output):
    items: list[MemberOut]


class MemberBrief(Output):
    """A member as an agent sees them: enough to assign a conversation, no e-mail."""

    user_id: str
    name: str | None = None
    role: RoleName


class MemberDirectory(Output):
    """`GET .../members` for an agent: active members only (invitations hold e-mails and no user id)."""

    items: list[MemberBrief]


class WhatsAppConnect(Input):
    waba_id: MetaId
    phone_number_id: MetaId
    display_phone_number: Annotated[str, StringConstraints(min_length=4, max_length=32)]
    # Printable ASCII without spaces, like Meta's tokens: anything else could not go in a header.
    access_token: Annotated[str, StringConstraints(min_length=10, max_length=1024, pattern=r"^[!-~]+$")] = Field(
        repr=False
    )


class WhatsAppSettings(Input):
    throughput_per_second: Annotated[int, Field(ge=1, le=1000)] = Field(
        description="Per-number send cap in messages per second, held across every concurrent sender "
        "(Meta's default throughput is 80; a number upgraded by Meta may send up to 1,000)."
    )


class WhatsAppOut(Output):
    """The connection as last reported by Meta. The access token is never part of it."""

    waba_id: str
    phone_number_id: str
    display_phone_number: str | None = None
    token_status: str
    quality_rating: str | None = None
    messaging_limit: str | None = None
    restrictions: list[Any] = Field(default_factory=list)
    account_status: str | None = None
    throughput_per_second: float = Field(description="The send cap in force: the one set, or the default (80).")
    created_at: datetime | None = None
    updated_at: datetime | None = None


class AuditOut(Output):
    id: str
    action: str
    actor_id: str | None = None
    target_ids: list[str] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)
    at: datetime  # a counted entry (e.g. refused requests): the start of its minute
    occurrences: int = Field(default=1, description="How often the event happened (counted entries: in that minute).")


class AuditPage(Output):
    items: list[AuditOut]
    next_cursor: str | None = None
