"""ContactsApi: the account API (identity, workspaces, members, WhatsApp connection, audit)
and contacts with data-subject rights. Thin: wiring only; logic lives in relasify.services."""

from __future__ import annotations

from typing import Any

from relasify.cold_start import collector_paused

with collector_paused():  # the imports below, without collector passes (relasify.cold_start)
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from relasify.observability import logger, metrics
    from relasify.web.auth import api_route
    from relasify.web.resolver import create_app
    from relasify.web.route_groups import RouteGroups

# Each route module (this folder) with the routes its router registers, in the order they were
# included; a module is imported on the first request that can reach it (relasify.web.route_groups:
# a cold start pays for one group's services and schemas, not nine). Pinned to the routers by
# tests/unit/test_route_groups.py.
ROUTE_GROUPS = {
    "account_routes": (
        "GET /v1/me",
        "POST /v1/workspaces",
        "GET /v1/workspaces",
        "GET /v1/workspaces/<ws>",
        "GET /v1/workspaces/<ws>/members",
        "POST /v1/workspaces/<ws>/members",
        "PATCH /v1/workspaces/<ws>/members/<user>",
        "DELETE /v1/workspaces/<ws>/members/<user>",
        "PUT /v1/workspaces/<ws>/whatsapp",
        "GET /v1/workspaces/<ws>/whatsapp",
        "PATCH /v1/workspaces/<ws>/whatsapp",
        "DELETE /v1/workspaces/<ws>/whatsapp",
        "GET /v1/workspaces/<ws>/audit",
    ),
    "contact_routes": (
        "GET /v1/workspaces/<ws>/contacts/export",
        "GET /v1/workspaces/<ws>/contacts/exports/<export_id>",
        "POST /v1/workspaces/<ws>/contacts/imports",
        "POST /v1/workspaces/<ws>/contacts/imports/<import_id>/start",
        "GET /v1/workspaces/<ws>/contacts/imports/<import_id>",
        "POST /v1/workspaces/<ws>/contacts",
        "GET /v1/workspaces/<ws>/contacts",
        "GET /v1/workspaces/<ws>/contacts/<contact_id>",
        "PATCH /v1/workspaces/<ws>/contacts/<contact_id>",
        "DELETE /v1/workspaces/<ws>/contacts/<contact_id>",
        "POST /v1/workspaces/<ws>/contacts/<contact_id>/consent",
    ),
    "conversation_routes": ("GET /v1/workspaces/<ws>/contacts/<contact_id>/messages",),
    "inbox_routes": (
        "GET /v1/workspaces/<ws>/conversations",
        "GET /v1/workspaces/<ws>/conversations/<contact_id>",
        "PATCH /v1/workspaces/<ws>/conversations/<contact_id>",
        "POST /v1/workspaces/<ws>/conversations/<contact_id>/read",
        "POST /v1/workspaces/<ws>/conversations/<contact_id>/notes",
        "GET /v1/workspaces/<ws>/conversations/<contact_id>/messages",
    ),
    "rights_routes": (
        "GET /v1/workspaces/<ws>/contacts/<contact_id>/export",
        "POST /v1/workspaces/<ws>/contacts/<contact_id>/restrict",
        "POST /v1/workspaces/<ws>/contacts/<contact_id>/unrestrict",
        "POST /v1/workspaces/<ws>/contacts/<contact_id>/erase",
        "POST /v1/workspaces/<ws>/close",
        "GET /v1/me/export",
        "DELETE /v1/me",
    ),
    "canned_reply_routes": (
        "GET /v1/workspaces/<ws>/canned-replies",
        "POST /v1/workspaces/<ws>/canned-replies",
        "GET /v1/workspaces/<ws>/canned-replies/<reply_id>",
        "PATCH /v1/workspaces/<ws>/canned-replies/<reply_id>",
        "DELETE /v1/workspaces/<ws>/canned-replies/<reply_id>",
    ),
    "realtime_routes": (
        "POST /v1/realtime/tickets",
        "GET /v1/workspaces/<ws>/changes",
    ),
    "api_key_routes": (
        "POST /v1/workspaces/<ws>/api-keys",
        "GET /v1/workspaces/<ws>/api-keys",
        "DELETE /v1/workspaces/<ws>/api-keys/<key_id>",
    ),
    "webhook_routes": (
        "POST /v1/workspaces/<ws>/webhooks",
        "GET /v1/workspaces/<ws>/webhooks",
        "GET /v1/workspaces/<ws>/webhooks/<webhook_id>",
        "PATCH /v1/workspaces/<ws>/webhooks/<webhook_id>",
        "DELETE /v1/workspaces/<ws>/webhooks/<webhook_id>",
        "GET /v1/workspaces/<ws>/webhooks/<webhook_id>/deliveries",
    ),
}

app = create_app()
routes = RouteGroups(app, ROUTE_GROUPS)


@api_route(app, "GET", "/health", public=True, tags=["health"])
def health() -> dict[str, str]:
    return {"status": "ok"}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return routes.resolve(event, context)
