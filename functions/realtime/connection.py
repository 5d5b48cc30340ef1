"""RealtimeConnection: the WebSocket API's $connect (consume the one-use ticket, remember the
connection) and $disconnect (forget it). Thin: logic lives in relasify.services.realtime. A refused
$connect answers 401, and API Gateway (or the local listener) refuses the handshake."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from relasify.observability import logger
from relasify.services import realtime


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = event.get("requestContext") or {}
    connection_id = str(request.get("connectionId") or "")
    route = request.get("routeKey")
    if not connection_id:
        return {"statusCode": 400}
    if route == "$connect":
        ticket = (event.get("queryStringParameters") or {}).get("ticket")
        return {"statusCode": 200 if realtime.connect(ticket, connection_id) else 401}
    if route == "$disconnect":
        realtime.disconnect(connection_id)
        return {"statusCode": 200}
    return {"statusCode": 200}  # $default: clients send nothing that matters
