"""The OpenAPI document declares every status a route can answer (SPEC section 10): its real success status,
and each error as application/problem+json with the Problem schema; the statuses come from one place
(relasify.web.openapi_responses via workspace_route / api_route), so a new route declares them untouched.
The fuzz tier (tests/fuzz) checks the running API against this document; these pin the document itself."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel
from relasify.data.memberships import Role
from relasify.web import auth
from relasify.web.auth import api_route, workspace_route
from relasify.web.openapi_responses import route_responses
from relasify_local.cfn import load_template
from relasify_local.gateway_routes import RouteTable, routes_from_functions
from relasify_local.openapi import merged_openapi
from relasify_local.runtime import functions_from_template

from tests.support.api import REPO_ROOT

PROBLEM = {"$ref": "#/components/schemas/Problem"}
GATEWAY = {"$ref": "#/components/schemas/GatewayMessage"}
METHODS = {"get", "put", "post", "patch", "delete"}
PLAIN_HANDLER_PATHS = {"/webhooks/whatsapp"}  # Meta's webhook: a plain handler, described from the template


@cache
def document() -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as patch:
        # The webhook receiver reads its secret names at import.
        patch.setenv("APP_SECRET_PARAMETER", "/unit/app-secret")
        patch.setenv("VERIFY_TOKEN_PARAMETER", "/unit/verify-token")
        functions = functions_from_template(load_template(), REPO_ROOT)
        return merged_openapi(RouteTable(routes_from_functions(functions)))


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document()["paths"].items():
        if path in PLAIN_HANDLER_PATHS:
            continue
        for method, operation in item.items():
            if method in METHODS:
                yield method.upper(), path, operation


def statuses(operation: dict[str, Any]) -> set[int]:
    return {int(code) for code in operation["responses"]}


def test_every_error_is_a_problem_and_only_gateway_statuses_also_take_its_message_body() -> None:
    checked = 0
    for method, path, operation in operations():
        for code, response in operation["responses"].items():
            if int(code) < 400:
                continue
            checked += 1
            content = response["content"]
            assert content["application/problem+json"]["schema"] == PROBLEM, f"{method} {path} {code}"
            expected = {"application/problem+json", "application/json"} if code in ("401", "413") else None
            if expected:
                assert set(content) == expected, f"{method} {path} {code}"
                assert content["application/json"]["schema"] == GATEWAY
            else:
                assert set(content) == {"application/problem+json"}, f"{method} {path} {code}: {set(content)}"
    assert checked > 150


def test_common_statuses_follow_the_kind_of_route() -> None:
    for method, path, operation in operations():
        declared = statuses(operation)
        label = f"{method} {path}"
        assert {422, 429} <= declared, label
        assert (401 in declared) == ("security" in operation), label  # authorised routes, not /health
        if "{ws}" in path:
            assert 404 in declared, label
        if "requestBody" in operation:
            assert {400, 413, 415} <= declared, label
        else:
            assert 415 not in declared, label  # only a body model reads (or refuses) a body


def test_403_only_above_the_lowest_role() -> None:
    forbidden = {f"{method} {path}" for method, path, operation in operations() if 403 in statuses(operation)}
    expected = {
        f"{policy.method} {policy.path.replace('<', '{').replace('>', '}')}"
        for policy in auth.ROUTE_POLICIES
        if policy.min_role > Role.AGENT
    }
    # An agent-level route whose service refuses agents some changes (assigning a colleague: admin).
    expected.add("PATCH /v1/workspaces/{ws}/conversations/{contact_id}")
    # Routes outside a workspace refuse API keys (SPEC 5c: a key acts in its one workspace only).
    expected |= {
        f"{method} {path}"
        for method, path, operation in operations()
        if not path.startswith("/v1/workspaces/{ws}") and 401 in statuses(operation)
    }
    assert "GET /v1/me" in expected
    assert forbidden == expected


def test_success_status_is_the_one_the_route_answers() -> None:
    success = {
        f"{method} {path}": [code for code in operation["responses"] if code.startswith("2")]
        for method, path, operation in operations()
    }
    assert all(len(codes) == 1 for codes in success.values()), success
    assert {label for label, codes in success.items() if codes != ["200"]} == {
        "POST /v1/workspaces",
        "POST /v1/workspaces/{ws}/members",
        "DELETE /v1/workspaces/{ws}/members/{user}",
        "DELETE /v1/workspaces/{ws}/whatsapp",
        "GET /v1/workspaces/{ws}/contacts/export",
        "POST /v1/workspaces/{ws}/contacts/imports",
        "POST /v1/workspaces/{ws}/contacts/imports/{import_id}/start",
        "POST /v1/workspaces/{ws}/contacts",
        "DELETE /v1/workspaces/{ws}/contacts/{contact_id}",
        "POST /v1/workspaces/{ws}/messages",
        "POST /v1/workspaces/{ws}/templates",
        "POST /v1/workspaces/{ws}/broadcasts",
        "DELETE /v1/me",
        "POST /v1/workspaces/{ws}/conversations/{contact_id}/notes",
        "POST /v1/workspaces/{ws}/canned-replies",
        "DELETE /v1/workspaces/{ws}/canned-replies/{reply_id}",
        "POST /v1/workspaces/{ws}/webhooks",
        "DELETE /v1/workspaces/{ws}/webhooks/{webhook_id}",
        "POST /v1/workspaces/{ws}/media",
        "POST /v1/realtime/tickets",
        "POST /v1/workspaces/{ws}/api-keys",
        "DELETE /v1/workspaces/{ws}/api-keys/{key_id}",
    }
    paths = document()["paths"]
    created = paths["/v1/workspaces/{ws}/contacts"]["post"]["responses"]["201"]
    assert created["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ContactOut"}
    accepted = paths["/v1/workspaces/{ws}/broadcasts"]["post"]["responses"]["202"]
    assert accepted["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/BroadcastOut"}
    assert paths["/v1/workspaces/{ws}/contacts/{contact_id}"]["delete"]["responses"]["204"]["content"] == {}


def test_409_only_where_a_route_can_conflict() -> None:
    conflicting = {f"{method} {path}" for method, path, operation in operations() if 409 in statuses(operation)}
    assert conflicting == {
        "POST /v1/workspaces",  # workspace id collision
        "POST /v1/workspaces/{ws}/members",  # already a member
        "PATCH /v1/workspaces/{ws}/members/{user}",  # the last owner
        "DELETE /v1/workspaces/{ws}/members/{user}",
        "PUT /v1/workspaces/{ws}/whatsapp",  # the number is another workspace's
        "POST /v1/workspaces/{ws}/contacts/imports/{import_id}/start",  # not uploaded yet
        "POST /v1/workspaces/{ws}/contacts",  # duplicate phone
        "PATCH /v1/workspaces/{ws}/contacts/{contact_id}",
        "POST /v1/workspaces/{ws}/messages",  # send refusals
        "POST /v1/workspaces/{ws}/templates",  # Graph refusals
        "POST /v1/workspaces/{ws}/templates/sync",
        "DELETE /v1/workspaces/{ws}/templates/{name}",
        "POST /v1/workspaces/{ws}/broadcasts",  # template not approved
        "POST /v1/workspaces/{ws}/broadcasts/{broadcast_id}/cancel",  # already finished
        "POST /v1/workspaces/{ws}/api-keys",  # the workspace's key limit
        "DELETE /v1/me",  # the last owner of a shared workspace
        "PATCH /v1/workspaces/{ws}/conversations/{contact_id}",  # concurrent writers outlasted the retries
        "POST /v1/workspaces/{ws}/conversations/{contact_id}/notes",
        "POST /v1/workspaces/{ws}/conversations/{contact_id}/read",  # Graph refusals (read receipt)
        "POST /v1/workspaces/{ws}/canned-replies",  # shortcut taken
        "PATCH /v1/workspaces/{ws}/canned-replies/{reply_id}",
        "POST /v1/workspaces/{ws}/webhooks",  # webhook-limit-reached (10 per workspace)
        "GET /v1/workspaces/{ws}/messages/{message_id}/media",  # media-not-ready
    }


def test_410_only_on_the_change_feed() -> None:
    gone = {f"{method} {path}" for method, path, operation in operations() if 410 in statuses(operation)}
    assert gone == {"GET /v1/workspaces/{ws}/changes"}  # changes-expired past the 48 h window


def test_the_webhook_receiver_declares_its_answers() -> None:
    webhook = document()["paths"]["/webhooks/whatsapp"]
    assert {code: set(r["content"]) for code, r in webhook["get"]["responses"].items()} == {
        "200": {"text/plain"},
        "403": {"application/problem+json"},
    }
    assert set(webhook["post"]["responses"]) == {"200", "400", "401"}
    assert webhook["post"]["responses"]["401"]["content"]["application/problem+json"]["schema"] == PROBLEM


def test_problem_schema_has_the_rfc_9457_members_and_field_errors() -> None:
    schemas = document()["components"]["schemas"]
    problem = schemas["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert problem["properties"]["status"]["type"] == "integer"
    assert problem["properties"]["type"]["format"] == "uri"
    errors = problem["properties"]["errors"]
    assert errors["type"] == "array"  # absent or a list, never null
    assert errors["items"] == {"$ref": "#/components/schemas/ProblemFieldError"}
    assert set(schemas["ProblemFieldError"]["required"]) == {"location", "in", "message", "type"}
    assert schemas["GatewayMessage"]["required"] == ["message"]


class _Note(BaseModel):
    text: str


def test_a_new_workspace_route_declares_the_common_statuses_without_passing_anything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Kept out of the real route registry the tenant-isolation tests walk.
    monkeypatch.setattr(auth, "ROUTE_POLICIES", [])
    monkeypatch.setattr(auth, "_POLICY_BY_RULE", {})
    router = APIGatewayHttpRouter()

    @workspace_route(router, "POST", "/v1/workspaces/<ws>/notes", Role.AGENT)
    def add_note(ws: str, note: _Note) -> _Note:  # a body model under any name
        return note

    @workspace_route(router, "DELETE", "/v1/workspaces/<ws>/notes/<note_id>", Role.ADMIN, success=204)
    def remove_note(ws: str, note_id: str) -> None:
        return None

    @api_route(router, "GET", "/v1/ping", public=True)
    def ping() -> _Note:
        return _Note(text="pong")

    app = APIGatewayHttpResolver(enable_validation=True)
    app.include_router(router)
    paths = app.get_openapi_schema().model_dump(by_alias=True, exclude_none=True)["paths"]

    assert set(paths["/v1/workspaces/{ws}/notes"]["post"]["responses"]) == {200, 400, 401, 404, 413, 415, 422, 429}
    assert set(paths["/v1/workspaces/{ws}/notes/{note_id}"]["delete"]["responses"]) == {204, 401, 403, 404, 422, 429}
    assert set(paths["/v1/ping"]["get"]["responses"]) == {200, 422, 429}


def test_route_responses_adds_the_route_own_statuses() -> None:
    responses = route_responses(success=201, workspace=True, statuses=(409, 503))

    assert set(responses) == {201, 401, 404, 409, 422, 429, 503}
    assert "content" not in responses[201]  # filled in from the handler's return annotation
    assert set(responses[409]["content"]) == {"application/problem+json"}
