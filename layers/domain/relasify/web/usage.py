"""Usage log: one structured log line per API request (route template, method, workspace, caller,
status, latency), `"message": "api usage"` with the fields under `usage`.

Why a log line and not a DynamoDB item: the usage log is statistics that nothing in the API reads
back, and an item per request cost a PutItem (2 WCU), a delete by the retention sweep a year later
and a worker thread. The line costs no request: it goes out with the function's other log lines.
The functions that serve `/v1` keep their log groups for the usage window (template.yaml: the API
functions' log groups, `RetentionInDays` 365 = `RetentionUsageDays`), so the log group is the usage
log. CloudWatch Logs Insights reads it, e.g.
`filter message = "api usage" | stats count(*) by usage.ws, usage.route`.

No personal data: a user is named by a digest of their sub (as the request budgets do), an API key
by its key id; no path (it may hold ids of people), no query, no body.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import Response

from relasify.errors import DomainError
from relasify.observability import logger

USAGE_MESSAGE = "api usage"


def flush(timeout: float = 5.0) -> None:
    """Nothing is written in the background any more (the line is logged with the response); kept
    for callers that waited for usage writes before counting requests (tests, the bench)."""


def actor_label(sub: str | None) -> str | None:
    """How the usage log names a caller: an API key by its id (`key:<id>`), a user by a digest."""
    if sub is None or sub.startswith("key:"):
        return sub
    return "user:" + hashlib.sha256(sub.encode()).hexdigest()[:32]


def usage_middleware(app: Any, next_middleware: Callable[[Any], Response]) -> Response:
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
        usage = {
            "request_id": app.current_event.request_context.request_id or "-",
            "ws": membership.ws if membership else (app.context.get("_route_args") or {}).get("ws"),
            "route": getattr(route, "path", "-"),
            "method": app.current_event.request_context.http.method,
            "status_code": status,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            "actor": actor_label(actor.sub if actor else None),
        }
        # At INFO or above whatever the configured level: the usage log must not depend on LOG_LEVEL.
        logger.log(max(logging.INFO, logger.log_level), USAGE_MESSAGE, extra={"usage": usage})
