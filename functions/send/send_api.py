"""SendApi: messages, templates and broadcasts. Thin: wiring only; logic lives in relasify.services."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from media_routes import router as media_router
from relasify.observability import logger, metrics
from relasify.web.resolver import create_app
from send_broadcasts import router as broadcasts_router
from send_messages import router as messages_router
from send_templates import router as templates_router

app = create_app()
app.include_router(messages_router)
app.include_router(templates_router)
app.include_router(broadcasts_router)
app.include_router(media_router)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
