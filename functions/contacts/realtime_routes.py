"""Real-time updates (SPEC section 5b): WebSocket tickets and the change feed. Thin: wiring only;
logic lives in relasify.services.realtime."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from relasify.data.changes import MAX_PAGE, SEQ_PATTERN
from relasify.data.memberships import Role
from relasify.schemas.realtime import ChangePage, TicketOut
from relasify.services import realtime
from relasify.web.auth import api_route, current_actor, current_membership, workspace_route

router = APIGatewayHttpRouter()


@api_route(router, "POST", "/v1/realtime/tickets", success=201, tags=["realtime"])
def issue_ticket() -> Response[TicketOut]:
    out = realtime.issue_ticket(current_actor(router))
    return Response(status_code=201, content_type="application/json", body=out.model_dump(mode="json"))


@workspace_route(router, "GET", "/v1/workspaces/<ws>/changes", Role.AGENT, statuses=(410,), tags=["realtime"])
def list_changes(
    ws: str,
    since: Annotated[str | None, Query(pattern=SEQ_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = MAX_PAGE,
) -> ChangePage:
    return realtime.list_changes(current_membership(router), since, limit=limit)
