"""The reads one processor invocation (an SQS batch of webhook queue messages) shares, made before
its first record is applied: the conversations its routed statuses may mirror on, in one
BatchGetItem instead of a GetItem per status (relasify.data.status_mirror).

Only the queue messages' inline bodies are looked at (a pointer message's body is read from S3 when
its record is applied, not twice). What a status's callback data claims is used only as a key to
read: the routing of the record decides the workspace, and the conversation of another workspace is
never looked up (its key names the routed workspace)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError
from pynamodb.exceptions import PynamoDBException

from relasify.data.status_mirror import ConversationPeeks
from relasify.data.status_routes import parse_status_callback
from relasify.observability import logger
from relasify.services.webhook_routing import RouteCache

# Fewer conversations than this are not read ahead: a lone status's conditional update decides
# without a read (relasify.data.status_mirror: its break-even).
PREFETCH_FROM = 2


def invocation_reads(records: Iterable[Mapping[str, Any]]) -> RouteCache:
    """The `RouteCache` for one invocation's records, with their statuses' conversations read."""
    keys = {key for record in records for key in _status_conversations(record.get("body"))}
    peeks = ConversationPeeks(blind=len(keys) < PREFETCH_FROM)
    if not peeks.blind:
        try:
            peeks.prefetch(keys)
        except (PynamoDBException, BotoCoreError):
            # A read ahead is an optimisation: its records read what they need when applied.
            logger.warning("webhook batch read-ahead failed", exc_info=True)
            peeks = ConversationPeeks()
    return RouteCache(peeks)


def _status_conversations(message_body: Any) -> list[tuple[str, str]]:
    """(workspace, contact id) of each status an inline queue message carries with a route."""
    try:
        inline = json.loads(message_body).get("body")
        if not isinstance(inline, str):
            return []
        payload = json.loads(inline)
        keys = []
        for entry in payload.get("entry") or []:
            for change in entry.get("changes") or []:
                for status in (change.get("value") or {}).get("statuses") or []:
                    route = parse_status_callback(status.get("biz_opaque_callback_data"))
                    if route is not None:
                        keys.append((route.ws, route.contact_id))
        return keys
    except (ValueError, TypeError, AttributeError):
        return []  # not a webhook: its record fails or is kept when applied, as before
