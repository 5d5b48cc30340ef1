"""JSON request bodies are read as JSON whatever their Content-Type says (SPEC section 10).

`curl -d '{"name": "Toko Budi"}'` sends `application/x-www-form-urlencoded`; Powertools' validation
would parse that body as a form and answer a baffling 422 ("Field required" plus an extra input named
after the JSON text). Routes that declare a JSON body model instead read the body as JSON when it
parses as JSON, and refuse it with 415 when it does not and its content type is not JSON either: a
body is never parsed as a form. Routes without a body model (the CSV import) read the raw body.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler.middlewares.openapi_validation import OpenAPIRequestValidationMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestUnsupportedContentType

NOT_JSON_DETAIL = "Request bodies must be JSON (Content-Type: application/json); this body is not valid JSON"


def is_json_media_type(content_type: str | None) -> bool:
    """application/json and the structured `+json` types (e.g. application/merge-patch+json)."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


class JsonBodyValidationMiddleware(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation with one change: how a body model's body is read."""

    def _get_body(self, app: Any) -> Any:
        content_type = app.current_event.headers.get("content-type") or ""
        if not content_type.strip() or is_json_media_type(content_type):
            return self._parse_json_data(app)  # malformed JSON stays a 400 naming where it broke
        try:
            return app.current_event.json_body
        except json.JSONDecodeError:
            # Neither said to be JSON nor JSON: refused as such, never guessed at (a form, a CSV).
            raise RequestUnsupportedContentType(
                "Unsupported content type",
                errors=[{"type": "unsupported_content_type", "loc": ("body",), "msg": NOT_JSON_DETAIL}],
            ) from None
