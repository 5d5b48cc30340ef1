"""The route of a status webhook, carried in `biz_opaque_callback_data` (set on every send; Meta echoes
it in each status): `rls2:<ws>:<message id>:<contact id>:<broadcast id or ->:<yyyy-mm of the message>`.
A claim, verified by the write that uses it (relasify.data.status_writes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from relasify import clock
from relasify.data.base import utc

CALLBACK_PREFIX = "rls2"
_NO_BROADCAST = "-"


@dataclass(frozen=True, slots=True)
class StatusRoute:
    """Where a status goes, as its callback data claims (verified by the write's condition)."""

    ws: str
    message_id: str
    contact_id: str
    broadcast_id: str | None
    month: str  # yyyy-mm of the message: the billing record's partition


def route_callback(
    ws: str, message_id: str, contact_id: str, broadcast_id: str | None, message_at: datetime | None = None
) -> str:
    """`biz_opaque_callback_data` for an outbound message (Meta allows 512 characters)."""
    month = utc(message_at or clock.now()).strftime("%Y-%m")  # type: ignore[union-attr]
    return f"{CALLBACK_PREFIX}:{ws}:{message_id}:{contact_id}:{broadcast_id or _NO_BROADCAST}:{month}"


def parse_status_callback(value: str | None) -> StatusRoute | None:
    if not value:
        return None
    parts = value.split(":")
    if len(parts) != 6 or parts[0] != CALLBACK_PREFIX or not all(parts[1:]):
        return None
    _prefix, ws, message_id, contact_id, broadcast, month = parts
    if len(month) != 7 or month[4] != "-" or not (month[:4] + month[5:]).isdigit():
        return None
    return StatusRoute(ws, message_id, contact_id, None if broadcast == _NO_BROADCAST else broadcast, month)
