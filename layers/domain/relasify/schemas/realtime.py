"""Real-time updates (SPEC section 5b): tickets and the change feed."""

from __future__ import annotations

from typing import Literal

from relasify.schemas.common import Output


class TicketOut(Output):
    ticket: str
    url: str
    expires_in: int


class ChangeOut(Output):
    seq: str
    workspace_id: str
    type: Literal["message.created", "message.updated", "note.created", "conversation.updated"]
    conversation_id: str
    message_id: str | None = None


class ChangePage(Output):
    items: list[ChangeOut]
    next_since: str
