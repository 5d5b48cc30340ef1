"""Outbound messages: the stored message written before or after the send, and the wamid Meta
gives it afterwards (its pointer first, then the message's attribute).

Apart from `relasify.data.messages` (the record, its reads and inbound writes) because only the
send paths write these; statuses that follow are in `relasify.data.message_statuses` and
`relasify.data.status_writes`.
"""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import UpdateError

from relasify import clock
from relasify.data import models as m
from relasify.data import timeline
from relasify.data.base import transaction
from relasify.data.ids import new_id
from relasify.data.messages import Message, conversation_sort_key, to_record
from relasify.data.status_routes import StatusRoute
from relasify.data.tx import is_condition_failure


def record_outbound(
    ws: str,
    contact_id: str,
    message_type: str,
    content: dict[str, Any],
    *,
    message_id: str | None = None,
    wamid: str | None = None,
    broadcast_id: str | None = None,
    sent_by: str | None = None,
) -> Message:
    """Store an outbound message (status `accepted`) in the conversation, before or after the send;
    its `biz_opaque_callback_data` lets status webhooks find it even before its wamid is known."""
    now = clock.now()
    message_id = message_id or new_id("msg")
    item = m.MessageModel(
        m.message_pk(ws, message_id),
        m.MessageModel.SK_VALUE,
        ws_id=ws,
        message_id=message_id,
        contact_id=contact_id,
        direction="out",
        message_type=message_type,
        content=content,
        wamid=wamid,
        status="accepted",
        status_rank=0,
        message_at=now,
        broadcast_id=broadcast_id,
        sent_by=sent_by,
    )
    timeline.place(item, conversation_sort_key(now, message_id))
    with transaction() as tx:
        tx.save(item, condition=m.MessageModel.pk.does_not_exist())
        if wamid:
            tx.save(wamid_pointer(ws, message_id, wamid), condition=m.WamidPointerModel.pk.does_not_exist())
    return to_record(item)


# --- the send path tells us the wamid ------------------------------------------------------------


def attach_wamid(ws: str, message_id: str, wamid: str, *, route: StatusRoute | None = None) -> bool:
    """Record Meta's id of an outbound message: the wamid pointer, then the message's `wamid`.

    Two plain writes, not a transaction (a transaction bills both items twice): the pointer first, so
    from the moment the message shows its wamid a status can be located by it, and a crash between
    the two leaves a pointer to a message whose status webhooks still find it (by the pointer, or by
    their callback data; either sets the wamid if it is missing). Both writes are idempotent (a
    retried call rewrites the same values). The pointer carries the message's status route, for
    statuses that come back without their callback data. False when the message is gone (erased
    while its send was in flight): the pointer is taken back."""
    pointer = wamid_pointer(ws, message_id, wamid)
    if route is not None and (route.ws, route.message_id) == (ws, message_id):
        pointer.route_contact_id = route.contact_id
        pointer.route_broadcast_id = route.broadcast_id or "-"
        pointer.route_month = route.month
    pointer.save()
    if not set_wamid(ws, message_id, wamid):
        delete_wamid_pointer(wamid)
        return False
    return True


def set_wamid(ws: str, message_id: str, wamid: str) -> bool:
    """The message's `wamid` (its pointer is written first: `attach_wamid`); False if the message is gone."""
    model = m.MessageModel
    item = model(m.message_pk(ws, message_id), model.SK_VALUE)
    try:
        # The send lease only matters while there is no wamid (relasify.data.outbox): dropped, so the
        # item stays under 1 KB.
        item.update(
            actions=[model.wamid.set(wamid), model.send_lease_until.remove(), model.touch()],
            condition=model.pk.exists(),
        )
    except UpdateError as exc:
        if not is_condition_failure(exc):
            raise
        return False
    return True


def wamid_pointer(ws: str, message_id: str, wamid: str) -> m.WamidPointerModel:
    """The item that leads a status webhook from Meta's wamid to our message (not yet written)."""
    return m.WamidPointerModel(
        m.wamid_pk(wamid), m.WamidPointerModel.SK_VALUE, wamid=wamid, ws_id=ws, message_id=message_id
    )


def delete_wamid_pointer(wamid: str) -> None:
    m.WamidPointerModel(m.wamid_pk(wamid), m.WamidPointerModel.SK_VALUE).delete()
