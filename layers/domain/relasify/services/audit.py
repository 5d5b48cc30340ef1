"""The security log: one writer for every function. Entries hold ids and non-personal facts only."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from relasify.observability import logger

REFUSAL_ACTION = "authorization.denied"


def record(
    ws: str | None,
    action: str,
    *,
    actor_id: str | None = None,
    target_ids: Iterable[str] = (),
    details: dict[str, Any] | None = None,
) -> None:
    """Append a security-log entry (retention class security, 24 months)."""
    from relasify.data.identity import identity_repository

    request_id = logger.get_correlation_id()
    identity_repository().append_audit(
        ws, action, actor_id=actor_id, target_ids=list(target_ids), request_id=request_id, details=details
    )


def count_refusal(ws: str | None, *, actor_id: str, reason: str, target_ids: Iterable[str] = (), **facts: str) -> None:
    """A refused request ("authorization.denied"), counted per actor, reason (with `facts`) and minute
    (`count_security_event`): every refusal is one UpdateItem, but a caller refused a thousand times a
    minute stores a handful of entries, not a thousand 24-month ones. In the workspace's log when `ws`
    is given (a member below the route's role), else in the global one (a workspace not theirs). A
    failed log write leaves the refusal a 403/404: the log line below stays."""
    from relasify.data.identity import identity_repository

    targets = list(target_ids)
    logger.info("authorization denied", extra={"reason": reason, "ws_id": ws, "target_ids": targets, **facts})
    # The actor goes into the entry's key as a digest: an id, kept short and fixed-width.
    actor_key = hashlib.sha256(actor_id.encode()).hexdigest()[:16]
    kind = "-".join((reason, *facts.values(), actor_key))
    try:
        identity_repository().count_security_event(
            REFUSAL_ACTION,
            kind,
            actor_id=actor_id,
            details={"reason": reason, **facts},
            ws=ws,
            target_ids=targets,
        )
    except Exception as exc:  # a throttled log write must not turn the 403/404 into a 5xx
        logger.warning("security log write failed", extra={"error_type": type(exc).__name__})
