"""API keys (SPEC section 5c): request bodies and views. The secret appears in `ApiKeyCreated` only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from relasify.schemas.common import Input, Output

# A key acts as an agent or an admin of its workspace; never as an owner.
ApiKeyRole = Literal["agent", "admin"]
ApiKeyName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class ApiKeyCreate(Input):
    name: ApiKeyName
    role: ApiKeyRole


class ApiKeyOut(Output):
    id: str
    name: str
    role: ApiKeyRole
    created_by: str | None = None
    created_at: datetime | None = None
    last_used_at: datetime | None = None


class ApiKeyCreated(Output):
    id: str
    name: str
    role: ApiKeyRole
    key: str = Field(description="The key (`rk_...`), shown only in this answer; store it now.")
    created_at: datetime | None = None


class ApiKeyList(Output):
    items: list[ApiKeyOut] = Field(default_factory=list)
