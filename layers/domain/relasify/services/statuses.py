"""Status webhooks applied to outbound messages, and the statuses that arrived before their wamid.

The webhook processor (services/webhook.py) hands each routed status event here; the send path
(services/delivery.py) calls `apply_pending_statuses` once Meta gave it the wamid. Effects of a status
that moved a message forward: the conversation's last message, the broadcast's counters
(services/broadcast_progress.py), and the consent and reachability consequences of a failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relasify import clock
from relasify.data import (
    contact_consent,
    conversations,
    message_statuses,
    outbound_messages,
    status_changes,
    status_routes,
    status_writes,
    tombstones,
)
from relasify.data import messages as message_store
from relasify.data.contacts import contact_repository
from relasify.data.conversation_reads import ConversationReads
from relasify.observability import logger

if TYPE_CHECKING:  # the send path imports this module: it does not load the webhook models
    from relasify.whatsapp.webhook_events import StatusEvent

CONSENT_SOURCE_SEND_ERROR = "send_error_131050"
ERROR_MARKETING_OPT_OUT = 131050
ERROR_UNDELIVERABLE = 131026


def _status_change(event: StatusEvent) -> status_changes.StatusChange | None:
    status = event.status
    if status.status not in status_changes.PENDING_STATUSES:
        return None
    error = status.errors[0] if status.errors else None
    pricing = status.pricing.model_dump(mode="json", exclude_none=True) if status.pricing else None
    return status_changes.StatusChange(
        wamid=status.id,
        status=status.status,
        at=status.occurred_at or clock.now(),
        error_code=error.code if error else None,
        error_title=error.title if error else None,
        error_details=(error.error_data.details if error and error.error_data else None)
        or (error.message if error else None),
        pricing=pricing,
        billable=bool(status.pricing and status.pricing.billable),
    )


def apply_status_event(
    event: StatusEvent, ws: str, batch: message_statuses.StatusBatch, reads: ConversationReads | None = None
) -> str:
    """Apply one status webhook routed to workspace `ws`; `batch` holds the delivery's batched reads
    (prefetched by the processor), `reads` the invocation's conversation reads (relasify.data.conversation_reads).
    Returns the outcome label."""
    change = _status_change(event)
    if change is None:
        logger.info("status not tracked", extra={"status": event.status.status})
        return "untracked"

    # The usual way: the route the send gave Meta; one conditional write, no read (relasify.data.status_writes).
    route = status_routes.parse_status_callback(event.status.biz_opaque_callback_data)
    if route is not None and route.ws == ws:
        routed = status_writes.apply_routed_status(route, change)
        if routed is not None and routed.outcome != "missing":
            _after_status(ws, change, routed, reads)
            return routed.outcome
        if routed is None:  # the message says otherwise: trust only the wamid pointer
            logger.warning("status callback data does not match its message; located by wamid")
    # Older callback data, none, or a route that did not hold: the wamid pointer, then the message.
    location = message_store.parse_callback_data(event.status.biz_opaque_callback_data)
    if location is None or location.ws != ws:
        location = batch.locate(change.wamid)
    if location is not None and location.ws != ws:
        logger.warning("status for another workspace's message ignored")
        return "foreign"
    if location is not None and location.route is not None:  # the pointer carries the route: no message read
        routed = status_writes.apply_routed_status(location.route, change)
        if routed is not None and routed.outcome != "missing":
            _after_status(ws, change, routed, reads)
            return routed.outcome
    if location is not None:
        result = message_statuses.apply_status(ws, location.message_id, change, batch=batch)
        if result.outcome != "missing":
            _after_status(ws, change, result, reads)
            return result.outcome
    # The message is not recorded (yet, or no more: erased). A status of an erased message (its
    # wamid has a tombstone: the customer read it after the erasure), or about a recipient erased
    # since it happened (an old redelivery), is dropped: its early-status item would keep their ids.
    recipient = event.status
    if _erased_status(ws, change, recipient.recipient_id, recipient.recipient_user_id):
        logger.warning("webhook about an erased contact dropped", extra={"ws": ws, "kind": event.kind})
        return "erased"
    # Not recorded yet: keep the status until it is.
    message_statuses.put_pending_status(ws, change)
    # The send path may have recorded the wamid between our lookup and our put; whoever writes
    # second sees the other's item (both reads are strongly consistent), so nothing is stranded.
    late = message_store.locate_wamid(change.wamid)
    if late is not None and late.ws == ws:
        apply_pending_statuses(ws, late.message_id, change.wamid)
        return "applied_late"
    return "pending"


def _erased_status(ws: str, change: status_changes.StatusChange, wa_id: str | None, user_id: str | None) -> bool:
    found = tombstones.erasures(ws, [(tombstones.MESSAGE_KIND, change.wamid), ("wa_id", wa_id), ("user_id", user_id)])
    if (tombstones.MESSAGE_KIND, change.wamid) in found:
        return True
    return any(int(change.at.timestamp()) <= erased for erased in found.values())


def _after_status(
    ws: str,
    change: status_changes.StatusChange,
    result: status_changes.StatusResult,
    reads: ConversationReads | None = None,
) -> None:
    """Effects of a status that moved a message forward (once: only when it was applied): broadcast
    counters, the conversation's last message, and the consent and reachability consequences of a failure."""
    # Also for a status seen before (unchanged): a run that died between the two writes is completed
    # by the redelivery (a read; the conditional update writes only if the conversation is behind).
    if (result.advanced or result.outcome == "unchanged") and result.contact_id and result.message_id:
        mirror = reads.apply_message_status if reads is not None else conversations.apply_message_status
        mirror(ws, result.contact_id, result.message_id, change.status, change.rank)
    if result.outcome == "applied" and result.advanced and result.broadcast_id and result.message_id:
        from relasify.services.broadcast_progress import on_status_applied  # lazy: only broadcast messages need it

        on_status_applied(ws, result.message_id, change.status)
    if result.outcome != "applied" or not result.advanced or change.status != "failed" or not result.contact_id:
        return
    if change.error_code == ERROR_MARKETING_OPT_OUT:
        contact_consent.set_consent_if_newer(ws, result.contact_id, "opted_out", CONSENT_SOURCE_SEND_ERROR, change.at)
    elif change.error_code == ERROR_UNDELIVERABLE:
        contact_repository().set_unreachable(ws, result.contact_id, True)


def apply_pending_statuses(
    ws: str, message_id: str, wamid: str, *, route: status_routes.StatusRoute | None = None
) -> int:
    """Called by the send path once it knows an outbound message's wamid (and by the processor when
    it loses that race): records the wamid pointer (with the message's status route when given) and
    applies statuses that arrived early. Returns how many pending statuses were applied."""
    outbound_messages.attach_wamid(ws, message_id, wamid, route=route)
    applied = 0
    for pending in message_statuses.pending_statuses(wamid):
        if pending.ws not in (None, ws):
            continue
        result = message_statuses.apply_status(ws, message_id, pending.change)
        if result.outcome == "missing":
            continue
        _after_status(ws, pending.change, result)
        message_statuses.delete_pending_status(wamid, pending.change.status)
        applied += 1
    return applied
