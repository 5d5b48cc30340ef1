"""The reads one processor invocation (an SQS batch of webhook queue messages) shares, made before
its first record is applied: the conversations its routed statuses may mirror on, in one
BatchGetItem instead of a GetItem per status (relasify.data.status_mirror).

Only the queue messages' inline bodies are looked at (a pointer message's body is read from S3 when
its record is applied, not twice). What a status's callback data claims is used only as a key to
read, and only when its workspace is the one the status's phone number routes to (the route read
the record needs anyway, cached for the invocation): another workspace's conversation is never read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError
from pynamodb.exceptions import PynamoDBException

from relasify.data.status_routes import parse_status_callback
from relasify.observability import logger
from relasify.services.webhook_routing import RouteCache

# Fewer conversations than this are not read ahead: a lone status's conditional update decides
# without a read (relasify.data.status_mirror: its break-even).
PREFETCH_FROM = 2


def invocation_reads(records: Iterable[Mapping[str, Any]]) -> RouteCache:
    """The `RouteCache` for one invocation's records, with their statuses' conversations read."""
    claims = [claim for record in records for claim in _status_conversations(record.get("body"))]
    routes = RouteCache()
    try:
        keys = {
            (ws, contact_id) for phone_number_id, ws, contact_id in claims if _routes_to(routes, phone_number_id, ws)
        }
        if len(keys) >= PREFETCH_FROM:
            routes.conversations.prefetch(keys)
        else:
            routes.conversations.blind = True
    except (PynamoDBException, BotoCoreError):
        # A read ahead is an optimisation: the records read what they need when applied.
        logger.warning("webhook batch read-ahead failed", exc_info=True)
        routes = RouteCache()
    return routes


def _routes_to(routes: RouteCache, phone_number_id: str, ws: str) -> bool:
    route = routes.route(phone_number_id)
    return route is not None and route.ws == ws


def _status_conversations(message_body: Any) -> list[tuple[str, str, str]]:
    """(phone number id, workspace, contact id) of each status an inline queue message carries with
    a route: the number it came to, and the conversation its callback data names."""
    try:
        inline = json.loads(message_body).get("body")
        if not isinstance(inline, str):
            return []
        payload = json.loads(inline)
        keys = []
        for entry in payload.get("entry") or []:
            for change in entry.get("changes") or []:
                value = change.get("value") or {}
                phone_number_id = (value.get("metadata") or {}).get("phone_number_id")
                for status in value.get("statuses") or []:
                    route = parse_status_callback(status.get("biz_opaque_callback_data"))
                    if route is not None and isinstance(phone_number_id, str) and phone_number_id:
                        keys.append((phone_number_id, route.ws, route.contact_id))
        return keys
    except (ValueError, TypeError, AttributeError):
        return []  # not a webhook: its record fails or is kept when applied, as before
