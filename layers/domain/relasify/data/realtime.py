"""Real-time connections (SPEC section 5b): one-use tickets and open WebSocket connections.

- Ticket: PK `RTTICKET#<sha256 of the ticket>`, SK `TICKET`, the user's `sub`, TTL 60 s. Only the
  hash is stored, so the table (a backup, an export) holds nothing a client could connect with.
  Consumed with one conditional DeleteItem (exists and not expired): a second use finds nothing.
- Connection: PK `RTCONN#<connectionId>`, SK `CONN`, GSI1 `RTUSER#<sub>` / `<connectionId>`, TTL 2 h
  (API Gateway's connection limit). `$disconnect` knows only the connection id (the key); the
  publisher finds a user's connections through GSI1. Keyed by user, not workspace: the publisher
  reads the workspace's CURRENT members, then their connections, so a removed member stops
  receiving at once and nothing needs rewriting.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any, ClassVar

from pynamodb.attributes import UnicodeAttribute
from pynamodb.exceptions import DeleteError

from relasify import clock
from relasify.data import aws_clients
from relasify.data.base import TableModel, query_all
from relasify.data.tx import is_condition_failure
from relasify.retention import DataClass

TICKET_TTL = timedelta(seconds=60)
CONNECTION_TTL = timedelta(hours=2)


class _ShortLived(TableModel):
    """Own short TTL and no `expiry_bucket`: DynamoDB's TTL removes them, reads check expiry."""

    data_class: ClassVar[DataClass] = DataClass.OPERATIONAL

    def stamp_for_write(self) -> None:
        now = clock.now()
        self.created_at = self.created_at or now
        self.updated_at = now


class RealtimeTicketModel(_ShortLived):
    SK_VALUE: ClassVar[str] = "TICKET"

    sub = UnicodeAttribute()


class RealtimeConnectionModel(_ShortLived):
    SK_VALUE: ClassVar[str] = "CONN"

    sub = UnicodeAttribute()
    connection_id = UnicodeAttribute()


def _ticket_pk(ticket: str) -> str:
    return "RTTICKET#" + hashlib.sha256(ticket.encode()).hexdigest()


def _connection_pk(connection_id: str) -> str:
    return f"RTCONN#{connection_id}"


def _user_connections_pk(sub: str) -> str:
    return f"RTUSER#{sub}"


def issue_ticket(sub: str) -> str:
    """A new one-use ticket for `sub` (the plain ticket is returned, its hash stored)."""
    ticket = "rt_" + secrets.token_urlsafe(32)
    RealtimeTicketModel(
        _ticket_pk(ticket),
        RealtimeTicketModel.SK_VALUE,
        sub=sub,
        expires_at=int((clock.now() + TICKET_TTL).timestamp()),
    ).save(condition=RealtimeTicketModel.pk.does_not_exist())
    return ticket


def consume_ticket(ticket: str) -> str | None:
    """The ticket's user, deleting it in the same request; None when unknown, used or expired."""
    model = RealtimeTicketModel
    try:
        answer = model._get_connection().delete_item(
            _ticket_pk(ticket),
            model.SK_VALUE,
            condition=model.pk.exists() & (model.expires_at > clock.epoch()),
            return_values="ALL_OLD",  # the owner comes back with the delete: one request, atomic
        )
    except DeleteError as exc:
        if is_condition_failure(exc):
            return None
        raise
    old = answer.get("Attributes") or {}
    return str(old.get("sub", {}).get("S") or "") or None


def save_connection(sub: str, connection_id: str) -> None:
    RealtimeConnectionModel(
        _connection_pk(connection_id),
        RealtimeConnectionModel.SK_VALUE,
        gsi1pk=_user_connections_pk(sub),
        gsi1sk=connection_id,
        sub=sub,
        connection_id=connection_id,
        expires_at=int((clock.now() + CONNECTION_TTL).timestamp()),
    ).save()


def delete_connection(connection_id: str) -> None:
    RealtimeConnectionModel(_connection_pk(connection_id), RealtimeConnectionModel.SK_VALUE).delete()


def connections_of(sub: str) -> list[str]:
    """The live connection ids of a user (GSI1: a connection made a few ms ago may be missing)."""
    model = RealtimeConnectionModel
    return [i.connection_id for i in query_all(model, _user_connections_pk(sub), index=model.gsi1)]


# --- the management API (API Gateway's, or the local stack's listener) ----------------------------------

_management_clients: dict[str, Any] = {}


def _management_client(endpoint: str) -> Any:
    client = _management_clients.get(endpoint)
    if client is None:
        from botocore.config import Config  # lazy: only the publisher pushes

        # No endpoint: botocore reads AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI (the local stack).
        config = Config(connect_timeout=2, read_timeout=2, retries={"max_attempts": 2})
        client = aws_clients.session().client("apigatewaymanagementapi", endpoint_url=endpoint or None, config=config)
        _management_clients[endpoint] = client
    return client


def post_to_connection(endpoint: str, connection_id: str, payload: bytes) -> bool:
    """Push `payload` to a connection; False when it is gone (410): the caller deletes it."""
    client = _management_client(endpoint)
    try:
        client.post_to_connection(ConnectionId=connection_id, Data=payload)
    except client.exceptions.GoneException:
        return False
    return True
