"""A contact's conversation (inbound and outbound, newest first, paginated): served by the account
API because its path lives under /contacts (SPEC section 5)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from relasify.schemas.common import IdStr
from relasify.schemas.messages import MessagePage, message_out
from relasify.services import sending
from relasify.services.access import Role
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
) -> MessagePage:
    page = sending.conversation(ws, contact_id, limit=limit, cursor=cursor)
    return MessagePage(items=[message_out(m) for m in page.items], next_cursor=page.next_cursor)
