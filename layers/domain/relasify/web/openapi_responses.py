"""The responses each route declares in the OpenAPI document (SPEC section 10), built in one place.

A generated client handles only what the document declares, so every status a route can answer is
declared: its real success status (201 for creates, 202 for accepted jobs, 204 without a body) and each
error as `application/problem+json` with the `Problem` schema. `route_responses` derives the common
errors from the route's kind (behind the JWT authorizer, under a workspace, reading a JSON body); a route
adds the statuses only its own logic answers (409 where it can conflict, 502/503 where it calls Graph).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Annotated, Any, get_args, get_origin, get_type_hints

from aws_lambda_powertools.event_handler.openapi.params import Body, Param
from pydantic import BaseModel, ConfigDict, Field

from relasify.web.problem_types import PROBLEM_CONTENT_TYPE

# Every API route: a request the validation refuses (query, path, body), and the rate limits.
COMMON_STATUSES = (422, 429)
# Routes behind the JWT authorizer: the gateway's own 401, or the function's (e.g. a deleted account).
AUTHORISED_STATUSES = (401,)
# Routes outside a workspace (/v1/me, /v1/workspaces, tickets): 403 for an API key (SPEC 5c: a key acts in
# its one workspace only).
ACCOUNT_STATUSES = (403,)
# Workspace routes: 404 for a workspace the caller is not a member of (no existence leak).
WORKSPACE_STATUSES = (404,)
# Workspace routes above the lowest role: 403 for a member below it.
ROLE_STATUSES = (403,)
# Routes that read a JSON body: malformed JSON or bad UTF-8 (400), too large (413), neither JSON nor said to be (415).
BODY_STATUSES = (400, 413, 415)
# Routes that call the WhatsApp Graph API: Meta's refusals (409, 422, 429) and its failures (502, 503).
GRAPH_STATUSES = (409, 502, 503)

# Statuses API Gateway itself may answer, before any function, with its own `{"message": ...}` body.
_GATEWAY_STATUSES = frozenset({401, 413})
_SUCCESS_DESCRIPTIONS = {200: "OK", 201: "Created", 202: "Accepted: the job runs in the background", 204: "No content"}
_ERROR_DESCRIPTIONS = {
    400: "Malformed request (JSON, encoding, a pagination cursor or a required header)",
    401: "Missing, invalid or expired bearer token (API Gateway's `{message}` body), or an account deleted "
    "since the token was issued (problem+json)",
    403: "The caller's role is too low for this action, or an API key called a route outside its workspace",
    404: "Not found, or a workspace the caller is not a member of",
    409: "Conflict with the current state",
    410: "Gone: what was asked for is no longer kept (e.g. changes older than the feed's window)",
    413: "Request body too large",
    415: "The body is neither JSON nor said to be JSON",
    422: "Request validation failed; `errors[]` names each field",
    429: "Too many requests; retry later",
    502: "The WhatsApp Business Platform answered with an error",
    503: "The WhatsApp Business Platform is unavailable; nothing was changed",
}


class _Schema(BaseModel):
    model_config = ConfigDict(defer_build=True)  # only the document needs these: built on first use


class ProblemFieldError(_Schema):
    """Where a request was invalid, without echoing the value (it may hold personal data)."""

    model_config = ConfigDict(defer_build=True, populate_by_name=True, extra="allow")

    location: str = Field(description="Path of the invalid item, e.g. `body/phone` or `query/limit`.")
    in_: str = Field(alias="in", description="body, query, path or header.")
    message: str
    type: str = Field(description="A stable error code, e.g. `missing`, `string_too_long`.")


class Problem(_Schema):
    """An RFC 9457 problem; clients match on the last path segment of `type`."""

    model_config = ConfigDict(defer_build=True, extra="allow")

    type: str = Field(
        description="A stable problem type URI, e.g. https://relasify.id/problems/not-found.",
        json_schema_extra={"format": "uri"},
    )
    title: str
    status: int = Field(description="The HTTP status, repeated.")
    detail: str
    # Present only when there is something to list: validation failures name each field.
    errors: list[ProblemFieldError] = Field(default_factory=list, description="Each invalid field, when any.")


class GatewayMessage(_Schema):
    """API Gateway's own error body, answered before any function runs."""

    message: str = Field(examples=["Unauthorized"])


def _error_response(status: int) -> dict[str, Any]:
    content: dict[str, Any] = {PROBLEM_CONTENT_TYPE: {"model": Problem}}
    if status in _GATEWAY_STATUSES:
        content["application/json"] = {"model": GatewayMessage}
    description = _ERROR_DESCRIPTIONS.get(status) or HTTPStatus(status).phrase
    return {"description": description, "content": content}


def reads_json_body(handler: Callable[..., Any]) -> bool:
    """Whether Powertools reads the handler's request body into a model: a parameter typed as a pydantic
    model (or a union of them), or marked `Body()`, and not marked as a query, path or header parameter."""
    try:
        hints = get_type_hints(handler, include_extras=True)
    except Exception:  # an annotation that cannot be resolved here: the house convention names it `body`
        return "body" in inspect.signature(handler).parameters
    for name, hint in hints.items():
        if name == "return":
            continue
        metadata: tuple[Any, ...] = ()
        if get_origin(hint) is Annotated:
            hint, *rest = get_args(hint)
            metadata = tuple(rest)
        if any(isinstance(marker, Body) for marker in metadata):
            return True
        if any(isinstance(marker, Param) for marker in metadata):
            continue
        if any(isinstance(t, type) and issubclass(t, BaseModel) for t in (hint, *get_args(hint))):
            return True
    return False


def route_responses(
    *,
    success: int = 200,
    authorised: bool = True,
    workspace: bool = False,
    role_checked: bool = False,
    body: bool = False,
    statuses: Iterable[int] = (),
) -> dict[int, Any]:
    """The OpenAPI `responses` of one route: its success status and every error status it can answer.

    The success response without `content` is filled in by Powertools from the handler's return annotation
    (`-> Model` or `-> Response[Model]`); 204 declares no body."""
    success_response: dict[str, Any] = {"description": _SUCCESS_DESCRIPTIONS.get(success, HTTPStatus(success).phrase)}
    if success == 204:
        success_response["content"] = {}
    errors = set(COMMON_STATUSES) | set(statuses)
    if authorised:
        errors |= set(AUTHORISED_STATUSES)
    if workspace:
        errors |= set(WORKSPACE_STATUSES)
    elif authorised:
        errors |= set(ACCOUNT_STATUSES)
    if role_checked:
        errors |= set(ROLE_STATUSES)
    if body:
        errors |= set(BODY_STATUSES)
    responses: dict[int, Any] = {success: success_response}
    responses.update({status: _error_response(status) for status in sorted(errors)})
    return responses
