"""A Powertools HTTP API resolver with central exception mapping (cookbook style)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from relasify.errors import DomainError
from relasify.observability import logger
from relasify.schemas.common import UNSTORABLE_NUMBER, first_unstorable_number, is_storable_number
from relasify.web.auth import charge_account_caller, check_access, has_caller, policy_of_current_route
from relasify.web.json_bodies import NOT_JSON_DETAIL, JsonBodyValidationMiddleware, is_json_media_type
from relasify.web.problems import problem, validation_errors

# Upper bound on JSON request bodies (bulk data goes through presigned S3 uploads instead).
MAX_JSON_BODY_BYTES = 256 * 1024


def _oversize(app: APIGatewayHttpResolver) -> Response | None:
    body = app.current_event.body
    if body and len(body) > MAX_JSON_BODY_BYTES * (4 / 3 if app.current_event.is_base64_encoded else 1):
        return problem(
            413, "payload-too-large", "Payload too large", f"Request bodies are limited to {MAX_JSON_BODY_BYTES} bytes"
        )
    return None


def _body_size_guard(app: APIGatewayHttpResolver, next_middleware: Any) -> Response:
    return _oversize(app) or next_middleware(app)


def _caller_budget_guard(app: APIGatewayHttpResolver, next_middleware: Any) -> Response:
    # Routes outside a workspace (/v1/me, POST /v1/workspaces, unknown paths) spend the caller's own
    # budget here; workspace routes spend it, and the workspace's, in the role guard.
    if policy_of_current_route(app) is None and has_caller(app):
        charge_account_caller(app)  # API keys are refused here (403)
    return next_middleware(app)


def _parse_json_int(text: str) -> int | Decimal:
    # A Decimal is flagged below; int() would raise (not 4xx) past Python's 4300-digit limit.
    number = Decimal(text)
    return int(number) if is_storable_number(number) else number


def loads_storable_json(text: str) -> Any:
    """Request bodies: `json.loads`, but NaN, Infinity, 1e400 (-> inf) and numbers DynamoDB cannot store
    are a 422 naming where they are, for every route, before any model sees them."""
    parsed = json.loads(text, parse_int=_parse_json_int)
    path = first_unstorable_number(parsed)
    if path is not None:
        error = {"type": "number_unstorable", "loc": ("body", *path), "msg": UNSTORABLE_NUMBER, "input": {}, "ctx": {}}
        raise RequestValidationError([error])
    return parsed


def _reads_json_body(app: APIGatewayHttpResolver, content_type: str) -> bool:
    # Routes with a body model read it as JSON whatever the content type (json_bodies.py); the others
    # (the CSV import) only when it says JSON.
    route = app.context.get("_route")
    return is_json_media_type(content_type) or bool(route is not None and route.dependant.body_params)


def _json_object_guard(app: APIGatewayHttpResolver, next_middleware: Any) -> Response:
    # Powertools validates a one-element list against a body model as if it were that element;
    # every JSON body of this API is an object.
    event = app.current_event
    content_type = event.headers.get("content-type") or "application/json"
    if event.body and event.http_method in ("POST", "PUT", "PATCH") and _reads_json_body(app, content_type):
        try:
            parsed = json.loads(event.decoded_body)
        except (ValueError, RecursionError):
            parsed = {}  # malformed bodies are the validation's business
        if not isinstance(parsed, dict):
            error = {"location": "body", "in": "body", "message": "Expected a JSON object", "type": "dict_type"}
            return problem(
                422, "validation-error", "Request validation failed", "The body must be a JSON object", errors=[error]
            )
    return next_middleware(app)


def create_app() -> APIGatewayHttpResolver:
    """Build the resolver every API function uses, with problem+json for every error."""
    from relasify.settings import get_settings

    settings = get_settings()
    # API Gateway answers preflights and sets CORS headers itself (the template's CorsConfiguration);
    # the same origins here keep a preflight that reaches a function consistent with it.
    cors = CORSConfig(
        allow_origin=settings.frontend_origin,
        extra_origins=[origin.strip() for origin in settings.cors_extra_origins.split(",") if origin.strip()],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        max_age=600,
    )
    app = APIGatewayHttpResolver(enable_validation=True, cors=cors, json_body_deserializer=loads_storable_json)
    # Powertools keeps its request validation here; ours reads JSON bodies whatever the content type.
    app._request_validation_middleware = JsonBodyValidationMiddleware()
    from relasify.web.usage import usage_middleware

    app.use(middlewares=[usage_middleware, _caller_budget_guard, _body_size_guard, _json_object_guard])

    @app.exception_handler(DomainError)
    def _domain_error(exc: DomainError) -> Response:
        return problem(
            exc.status,
            exc.type_slug,
            exc.title,
            exc.detail,
            # Services may name a field pydantic-style (`loc`, `msg`): every `errors[]` item has one shape.
            errors=[validation_errors([e])[0] if "loc" in e else e for e in exc.errors] or None,
            headers=exc.headers,
            **exc.extra,
        )

    def _access_denied() -> Response | None:
        # Powertools validates the request before route middlewares run; a caller who may not
        # use the route must learn that (404/403), not how the body was wrong; an oversize body
        # is refused as such (413) before anyone looks inside it.
        policy = policy_of_current_route(app)
        try:
            if policy is not None:
                check_access(app, policy.min_role)
            elif has_caller(app):
                charge_account_caller(app)  # a stream of malformed bodies spends the budget too
        except DomainError as denied:
            return _domain_error(denied)
        return _oversize(app)

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported_content_type(_: RequestUnsupportedContentType) -> Response:
        return _access_denied() or problem(415, "unsupported-media-type", "Unsupported media type", NOT_JSON_DETAIL)

    @app.exception_handler(RequestValidationError)
    def _validation_error(exc: RequestValidationError) -> Response:
        denied = _access_denied()
        if denied is not None:
            return denied
        errors = validation_errors(list(exc.errors()))
        if any(e["type"] == "json_invalid" for e in errors):
            return problem(400, "malformed-json", "Malformed JSON", "The request body is not valid JSON", errors=errors)
        return problem(
            422, "validation-error", "Request validation failed", "One or more fields are invalid", errors=errors
        )

    @app.exception_handler(json.JSONDecodeError)
    def _json_error(_: json.JSONDecodeError) -> Response:
        return _access_denied() or problem(
            400, "malformed-json", "Malformed JSON", "The request body is not valid JSON"
        )

    @app.exception_handler(RecursionError)
    def _too_deep(_: RecursionError) -> Response:
        # json.loads recurses once per nesting level; thousands of levels exhaust the stack.
        return _access_denied() or problem(
            400, "malformed-json", "Malformed JSON", "The request body is nested too deeply"
        )

    @app.exception_handler(UnicodeDecodeError)
    def _unicode_error(_: UnicodeDecodeError) -> Response:
        return _access_denied() or problem(
            400, "invalid-encoding", "Invalid encoding", "The request body is not valid UTF-8"
        )

    @app.exception_handler(NotFoundError)
    def _not_found(_: NotFoundError) -> Response:
        return problem(404, "not-found", "Not found", "No such route")

    @app.exception_handler(ServiceError)
    def _service_error(exc: ServiceError) -> Response:
        return problem(exc.status_code, "http-error", exc.msg, exc.msg)

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # Only the exception type is logged: messages may carry personal data.
        logger.error("unhandled error", extra={"error_type": type(exc).__name__})
        return problem(500, "internal-error", "Internal error", "Something went wrong; the request was not completed")

    return app
