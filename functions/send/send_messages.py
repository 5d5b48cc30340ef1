"""Message routes: POST /messages (idempotent send) and GET /messages/<message_id>."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Header
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from relasify.data.memberships import Role
from relasify.schemas.common import IdStr
from relasify.schemas.messages import MessageOut, SendMessage, message_out
from relasify.services import sending
from relasify.web.auth import current_membership, workspace_route
from relasify.web.openapi_responses import GRAPH_STATUSES

router = APIGatewayHttpRouter()


# 400: no Idempotency-Key; 409: a refusal (opted out, outside the window, ...) or the key in use; Graph failures.
@workspace_route(
    router, "POST", "/v1/workspaces/<ws>/messages", Role.AGENT, success=201, statuses=GRAPH_STATUSES, tags=["messages"]
)
def send_message(
    ws: str,
    body: SendMessage,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Required: a unique value per message (at most 255 printable characters); a retry with "
            "the same key and body answers the first result instead of sending again.",
        ),
    ] = None,
) -> Response[MessageOut]:
    # Declared optional so that a missing key is the service's 400 `idempotency-key-required`, not a 422.
    key = idempotency_key
    message = sending.send_message(
        ws, body.model_dump(mode="json", exclude_none=True), key, actor_sub=current_membership(router).sub
    )
    return Response(status_code=201, content_type="application/json", body=message_out(message).model_dump(mode="json"))


@workspace_route(router, "GET", "/v1/workspaces/<ws>/messages/<message_id>", Role.AGENT, tags=["messages"])
def get_message(ws: str, message_id: IdStr) -> MessageOut:
    return message_out(sending.get_message(ws, message_id))
