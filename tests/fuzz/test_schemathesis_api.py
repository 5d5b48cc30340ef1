"""Schemathesis against the merged OpenAPI document, in-process: every case goes through the local gateway
(routes, JWT authorizer, format 2.0 events) into the real handlers against moto.

Cases run as the owner of a real workspace whose id replaces every `ws` path parameter, so they reach the
handlers rather than the membership guard. Checks: Schemathesis' not_a_server_error, status_code_conformance,
content_type_conformance and response_schema_conformance (every status, media type and body is declared), and
every 4xx a handler produced is RFC 9457 problem+json with type, title, status and detail (the gateway's own
401/404 keep API Gateway's shape; the document declares its 401 body too).
FUZZ_MAX_EXAMPLES is the total case budget over all operations (stateful steps come on top).
"""

from __future__ import annotations

import copy
import json
import math
import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from relasify_local.openapi import merged_openapi
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation.modes import GenerationMode

from tests.fuzz.inprocess import APP_SECRET_PARAMETER, VERIFY_TOKEN_PARAMETER
from tests.fuzz.wsgi import GatewayWsgiApp, cases_run
from tests.support.api import ApiClient, gateway_and_key

OWNER = "fuzz-owner@relasify.test"
TOTAL_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "1200"))
STATEFUL_STEPS = int(os.environ.get("FUZZ_STATEFUL_EXAMPLES", "25"))
# Schemathesis' own checks against the document: no 5xx, and every status, content type and body is declared.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
GATEWAY_BODIES = ({"message": "Unauthorized"}, {"message": "Not Found"})
PROBLEM_FIELDS = ("type", "title", "status", "detail")

# Links the document does not declare, on each operation's declared success response.
LINKS: dict[tuple[str, str], dict[str, Any]] = {
    ("/v1/workspaces", "post"): {
        "GetWorkspace": {
            "operationId": "get_workspace_v1_workspaces__ws__get",
            "parameters": {"ws": "$response.body#/id"},
        },
    },
    ("/v1/workspaces/{ws}/contacts", "post"): {
        name: {"operationId": op, "parameters": {"contact_id": "$response.body#/id"}}
        for name, op in (
            ("GetContact", "get_contact_v1_workspaces__ws__contacts__contact_id__get"),
            ("PatchContact", "update_contact_v1_workspaces__ws__contacts__contact_id__patch"),
            ("DeleteContact", "delete_contact_v1_workspaces__ws__contacts__contact_id__delete"),
            ("ContactMessages", "conversation_v1_workspaces__ws__contacts__contact_id__messages_get"),
            ("SetConsent", "set_consent_v1_workspaces__ws__contacts__contact_id__consent_post"),
        )
    },
    # API keys (SPEC 5c): create -> revoke.
    ("/v1/workspaces/{ws}/api-keys", "post"): {
        "RevokeKey": {
            "operationId": "revoke_api_key_v1_workspaces__ws__api_keys__key_id__delete",
            "parameters": {"key_id": "$response.body#/id"},
        },
    },
    ("/v1/workspaces/{ws}/contacts/{contact_id}", "patch"): {
        "GetPatchedContact": {
            "operationId": "get_contact_v1_workspaces__ws__contacts__contact_id__get",
            "parameters": {"contact_id": "$response.body#/id"},
        },
    },
}


def fuzz_document() -> dict[str, Any]:
    gateway, _ = gateway_and_key()
    # Building the document imports every handler module, and the webhook receiver reads its secret names at
    # import: give it the in-process harness's names (tests/support/api.py), which the fixtures provide.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("APP_SECRET_PARAMETER", APP_SECRET_PARAMETER)
        patch.setenv("VERIFY_TOKEN_PARAMETER", VERIFY_TOKEN_PARAMETER)
        document = copy.deepcopy(merged_openapi(gateway.table))
    for (path, method), links in LINKS.items():
        responses = document["paths"][path][method]["responses"]
        (success,) = (code for code in responses if code.startswith("2"))
        responses[success]["links"] = links
    return document


DOCUMENT = fuzz_document()

schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.app = GatewayWsgiApp(gateway_and_key()[0])


OPERATIONS = [result.ok() for result in schema.get_all_operations()]
PER_OPERATION = max(1, math.ceil(TOTAL_EXAMPLES / len(OPERATIONS)))


def check_response(case: Any, response: Any) -> None:
    label = f"{case.method} {case.formatted_path}"
    assert response.status_code < 500, f"{label} -> {response.status_code}: {response.content[:500]!r}"
    if not 400 <= response.status_code < 500:
        return
    content_type = response.headers.get("content-type", [""])
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    body = json.loads(response.content) if response.content else None
    if body in GATEWAY_BODIES and response.status_code in (401, 404):
        return  # API Gateway's own answer (no token, no route), as in AWS
    assert content_type.startswith("application/problem+json"), f"{label} -> {response.status_code} {content_type}"
    assert isinstance(body, dict), f"{label}: problem body is {body!r}"
    missing = [field for field in PROBLEM_FIELDS if not body.get(field)]
    assert not missing, f"{label}: problem lacks {missing}: {body}"
    assert body["status"] == response.status_code, f"{label}: status {body['status']} != {response.status_code}"


@pytest.fixture(scope="module")
def owned_workspace(fuzz_api: ApiClient) -> tuple[str, str]:
    """(workspace id, bearer token) of a user who owns the workspace."""
    ws = fuzz_api.create_workspace(OWNER)
    return ws, fuzz_api.token(OWNER)


def as_owner(case: Any, ws: str, token: str) -> None:
    if "ws" in (case.path_parameters or {}):
        case.path_parameters["ws"] = ws
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


def fuzz_operation(operation: Any, ws: str, bearer: str, max_examples: int) -> None:
    """Positive and negative cases (schema-conforming and schema-violating data) for one operation,
    in workspace `ws` with `bearer` (a user's token or an API key) as the caller."""
    fixed = {"ws": ws} if any(p.name == "ws" for p in operation.path_parameters) else None
    cases = st.one_of(*(operation.as_strategy(generation_mode=mode, path_parameters=fixed) for mode in GenerationMode))

    @given(case=cases)
    @settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        as_owner(case, ws, bearer)
        response = case.call()
        cases_run["cases"] += 1
        case.validate_response(response, checks=CHECKS)
        check_response(case, response)

    run()


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_operation(operation: Any, owned_workspace: tuple[str, str]) -> None:
    ws, token = owned_workspace
    fuzz_operation(operation, ws, token, PER_OPERATION)


# The same operations with an admin API key of the workspace as the caller (SPEC 5c): a key's answers on
# every route (its workspace's: as an admin; /v1/me, /v1/workspaces, tickets: 403) are declared too.
KEY_OPERATIONS = [operation for operation in OPERATIONS if operation.path not in ("/health", "/webhooks/whatsapp")]
PER_KEY_OPERATION = max(2, PER_OPERATION // 3)


@pytest.fixture(scope="module")
def admin_key(fuzz_api: ApiClient) -> tuple[str, str]:
    """(workspace id, admin API key of it)."""
    ws = fuzz_api.create_workspace(OWNER, "Keyed")
    created = fuzz_api.post(f"/v1/workspaces/{ws}/api-keys", {"name": "fuzz", "role": "admin"}, as_user=OWNER)
    assert created.status == 201, created.body
    return ws, created.json["key"]


@pytest.mark.parametrize("operation", KEY_OPERATIONS, ids=lambda operation: operation.label)
def test_operation_with_an_api_key(operation: Any, admin_key: tuple[str, str]) -> None:
    ws, key = admin_key
    fuzz_operation(operation, ws, key, PER_KEY_OPERATION)  # the key in place of the owner's token


class OwnerStateMachine(schema.as_state_machine()):  # type: ignore[misc]
    api: ApiClient | None = None
    ws: str = ""
    token: str = ""

    def setup(self) -> None:
        # A fresh workspace per scenario: what one scenario created (a contact's phone, a closed workspace) must not
        # change the responses, and with them the bundles Hypothesis draws from, of a scenario it replays later
        # (Hypothesis reports that as FlakyStrategyDefinition).
        assert self.api is not None
        type(self).ws = self.api.create_workspace(OWNER, "Stateful")

    def before_call(self, case: Any) -> None:
        as_owner(case, self.ws, self.token)

    def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
        cases_run["stateful"] += 1
        case.validate_response(response, checks=CHECKS)
        check_response(case, response)


def test_stateful_links(fuzz_api: ApiClient, owned_workspace: tuple[str, str]) -> None:
    """Create workspace -> get it; create contact -> get/patch/delete it (and more along the declared links)."""
    # A workspace of its own: the per-operation cases may have closed the shared one.
    _, token = owned_workspace
    OwnerStateMachine.api, OwnerStateMachine.token = fuzz_api, token
    OwnerStateMachine.run(
        settings=settings(
            max_examples=STATEFUL_STEPS,
            stateful_step_count=5,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
