"""Account routes: /v1/me, workspaces, members, WhatsApp connection, audit log (SPEC section 3).
Agents list members (reduced view) and read the WhatsApp connection; changing either, and the audit
log, is admin+; making or removing owners is checked in the service (owner only)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from relasify.data.memberships import Role
from relasify.schemas.identity import (
    AuditOut,
    AuditPage,
    MemberAdd,
    MemberDirectory,
    MemberList,
    MemberOut,
    MemberPatch,
    UserOut,
    WhatsAppConnect,
    WhatsAppOut,
    WhatsAppSettings,
    WorkspaceCreate,
    WorkspaceList,
    WorkspaceOut,
)
from relasify.services import workspaces
from relasify.services.delivery import send_rate
from relasify.web.auth import api_route, current_actor, current_membership, workspace_route

router = APIGatewayHttpRouter()

UserId = Annotated[str, Path(min_length=1, max_length=128)]
# A member's user id, or a pending invitation's e-mail (the invited have no user id yet).
MemberRef = Annotated[
    str, Path(min_length=1, max_length=254, description="A member's user id, or the e-mail of a pending invitation.")
]


@api_route(router, "GET", "/v1/me", tags=["account"])
def get_me() -> UserOut:
    user = workspaces.me(current_actor(router))
    return UserOut(id=user.sub, email=user.email, name=user.name, picture=user.picture, created_at=user.created_at)


@api_route(router, "POST", "/v1/workspaces", success=201, statuses=(409,), tags=["workspaces"])
def create_workspace(body: WorkspaceCreate) -> Response[WorkspaceOut]:
    workspace, membership = workspaces.create_workspace(current_actor(router), body.name)
    out = WorkspaceOut(
        id=workspace.id,
        name=workspace.name,
        status=workspace.status,
        role=membership.role,
        created_at=workspace.created_at,
    )
    return Response(status_code=201, content_type="application/json", body=out.model_dump(mode="json"))


@api_route(router, "GET", "/v1/workspaces", tags=["workspaces"])
def list_workspaces() -> WorkspaceList:
    items = [
        WorkspaceOut(id=w.id, name=w.name, status=w.status, role=role, created_at=w.created_at)
        for w, role in workspaces.list_workspaces(current_actor(router))
    ]
    return WorkspaceList(items=items)


@workspace_route(router, "GET", "/v1/workspaces/<ws>", Role.AGENT, tags=["workspaces"])
def get_workspace(ws: str) -> WorkspaceOut:
    workspace = workspaces.get_workspace(ws)
    role = current_membership(router).role.label
    return WorkspaceOut(
        id=workspace.id, name=workspace.name, status=workspace.status, role=role, created_at=workspace.created_at
    )


@workspace_route(
    router,
    "GET",
    "/v1/workspaces/<ws>/members",
    Role.AGENT,
    tags=["members"],
    description="Admins and owners: every member and pending invitation, with e-mails. Agents: the active "
    "members' `user_id`, `name` and `role` only (for assigning conversations).",
)
def list_members(ws: str) -> MemberList | MemberDirectory:
    if current_membership(router).role < Role.ADMIN:
        return MemberDirectory(items=workspaces.member_directory(ws))
    return MemberList(items=workspaces.list_members(ws))


@workspace_route(
    router, "POST", "/v1/workspaces/<ws>/members", Role.ADMIN, success=201, statuses=(409,), tags=["members"]
)
def add_member(ws: str, body: MemberAdd) -> Response[MemberOut]:
    member = workspaces.add_member(current_membership(router), str(body.email), body.role)
    return Response(status_code=201, content_type="application/json", body=member.model_dump(mode="json"))


@workspace_route(router, "PATCH", "/v1/workspaces/<ws>/members/<user>", Role.ADMIN, statuses=(409,), tags=["members"])
def change_member_role(ws: str, user: UserId, body: MemberPatch) -> MemberOut:
    return workspaces.change_role(current_membership(router), user, body.role)


@workspace_route(
    router, "DELETE", "/v1/workspaces/<ws>/members/<user>", Role.ADMIN, success=204, statuses=(409,), tags=["members"]
)
def remove_member(ws: str, user: MemberRef) -> Response[None]:
    workspaces.remove_member_or_invitation(current_membership(router), user)
    return Response(status_code=204)


def _whatsapp_out(ws: str) -> WhatsAppOut:
    c = workspaces.get_whatsapp(ws)
    return WhatsAppOut(
        waba_id=c.waba_id,
        phone_number_id=c.phone_number_id,
        display_phone_number=c.display_phone_number,
        token_status=c.token_status,
        quality_rating=c.quality_rating,
        messaging_limit=c.messaging_limit,
        restrictions=c.restrictions,
        account_status=c.account_status,
        throughput_per_second=send_rate(c),
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


# 409: the number is connected to another workspace; 503: Graph did not answer the ownership check.
@workspace_route(router, "PUT", "/v1/workspaces/<ws>/whatsapp", Role.ADMIN, statuses=(409, 503), tags=["whatsapp"])
def connect_whatsapp(ws: str, body: WhatsAppConnect) -> WhatsAppOut:
    workspaces.connect_whatsapp(current_membership(router), body)
    return _whatsapp_out(ws)


@workspace_route(router, "GET", "/v1/workspaces/<ws>/whatsapp", Role.AGENT, tags=["whatsapp"])
def get_whatsapp(ws: str) -> WhatsAppOut:
    return _whatsapp_out(ws)


@workspace_route(
    router,
    "PATCH",
    "/v1/workspaces/<ws>/whatsapp",
    Role.ADMIN,
    tags=["whatsapp"],
    description="Settings of the connected number: `throughput_per_second` (1-1000) caps sends of every "
    "message and broadcast of this number (default 80). Security-logged.",
)
def update_whatsapp(ws: str, body: WhatsAppSettings) -> WhatsAppOut:
    workspaces.set_send_rate(current_membership(router), body.throughput_per_second)
    return _whatsapp_out(ws)


@workspace_route(router, "DELETE", "/v1/workspaces/<ws>/whatsapp", Role.ADMIN, success=204, tags=["whatsapp"])
def disconnect_whatsapp(ws: str) -> Response[None]:
    workspaces.disconnect_whatsapp(current_membership(router))
    return Response(status_code=204)


@workspace_route(router, "GET", "/v1/workspaces/<ws>/audit", Role.ADMIN, statuses=(400,), tags=["audit"])
def list_audit(
    ws: str,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> AuditPage:
    page = workspaces.list_audit(ws, limit, cursor)
    return AuditPage(
        items=[AuditOut.model_validate(e, from_attributes=True) for e in page.items], next_cursor=page.next_cursor
    )
