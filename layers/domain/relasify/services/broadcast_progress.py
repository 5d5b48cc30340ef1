"""A broadcast's delivery counters fed by the status webhooks of its messages.

Its own module so that the status path (services/statuses.py) reaches the counters without importing
the broadcast pipeline (services/broadcast_pipeline.py), which sends through services/delivery.py.
"""

from __future__ import annotations

from relasify.data import broadcast_counters as counter_store
from relasify.data import messages as message_store


def on_status_applied(ws: str, message_id: str, status: str) -> None:
    """Count a status webhook that moved a broadcast message forward (call once per applied advance).

    `delivered` and `read` count messages that reached that state; a `read` that overtook its
    `delivered` (which then never applies) counts as delivered too.
    """
    if status not in ("delivered", "read", "failed"):
        return
    message = message_store.get_message(ws, message_id, consistent=True)
    if message is None or not message.broadcast_id:
        return
    if status == "delivered":
        counter_store.bump(ws, message.broadcast_id, delivered=1)
    elif status == "read":
        counter_store.bump(ws, message.broadcast_id, read=1, delivered=0 if message.delivered_at else 1)
    else:
        counter_store.bump(ws, message.broadcast_id, failed=1, sent=-1)
