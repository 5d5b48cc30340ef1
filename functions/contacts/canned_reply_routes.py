"""Canned reply routes (SPEC section 5a): agents list and search, admins create, change and delete."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from relasify.data.canned_replies import MAX_PAGE, CannedReply
from relasify.data.memberships import Role
from relasify.schemas.canned_replies import CannedReplyCreate, CannedReplyOut, CannedReplyPage, CannedReplyPatch
from relasify.services import canned_replies
from relasify.web.auth import current_membership, workspace_route

router = APIGatewayHttpRouter()
ReplyId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
TAGS = ["canned replies"]


def _out(reply: CannedReply) -> CannedReplyOut:
    return CannedReplyOut.model_validate(reply, from_attributes=True)


@workspace_route(
    router,
    "GET",
    "/v1/workspaces/<ws>/canned-replies",
    Role.AGENT,
    statuses=(400,),
    tags=TAGS,
    description="Canned replies in shortcut order; `q` keeps those whose shortcut starts with it.",
)
def list_canned_replies(
    ws: str,
    q: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> CannedReplyPage:
    page = canned_replies.search(ws, q, limit=limit, cursor=cursor)
    return CannedReplyPage(items=[_out(r) for r in page.items], next_cursor=page.next_cursor)


@workspace_route(
    router,
    "POST",
    "/v1/workspaces/<ws>/canned-replies",
    Role.ADMIN,
    success=201,
    statuses=(409,),
    tags=TAGS,
    description="Create a canned reply (201). The shortcut ([a-z0-9_-], 1-32) is unique in the workspace: "
    "a taken one is 409 `duplicate-shortcut` with `existing_id`.",
)
def create_canned_reply(ws: str, body: CannedReplyCreate) -> Response[CannedReplyOut]:
    reply = canned_replies.create(current_membership(router), body)
    return Response(status_code=201, content_type="application/json", body=_out(reply).model_dump(mode="json"))


@workspace_route(router, "GET", "/v1/workspaces/<ws>/canned-replies/<reply_id>", Role.AGENT, tags=TAGS)
def get_canned_reply(ws: str, reply_id: ReplyId) -> CannedReplyOut:
    return _out(canned_replies.get(ws, reply_id))


@workspace_route(
    router, "PATCH", "/v1/workspaces/<ws>/canned-replies/<reply_id>", Role.ADMIN, statuses=(409,), tags=TAGS
)
def update_canned_reply(ws: str, reply_id: ReplyId, body: CannedReplyPatch) -> CannedReplyOut:
    return _out(canned_replies.update(current_membership(router), reply_id, body))


@workspace_route(router, "DELETE", "/v1/workspaces/<ws>/canned-replies/<reply_id>", Role.ADMIN, success=204, tags=TAGS)
def delete_canned_reply(ws: str, reply_id: ReplyId) -> Response[None]:
    canned_replies.delete(current_membership(router), reply_id)
    return Response(status_code=204)
