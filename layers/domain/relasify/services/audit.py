"""The security log: one writer for every function. Entries hold ids and non-personal facts only."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from relasify.observability import logger


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
