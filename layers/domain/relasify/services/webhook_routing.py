"""Routing a webhook's events to workspaces, and the reads one webhook delivery shares.

`WebhookContext` lives for one delivery (one queued webhook): its workspace lookups and the batched
reads of the messages its statuses refer to. `RouteCache` lives for one processor invocation.
"""

from __future__ import annotations

from relasify.data import message_statuses
from relasify.data.conversation_reads import ConversationReads
from relasify.data.records import PhoneRoute
from relasify.data.whatsapp_connections import whatsapp_connection_repository
from relasify.observability import logger
from relasify.phones import try_normalize_phone
from relasify.whatsapp.webhook_events import Routing


class WebhookContext:
    """Per-delivery context: cached workspace lookups (a batch often repeats the same number) and
    the batched reads of the messages its statuses refer to."""

    def __init__(self, routes: RouteCache | None = None) -> None:
        self.routes = routes or RouteCache()
        # Batched reads of the messages the delivery's statuses refer to.
        self.statuses = message_statuses.StatusBatch()

    def by_phone_number_id(self, phone_number_id: str) -> str | None:
        route = self.routes.route(phone_number_id)
        return route.ws if route else None

    def by_account(self, routing: Routing, phone_hint: str | None = None) -> list[str]:
        """Workspaces of a WABA; narrowed to one number when the event names it."""
        return self.route_account(routing, phone_hint)[0]

    def route_account(self, routing: Routing, phone_hint: str | None = None) -> tuple[list[str], str]:
        """Workspaces of a WABA, narrowed to one number when the event names it, and the outcome
        label for when there are none: `unrouted` (no connected number has this id or WABA) or
        `unknown_number` (the named number is not connected here)."""
        if routing.phone_number_id:
            ws = self.by_phone_number_id(routing.phone_number_id)
            return ([ws] if ws else []), "unrouted"
        routes = self.routes.routes_of_account(routing.waba_id)
        hint = _digits(phone_hint or routing.display_phone_number)
        if hint and routes:
            matching = [r for r in routes if hint in _number_keys(r.display_phone_number)]
            if not matching:
                # An update about one number (quality, limit, status) names it: applied to the WABA's
                # other numbers it would report the wrong number's state. No phone number in the log.
                logger.warning(
                    "number-level webhook for a number not connected",
                    extra={"waba_id": routing.waba_id, "connected_numbers": len(routes)},
                )
                return [], "unknown_number"
            routes = matching
        return sorted({r.ws for r in routes}), "unrouted"


class RouteCache:
    """Routing lookups shared by the deliveries of one processor invocation (an SQS batch usually
    repeats the same number). Lives for one invocation only, so a moved number is never stale.
    `conversations` and `contact_ids`: the conversations and senders' contact ids the invocation
    read ahead (`relasify.services.webhook_batch`)."""

    def __init__(self, conversations: ConversationReads | None = None) -> None:
        self._by_phone: dict[str, PhoneRoute | None] = {}
        self._by_waba: dict[str, list[PhoneRoute]] = {}
        self.conversations = conversations or ConversationReads()
        self.contact_ids: dict[tuple[str, str, str], str] = {}  # (ws, wa_id | user_id, value) -> contact id

    def route(self, phone_number_id: str) -> PhoneRoute | None:
        if phone_number_id not in self._by_phone:
            self._by_phone[phone_number_id] = whatsapp_connection_repository().route_by_phone_number_id(phone_number_id)
        return self._by_phone[phone_number_id]

    def routes_of_account(self, waba_id: str) -> list[PhoneRoute]:
        if waba_id not in self._by_waba:
            self._by_waba[waba_id] = whatsapp_connection_repository().routes_by_waba_id(waba_id)
        return self._by_waba[waba_id]


def _digits(value: str | None) -> str:
    return "".join(ch for ch in value or "" if ch.isdigit())


def _number_keys(display_phone_number: str | None) -> set[str]:
    """The digit strings Meta may use for a connected number: as the admin typed it, and its E.164
    digits (an admin may type `0812-...`; Meta writes `62812...`)."""
    keys = {_digits(display_phone_number)}
    e164 = try_normalize_phone(display_phone_number) if display_phone_number else None
    if e164:
        keys.add(_digits(e164))
    return keys - {""}
