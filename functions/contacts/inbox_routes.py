"""The agents' inbox (SPEC section 5a): conversations, read state, notes, the thread. Thin: wiring
only; logic lives in relasify.services.inbox. Roles per SPEC section 3 (agents may do all of it;
assigning someone else needs admin, checked by the service)."""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from relasify.data.memberships import Role
from relasify.schemas.common import IdStr
from relasify.schemas.inbox import (
    ConversationOut,
    ConversationPage,
    ConversationPatch,
    NoteIn,
    ReadOut,
    ReadRequest,
    ThreadItem,
    ThreadPage,
)
from relasify.services import inbox
from relasify.web.auth import current_membership, workspace_route
from relasify.web.openapi_responses import GRAPH_STATUSES

router = APIGatewayHttpRouter()
_BASE = "/v1/workspaces/<ws>/conversations"
AssigneeParam = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.:@-]+$")]


@workspace_route(router, "GET", _BASE, Role.AGENT, statuses=(400,), tags=["inbox"])
def list_conversations(
    ws: str,
    status: Annotated[Literal["open", "pending", "snoozed", "resolved", "all"], Query()] = "open",
    assignee: AssigneeParam = None,
    unread: Annotated[bool, Query()] = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
    cursor: Annotated[str | None, Query(max_length=4096)] = None,
) -> ConversationPage:
    return inbox.list_conversations(
        current_membership(router), status=status, assignee=assignee, unread=unread, limit=limit, cursor=cursor
    )


@workspace_route(router, "GET", f"{_BASE}/<contact_id>", Role.AGENT, tags=["inbox"])
def get_conversation(ws: str, contact_id: IdStr) -> ConversationOut:
    return inbox.get_conversation(current_membership(router), contact_id)


@workspace_route(router, "PATCH", f"{_BASE}/<contact_id>", Role.AGENT, statuses=(403, 409), tags=["inbox"])
def update_conversation(ws: str, contact_id: IdStr, patch: ConversationPatch) -> ConversationOut:
    return inbox.update_conversation(current_membership(router), contact_id, patch)


@workspace_route(router, "POST", f"{_BASE}/<contact_id>/read", Role.AGENT, statuses=GRAPH_STATUSES, tags=["inbox"])
def mark_read(ws: str, contact_id: IdStr, request: ReadRequest) -> ReadOut:
    return inbox.mark_read(current_membership(router), contact_id, request)


@workspace_route(
    router, "POST", f"{_BASE}/<contact_id>/notes", Role.AGENT, success=201, statuses=(409,), tags=["inbox"]
)
def add_note(ws: str, contact_id: IdStr, note: NoteIn) -> Response[ThreadItem]:
    item = inbox.add_note(current_membership(router), contact_id, note.body)
    return Response(status_code=201, content_type="application/json", body=item.model_dump(mode="json"))


@workspace_route(router, "GET", f"{_BASE}/<contact_id>/messages", Role.AGENT, statuses=(400,), tags=["inbox"])
def conversation_thread(
    ws: str,
    contact_id: IdStr,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=4096)] = None,
    since: Annotated[str | None, Query(max_length=4096)] = None,
) -> ThreadPage:
    return inbox.thread(ws, contact_id, limit=limit, cursor=cursor, since=since)
