"""What a status webhook says about a message and what applying it did: the status ranks, the
`StatusChange` a webhook is reduced to, and the `StatusResult` of applying it.

Shared by the two status paths (`relasify.data.message_statuses`, `relasify.data.status_writes`)
and their service, apart from the message record so that neither path needs the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

STATUS_RANK: dict[str, int] = {"accepted": 0, "received": 0, "sent": 1, "delivered": 2, "read": 3, "failed": 4}
# The statuses a webhook may report before the send path knows the wamid (kept as PENDING#<status>).
PENDING_STATUSES: tuple[str, ...] = tuple(s for s in STATUS_RANK if s not in ("accepted", "received"))
BILLED_FLAG = "billed"


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One status webhook, reduced to what the message and billing record need."""

    wamid: str
    status: str
    at: datetime
    error_code: int | None = None
    error_title: str | None = None
    error_details: str | None = None
    pricing: dict[str, Any] | None = None
    billable: bool = False
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def rank(self) -> int:
        return STATUS_RANK[self.status]


StatusOutcome = Literal["applied", "unchanged", "missing"]


@dataclass(frozen=True, slots=True)
class StatusResult:
    outcome: StatusOutcome
    advanced: bool = False  # the message's status moved forward
    billed: bool = False  # a billing record was written
    contact_id: str | None = None
    message_id: str | None = None
    broadcast_id: str | None = None  # set for broadcast messages (their counters follow statuses)
