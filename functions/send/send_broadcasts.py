"""Broadcast routes: create (202), list, get with counts, cancel (admins)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from relasify.data.broadcasts import Broadcast
from relasify.data.memberships import Role
from relasify.schemas.broadcasts import BroadcastCreate, BroadcastList, BroadcastOut, CountsOut
from relasify.schemas.common import IdStr
from relasify.services import broadcasts
from relasify.web.auth import current_membership, workspace_route

router = APIGatewayHttpRouter()


def _out(view: broadcasts.BroadcastView | None, broadcast: Broadcast | None = None) -> BroadcastOut:
    b = view.broadcast if view is not None else broadcast
    assert b is not None
    return BroadcastOut(
        id=b.id,
        status=b.status,
        template=b.template_name,
        language=b.language,
        audience=b.audience,
        parameters=b.parameters,
        header=b.header,
        scheduled_at=b.scheduled_at,
        # Every claimed recipient is in exactly one of these (delivered/read are sub-states of sent).
        total=(view.counts.queued + view.counts.sent + view.counts.failed + view.counts.skipped) if view else None,
        counts=CountsOut.model_validate(view.counts, from_attributes=True) if view else None,
        created_by=b.created_by,
        created_at=b.created_at,
        cancelled_at=b.cancelled_at,
        completed_at=b.completed_at,
    )


# 409: the template is not approved (or WhatsApp is not connected).
@workspace_route(
    router, "POST", "/v1/workspaces/<ws>/broadcasts", Role.ADMIN, success=202, statuses=(409,), tags=["broadcasts"]
)
def create_broadcast(ws: str, body: BroadcastCreate) -> Response[BroadcastOut]:
    view = broadcasts.create_broadcast(
        ws,
        template=body.template,
        language=body.language,
        audience=body.audience.model_dump(exclude_none=True),
        parameters=[p.model_dump(exclude_none=True) for p in body.parameters],
        header=body.header.model_dump(exclude_none=True) if body.header is not None else None,
        scheduled_at=body.scheduled_at,
        actor_id=current_membership(router).sub,
    )
    return Response(status_code=202, content_type="application/json", body=_out(view).model_dump(mode="json"))


@workspace_route(router, "GET", "/v1/workspaces/<ws>/broadcasts", Role.ADMIN, statuses=(400,), tags=["broadcasts"])
def list_broadcasts(
    ws: str,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=4096)] = None,
) -> BroadcastList:
    page = broadcasts.list_broadcasts(ws, limit=limit, cursor=cursor)
    items = [_out(None, b) for b in page.items]
    return BroadcastList(items=items, next_cursor=page.next_cursor)


@workspace_route(router, "GET", "/v1/workspaces/<ws>/broadcasts/<broadcast_id>", Role.ADMIN, tags=["broadcasts"])
def get_broadcast(ws: str, broadcast_id: IdStr) -> BroadcastOut:
    return _out(broadcasts.get_broadcast(ws, broadcast_id))


@workspace_route(
    router,
    "POST",
    "/v1/workspaces/<ws>/broadcasts/<broadcast_id>/cancel",
    Role.ADMIN,
    statuses=(409,),  # already completed or cancelled
    tags=["broadcasts"],
)
def cancel_broadcast(ws: str, broadcast_id: IdStr) -> BroadcastOut:
    return _out(broadcasts.cancel_broadcast(ws, broadcast_id, actor_id=current_membership(router).sub))
