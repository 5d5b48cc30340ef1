"""Data-subject rights routes (SPEC section 8): contact export, restriction, erasure; workspace close;
the caller's own export and deletion. Roles (SPEC section 3): export, erase and restrict/unrestrict are
admin+ (they disclose, destroy or freeze a person's whole record), close owner (docs/PRIVACY.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict, Field
from relasify.data.memberships import Role
from relasify.services import rights
from relasify.web.auth import api_route, current_actor, current_membership, workspace_route

router = APIGatewayHttpRouter()

ContactId = Annotated[str, Path(min_length=1, max_length=128)]


class _Out(BaseModel):
    model_config = ConfigDict(defer_build=True)  # validators built on first use, not at import (cold start)


class RestrictionOut(_Out):
    id: str
    restricted: bool
    updated_at: datetime | None = None


class ErasureOut(_Out):
    id: str
    erased: bool = True
    messages: int
    media_objects: int
    broadcast_recipients: int
    bulk_files: int = Field(
        description="Export files and finished imports' CSV files deleted (copies that may hold the person)."
    )


class WorkspaceClosedOut(_Out):
    id: str
    status: str
    closed_at: datetime | None = None
    data_deleted_after: datetime


@workspace_route(router, "GET", "/v1/workspaces/<ws>/contacts/<contact_id>/export", Role.ADMIN, tags=["privacy"])
def export_contact(ws: str, contact_id: ContactId) -> dict[str, Any]:
    return rights.export_contact(current_membership(router), contact_id)


@workspace_route(router, "POST", "/v1/workspaces/<ws>/contacts/<contact_id>/restrict", Role.ADMIN, tags=["privacy"])
def restrict_contact(ws: str, contact_id: ContactId) -> RestrictionOut:
    contact = rights.set_restricted(current_membership(router), contact_id, True)
    return RestrictionOut(id=contact.id, restricted=contact.restricted, updated_at=contact.updated_at)


@workspace_route(router, "POST", "/v1/workspaces/<ws>/contacts/<contact_id>/unrestrict", Role.ADMIN, tags=["privacy"])
def unrestrict_contact(ws: str, contact_id: ContactId) -> RestrictionOut:
    contact = rights.set_restricted(current_membership(router), contact_id, False)
    return RestrictionOut(id=contact.id, restricted=contact.restricted, updated_at=contact.updated_at)


@workspace_route(router, "POST", "/v1/workspaces/<ws>/contacts/<contact_id>/erase", Role.ADMIN, tags=["privacy"])
def erase_contact(ws: str, contact_id: ContactId) -> ErasureOut:
    counts = rights.erase_contact(current_membership(router), contact_id)
    return ErasureOut(id=contact_id, **counts)


@workspace_route(router, "POST", "/v1/workspaces/<ws>/close", Role.OWNER, tags=["workspaces"])
def close_workspace(ws: str) -> WorkspaceClosedOut:
    workspace, delete_after = rights.close_workspace(current_membership(router))
    return WorkspaceClosedOut(
        id=workspace.id, status=workspace.status, closed_at=workspace.closed_at, data_deleted_after=delete_after
    )


@api_route(router, "GET", "/v1/me/export", tags=["account"])
def export_me() -> dict[str, Any]:
    return rights.export_me(current_actor(router))


# 409: the caller is the last owner of a workspace that has other members.
@api_route(router, "DELETE", "/v1/me", success=204, statuses=(409,), tags=["account"])
def delete_me() -> Response[None]:
    rights.delete_me(current_actor(router))
    return Response(status_code=204)
