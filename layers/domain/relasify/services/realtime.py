"""Real-time updates (SPEC section 5b): tickets for the WebSocket API, its $connect/$disconnect,
the change feed a reconnecting client replays, and the publisher that pushes each change-feed item
to the connected members of its workspace. Events carry ids only; clients fetch over HTTP, where
permissions are checked again."""

from __future__ import annotations

import json
from collections.abc import Iterable

from relasify import clock
from relasify.data import changes as feed
from relasify.data import realtime as store
from relasify.data.memberships import Membership
from relasify.errors import ChangesExpired
from relasify.observability import logger
from relasify.schemas.realtime import ChangeOut, ChangePage, TicketOut
from relasify.services.access import Actor
from relasify.settings import get_settings


def issue_ticket(actor: Actor) -> TicketOut:
    ticket = store.issue_ticket(actor.sub)
    return TicketOut(ticket=ticket, url=get_settings().realtime_url, expires_in=int(store.TICKET_TTL.total_seconds()))


def list_changes(caller: Membership, since: str | None, *, limit: int = feed.MAX_PAGE) -> ChangePage:
    """The workspace's events after `since` (all those kept when None), oldest first."""
    oldest = clock.now() - feed.KEEP
    if since is None:
        since = feed.seq_at(oldest, last=False)
    elif feed.seq_time(since) < oldest:
        raise ChangesExpired("Changes older than 48 hours are not kept; reload the inbox, then follow next_since.")
    page = feed.list_after(caller.ws, since, limit=limit)
    return ChangePage(items=[ChangeOut(**e.as_json()) for e in page.items], next_since=page.next_since)


# --- the WebSocket API's routes ------------------------------------------------------------------------


def connect(ticket: str | None, connection_id: str) -> bool:
    """`$connect`: consume the ticket (atomically) and remember the connection. False: refuse it."""
    if not ticket or len(ticket) > 128:
        return False
    sub = store.consume_ticket(ticket)
    if sub is None:
        logger.info("realtime connection refused", extra={"reason": "bad, used or expired ticket"})
        return False
    store.save_connection(sub, connection_id)
    return True


def disconnect(connection_id: str) -> None:
    store.delete_connection(connection_id)


# --- the publisher --------------------------------------------------------------------------------------


def publish(events: Iterable[feed.ChangeEvent], endpoint: str) -> int:
    """Push each event to every connection of the workspace's current members (membership read at
    push time: a removed member gets nothing). Connections that answer 410 are deleted. Returns the
    number of pushes delivered."""
    from relasify.data.identity import identity_repository

    identity = identity_repository()
    members: dict[str, list[str]] = {}
    connections: dict[str, list[str]] = {}
    delivered = 0
    for event in events:
        if event.type not in feed.REALTIME_TYPES:
            continue  # contact events feed the outgoing webhooks only (SPEC 5b lists these four)
        if event.workspace_id not in members:
            members[event.workspace_id] = [m.sub for m in identity.list_members(event.workspace_id)]
        payload = json.dumps(event.as_json(), separators=(",", ":")).encode()
        for sub in members[event.workspace_id]:
            if sub not in connections:
                connections[sub] = store.connections_of(sub)
            for connection_id in list(connections[sub]):
                if store.post_to_connection(endpoint, connection_id, payload):
                    delivered += 1
                else:
                    store.delete_connection(connection_id)
                    connections[sub].remove(connection_id)
    return delivered
