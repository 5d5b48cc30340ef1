"""Outgoing webhook routes (SPEC section 5c): admins subscribe endpoints, list, remove and re-enable
them, and read the delivery log. Thin: wiring only; logic lives in relasify.services."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from relasify.data.memberships import Role
from relasify.data.outgoing_webhooks import MAX_PAGE
from relasify.schemas.outgoing_webhooks import (
    DeliveryOut,
    DeliveryPage,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookOut,
    WebhookPatch,
)
from relasify.services import outgoing_webhooks
from relasify.web.auth import current_membership, workspace_route

router = APIGatewayHttpRouter()
WebhookId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
TAGS = ["webhooks"]


@workspace_route(
    router,
    "POST",
    "/v1/workspaces/<ws>/webhooks",
    Role.ADMIN,
    success=201,
    statuses=(409,),
    tags=TAGS,
    description="Subscribe an https:// endpoint to event types (201). The answer holds the signing `secret`, "
    "shown only here. Private, loopback, link-local and metadata addresses are refused (422); at most 10 "
    "webhooks per workspace (409 `webhook-limit-reached`).",
)
def create_webhook(ws: str, body: WebhookCreate) -> Response[WebhookCreated]:
    created = outgoing_webhooks.create(current_membership(router), body)
    return Response(status_code=201, content_type="application/json", body=created.model_dump(mode="json"))


@workspace_route(router, "GET", "/v1/workspaces/<ws>/webhooks", Role.ADMIN, tags=TAGS)
def list_webhooks(ws: str) -> WebhookList:
    return WebhookList(items=outgoing_webhooks.list_all(ws))


@workspace_route(router, "GET", "/v1/workspaces/<ws>/webhooks/<webhook_id>", Role.ADMIN, tags=TAGS)
def get_webhook(ws: str, webhook_id: WebhookId) -> WebhookOut:
    return outgoing_webhooks.out(outgoing_webhooks.get(ws, webhook_id))


@workspace_route(
    router,
    "PATCH",
    "/v1/workspaces/<ws>/webhooks/<webhook_id>",
    Role.ADMIN,
    tags=TAGS,
    description="`{enabled: true}` re-enables an endpoint disabled after 24 h of failed deliveries "
    "(events of the disabled time are not replayed); `{enabled: false}` pauses it.",
)
def update_webhook(ws: str, webhook_id: WebhookId, body: WebhookPatch) -> WebhookOut:
    return outgoing_webhooks.set_enabled(current_membership(router), webhook_id, body.enabled)


@workspace_route(router, "DELETE", "/v1/workspaces/<ws>/webhooks/<webhook_id>", Role.ADMIN, success=204, tags=TAGS)
def delete_webhook(ws: str, webhook_id: WebhookId) -> Response[None]:
    outgoing_webhooks.delete(current_membership(router), webhook_id)
    return Response(status_code=204)


@workspace_route(
    router,
    "GET",
    "/v1/workspaces/<ws>/webhooks/<webhook_id>/deliveries",
    Role.ADMIN,
    statuses=(400,),
    tags=TAGS,
    description="Delivery attempts, newest first: outcome, status code, duration, attempt and next retry "
    "(never the body). Kept 12 months.",
)
def list_webhook_deliveries(
    ws: str,
    webhook_id: WebhookId,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> DeliveryPage:
    page = outgoing_webhooks.deliveries(ws, webhook_id, limit=limit, cursor=cursor)
    return DeliveryPage(
        items=[DeliveryOut.model_validate(a, from_attributes=True) for a in page.items], next_cursor=page.next_cursor
    )
