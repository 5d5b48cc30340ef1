"""API key routes (SPEC section 5c): admins create, list and revoke their workspace's keys."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from relasify.data.memberships import Role
from relasify.schemas.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyOut
from relasify.services import api_keys
from relasify.web.auth import current_membership, workspace_route

router = APIGatewayHttpRouter()
KeyId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
TAGS = ["api keys"]


@workspace_route(
    router,
    "POST",
    "/v1/workspaces/<ws>/api-keys",
    Role.ADMIN,
    success=201,
    statuses=(409,),
    tags=TAGS,
    description="A new key acting with `role` in this workspace. `key` is shown in this answer only; "
    "send it as `Authorization: Bearer rk_...` on this workspace's routes.",
)
def create_api_key(ws: str, body: ApiKeyCreate) -> Response[ApiKeyCreated]:
    record, key = api_keys.create(current_membership(router), body)
    out = ApiKeyCreated(id=record.id, name=record.name, role=body.role, key=key, created_at=record.created_at)
    return Response(status_code=201, content_type="application/json", body=out.model_dump(mode="json"))


@workspace_route(
    router,
    "GET",
    "/v1/workspaces/<ws>/api-keys",
    Role.ADMIN,
    tags=TAGS,
    description="The workspace's keys, oldest first, without their secrets. `last_used_at` is updated at "
    "most once a minute per key.",
)
def list_api_keys(ws: str) -> ApiKeyList:
    return ApiKeyList(items=[ApiKeyOut.model_validate(k, from_attributes=True) for k in api_keys.list_keys(ws)])


@workspace_route(router, "DELETE", "/v1/workspaces/<ws>/api-keys/<key_id>", Role.ADMIN, success=204, tags=TAGS)
def revoke_api_key(ws: str, key_id: KeyId) -> Response[None]:
    api_keys.revoke(current_membership(router), key_id)
    return Response(status_code=204)
