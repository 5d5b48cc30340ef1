"""A contact's conversation (inbound and outbound, newest first, paginated): served by the account
API because its path lives under /contacts (SPEC section 5)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from relasify.data.memberships import Role
from relasify.schemas.common import IdStr
from relasify.schemas.inbox import ThreadPage
from relasify.services import inbox
from relasify.web.auth import workspace_route

router = APIGatewayHttpRouter()


@workspace_route(
    router, "GET", "/v1/workspaces/<ws>/contacts/<contact_id>/messages", Role.AGENT, statuses=(400,), tags=["messages"]
)
def conversation(
    ws: str,
    contact_id: IdStr,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=4096)] = None,
    since: Annotated[str | None, Query(max_length=4096)] = None,
) -> ThreadPage:
    """The same thread as `.../conversations/<contact_id>/messages` (SPEC section 5a)."""
    return inbox.thread(ws, contact_id, limit=limit, cursor=cursor, since=since)
