"""Usage log: one record per API request (route template, workspace, actor id, status, latency).

Why a background thread and not a PutItem on the response path: the usage log is statistics,
and a synchronous write would add a DynamoDB round trip (~5-10 ms) to every API call. The
record is handed to a single worker thread that writes it while the response is returned;
if Lambda freezes the container first, the thread finishes on the next thaw. The bounded
risk (records of a container that is frozen and never thawed) is acceptable for usage
statistics; security-relevant events go to the security log synchronously instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from aws_lambda_powertools.event_handler import Response

from relasify import clock
from relasify.errors import DomainError
from relasify.observability import logger

_executor: ThreadPoolExecutor | None = None
_pending: list[Future[None]] = []


def _write(entry: Any) -> None:
    from relasify.data.identity import identity_repository

    try:
        identity_repository().append_usage(entry)
    except Exception as exc:  # never let statistics break anything
        logger.warning("usage log write failed", extra={"error_type": type(exc).__name__})


def _submit(entry: Any) -> None:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="usage-log")
    _pending[:] = [f for f in _pending if not f.done()]
    _pending.append(_executor.submit(_write, entry))


def flush(timeout: float = 5.0) -> None:
    """Wait for queued usage records (tests, and the local stack on shutdown)."""
    wait(list(_pending), timeout=timeout)


def usage_middleware(app: Any, next_middleware: Callable[[Any], Response]) -> Response:
    from relasify.data.records import UsageEntry

    started = time.perf_counter()
    status = 500
    try:
        response = next_middleware(app)
        status = response.status_code
        return response
    except DomainError as exc:
        status = exc.status
        raise
    finally:
        route = app.context.get("_route")
        membership = app.context.get("membership")
        actor = app.context.get("actor")
        entry = UsageEntry(
            request_id=app.current_event.request_context.request_id or "-",
            ws=membership.ws if membership else (app.context.get("_route_args") or {}).get("ws"),
            route=getattr(route, "path", "-"),
            method=app.current_event.request_context.http.method,
            status_code=status,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            actor_id=actor.sub if actor else None,
            at=clock.now(),
        )
        _submit(entry)
