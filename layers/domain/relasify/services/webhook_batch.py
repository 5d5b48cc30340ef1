"""The reads one processor invocation (an SQS batch of webhook queue messages) shares, made before
its first record is applied, each in one BatchGetItem instead of a GetItem per event (same read
units): the senders' contact ids (their wa_id / user_id markers, read as one marker is read), then the
conversations of those senders and of the routed statuses (relasify.data.conversation_reads).

Only the queue messages' inline bodies are looked at (a pointer message's body is read from S3 when
its record is applied, not twice). Keys are read only in the workspace the event's phone number
routes to (the route read its record needs anyway, cached for the invocation): what a status's
callback data claims is a key to read only when it names that workspace, so another workspace's
items are never read. A marker not found is read again when its message is applied (a contact
created earlier in the batch has one by then).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from relasify.data import contact_markers
from relasify.data.failures import AWS_CALL_FAILURES
from relasify.data.status_routes import parse_status_callback
from relasify.observability import logger
from relasify.services.webhook_routing import RouteCache

# Fewer keys than this are not read ahead: a BatchGetItem of one is a GetItem, made when the record runs.
PREFETCH_FROM = 2


def invocation_reads(records: Iterable[Mapping[str, Any]]) -> RouteCache:
    """The `RouteCache` for one invocation's records, with what its events will read read ahead."""
    statuses: list[tuple[str, str, str]] = []
    senders: list[tuple[str, str, str]] = []
    for record in records:
        _claims(record.get("body"), statuses, senders)
    routes = RouteCache()
    try:
        status_keys = {(ws, contact_id) for number, ws, contact_id in statuses if _routed(routes, number) == ws}
        identities = {(ws, kind, value) for number, kind, value in senders if (ws := _routed(routes, number))}
        if len(identities) >= PREFETCH_FROM:
            routes.contact_ids.update(contact_markers.contact_ids_by_identities(identities))
        keys = status_keys | {(ws, contact_id) for (ws, _kind, _value), contact_id in routes.contact_ids.items()}
        if len(keys) >= PREFETCH_FROM:
            routes.conversations.prefetch(keys)
    except AWS_CALL_FAILURES:
        # A read ahead is an optimisation: the records read what they need when applied.
        logger.warning("webhook batch read-ahead failed", exc_info=True)
        routes = RouteCache()
    return routes


def _routed(routes: RouteCache, phone_number_id: str) -> str | None:
    route = routes.route(phone_number_id)
    return route.ws if route else None


def _claims(message_body: Any, statuses: list[tuple[str, str, str]], senders: list[tuple[str, str, str]]) -> None:
    """From an inline queue message: (phone number id, workspace, contact id) of each status with a
    route (the number it came to, the conversation its callback data names) into `statuses`, and
    (phone number id, wa_id | user_id, value) of each inbound message's sender into `senders`."""
    try:
        inline = json.loads(message_body).get("body")
        if not isinstance(inline, str):
            return
        payload = json.loads(inline)
        for entry in payload.get("entry") or []:
            for change in entry.get("changes") or []:
                value = change.get("value") or {}
                number = (value.get("metadata") or {}).get("phone_number_id")
                if not isinstance(number, str) or not number:
                    continue
                for status in value.get("statuses") or []:
                    route = parse_status_callback(status.get("biz_opaque_callback_data"))
                    if route is not None:
                        statuses.append((number, route.ws, route.contact_id))
                for message in value.get("messages") or []:
                    senders += [
                        (number, kind, message[field])
                        for kind, field in (("wa_id", "from"), ("user_id", "from_user_id"))
                        if isinstance(message.get(field), str) and message[field]
                    ]
    except (ValueError, TypeError, AttributeError):
        return  # not a webhook: its record fails or is kept when applied, as before
