"""RFC 9457 problem+json responses, built in one place for every API function."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from relasify.web.problem_types import PROBLEM_BASE, PROBLEM_CONTENT_TYPE, problem_type

__all__ = ["PROBLEM_BASE", "PROBLEM_CONTENT_TYPE", "problem", "problem_type", "validation_errors"]


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {"type": problem_type(slug), "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    body.update({k: v for k, v in extra.items() if v is not None})
    return Response(status_code=status, content_type=PROBLEM_CONTENT_TYPE, body=body, headers=headers)


def validation_errors(raw_errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic error dicts -> `errors[]` with a JSON-pointer-like location and a clear message.
    Input values are deliberately not echoed: they may hold personal data."""
    out = []
    for err in raw_errors:
        loc = [str(p) for p in err.get("loc", ())]
        out.append(
            {
                "location": "/".join(loc),
                "in": loc[0] if loc else "body",
                "message": str(err.get("msg") or err.get("type", "invalid value")),
                "type": str(err.get("type", "value_error")),
            }
        )
    return out
