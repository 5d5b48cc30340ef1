"""ContactsApi: the account API (identity, workspaces, members, WhatsApp connection, audit)
and contacts with data-subject rights. Thin: wiring only; logic lives in relasify.services."""

from __future__ import annotations

from typing import Any

from account_routes import router as account_router
from api_key_routes import router as api_key_router
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from canned_reply_routes import router as canned_reply_router
from contact_routes import router as contact_router
from conversation_routes import router as conversation_router
from inbox_routes import router as inbox_router
from realtime_routes import router as realtime_router
from relasify.observability import logger, metrics
from relasify.web.auth import api_route
from relasify.web.resolver import create_app
from rights_routes import router as rights_router
from webhook_routes import router as webhook_router

app = create_app()
app.include_router(account_router)
app.include_router(contact_router)
app.include_router(conversation_router)
app.include_router(inbox_router)
app.include_router(rights_router)
app.include_router(canned_reply_router)
app.include_router(realtime_router)
app.include_router(api_key_router)
app.include_router(webhook_router)


@api_route(app, "GET", "/health", public=True, tags=["health"])
def health() -> dict[str, str]:
    return {"status": "ok"}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
