"""SendApi: messages, templates and broadcasts. Thin: wiring only; logic lives in relasify.services."""

from __future__ import annotations

from typing import Any

from relasify.cold_start import collector_paused

with collector_paused():  # the imports below, without collector passes (relasify.cold_start)
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from relasify.observability import logger, metrics
    from relasify.web.resolver import create_app
    from relasify.web.route_groups import RouteGroups

# Each route module (this folder) with the routes its router registers, in the order they were
# included; a module is imported on the first request that can reach it (relasify.web.route_groups).
# Pinned to the routers by tests/unit/test_route_groups.py.
ROUTE_GROUPS = {
    "send_messages": (
        "POST /v1/workspaces/<ws>/messages",
        "GET /v1/workspaces/<ws>/messages/<message_id>",
    ),
    "send_templates": (
        "GET /v1/workspaces/<ws>/templates",
        "POST /v1/workspaces/<ws>/templates",
        "POST /v1/workspaces/<ws>/templates/sync",
        "DELETE /v1/workspaces/<ws>/templates/<name>",
    ),
    "send_broadcasts": (
        "POST /v1/workspaces/<ws>/broadcasts",
        "GET /v1/workspaces/<ws>/broadcasts",
        "GET /v1/workspaces/<ws>/broadcasts/<broadcast_id>",
        "POST /v1/workspaces/<ws>/broadcasts/<broadcast_id>/cancel",
    ),
    "media_routes": (
        "GET /v1/workspaces/<ws>/messages/<message_id>/media",
        "POST /v1/workspaces/<ws>/media",
    ),
}

app = create_app()
routes = RouteGroups(app, ROUTE_GROUPS)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return routes.resolve(event, context)
