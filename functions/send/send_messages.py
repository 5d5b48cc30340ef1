"""Message routes: POST /messages (idempotent send) and GET /messages/<message_id>."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from relasify.schemas.common import IdStr
from relasify.schemas.messages import MessageOut, SendMessage, message_out
from relasify.services import sending
from relasify.services.access import Role
from relasify.web.auth import current_membership, workspace_route
from relasify.web.openapi_responses import GRAPH_STATUSES

router = APIGatewayHttpRouter()


# 400: no Idempotency-Key; 409: a refusal (opted out, outside the window, ...) or the key in use; Graph failures.
@workspace_route(
    router, "POST", "/v1/workspaces/<ws>/messages", Role.AGENT, success=201, statuses=GRAPH_STATUSES, tags=["messages"]
)
def send_message(ws: str, body: SendMessage) -> Response[MessageOut]:
    key = router.current_event.headers.get("idempotency-key")
    message = sending.send_message(
        ws, body.model_dump(mode="json", exclude_none=True), key, actor_sub=current_membership(router).sub
    )
    return Response(status_code=201, content_type="application/json", body=message_out(message).model_dump(mode="json"))


@workspace_route(router, "GET", "/v1/workspaces/<ws>/messages/<message_id>", Role.AGENT, tags=["messages"])
def get_message(ws: str, message_id: IdStr) -> MessageOut:
    return message_out(sending.get_message(ws, message_id))
