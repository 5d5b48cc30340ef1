"""The HTTP API's `$default` route: a request no route serves (an unknown path, or a method its path does
not take, such as TRACE, PROPFIND or a made-up one) is a 404 problem (SPEC section 10), the same one the
API functions answer for an unknown route, instead of API Gateway's bare `{"message": "Not Found"}`.

Public and stateless: it reads nothing, stores nothing and logs nothing (the API's access log has the
request line). Deliberately free of Powertools and the domain code: it only has to be fast."""

from __future__ import annotations

import json
from typing import Any

from relasify.web.problem_types import PROBLEM_CONTENT_TYPE, problem_type

_BODY = json.dumps({"type": problem_type("not-found"), "title": "Not found", "status": 404, "detail": "No such route"})


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 404, "headers": {"content-type": PROBLEM_CONTENT_TYPE}, "body": _BODY}
