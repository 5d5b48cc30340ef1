"""`relasify dev` end to end: the stack starts as a subprocess, serves health, docs and the
merged OpenAPI document, applies the JWT authorizer, and stops cleanly on SIGINT."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from relasify.whatsapp.signature import sign

pytestmark = pytest.mark.e2e


def _nothing_listens_on(port: int) -> bool:
    """True when a connection to the port is refused (TIME_WAIT leftovers do not count)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_health_is_public(local_stack: Any) -> None:
    response = httpx.get(f"{local_stack.base_url}/health")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_swagger_ui_is_served_without_a_cdn(local_stack: Any) -> None:
    page = httpx.get(f"{local_stack.base_url}/docs")
    script = httpx.get(f"{local_stack.base_url}/docs/swagger-ui-bundle.js")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in page.text
    assert "https://" not in page.text  # assets come from the stack itself
    assert script.status_code == 200


def test_merged_openapi_document(local_stack: Any) -> None:
    response = httpx.get(f"{local_stack.base_url}/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert "/health" in document["paths"]
    assert "bearerAuth" in document["components"]["securitySchemes"]


@pytest.mark.parametrize(("method", "path"), [("GET", "/no/such/route"), ("TRACE", "/docs"), ("PROPFIND", "/x")])
def test_unknown_route_or_method_is_the_default_routes_404_problem(local_stack: Any, method: str, path: str) -> None:
    """SPEC section 10: the template's $default route (NotFoundFunction) answers what no route serves."""
    response = httpx.request(method, f"{local_stack.base_url}{path}")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "https://relasify.id/problems/not-found",
        "title": "Not found",
        "status": 404,
        "detail": "No such route",
    }


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-token"),
        pytest.param({"Authorization": "Bearer not-a-token"}, id="garbage-token"),
        pytest.param({"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}, id="unsigned-token"),
    ],
)
def test_v1_routes_refuse_missing_and_bad_tokens(local_stack: Any, headers: dict[str, str]) -> None:
    response = httpx.get(f"{local_stack.base_url}/v1/workspaces", headers=headers)

    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}


def test_v1_routes_refuse_expired_tokens(local_stack: Any) -> None:
    expired = local_stack.token(ttl_seconds=-60)

    response = httpx.get(f"{local_stack.base_url}/v1/workspaces", headers={"Authorization": f"Bearer {expired}"})

    assert response.status_code == 401


def test_v1_routes_accept_a_minted_token(local_stack: Any) -> None:
    response = httpx.get(f"{local_stack.base_url}/v1/workspaces", headers=local_stack.auth_headers())

    assert response.status_code != 401
    assert response.status_code < 500


def test_relasify_token_command_mints_an_accepted_token(local_stack: Any) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "relasify_local.cli",
            "token",
            "--email",
            "cli@example.com",
            "--state-dir",
            str(local_stack.state_dir),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    token = result.stdout.strip()

    response = httpx.get(f"{local_stack.base_url}/v1/workspaces", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code != 401


def test_stack_reports_where_everything_listens(local_stack: Any) -> None:
    env = local_stack.environment

    assert local_stack.info["base_url"] == local_stack.base_url
    assert env["AWS_ENDPOINT_URL"] == local_stack.moto_url
    assert env["TABLE_NAME"]
    # moto answers with the template's resources.
    tables = httpx.post(
        local_stack.moto_url,
        headers={
            "X-Amz-Target": "DynamoDB_20120810.ListTables",
            "Content-Type": "application/x-amz-json-1.0",
            "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20240101/ap-southeast-3/dynamodb/aws4_request",
        },
        content=b"{}",
    ).json()["TableNames"]
    assert env["TABLE_NAME"] in tables


def test_sigint_stops_everything_and_frees_the_ports(local_stack_factory: Any) -> None:
    stack = local_stack_factory("stopped-by-sigint")
    ports = [stack.ports["http"], stack.ports["moto"]]
    if stack.sandbox_url:
        ports.append(stack.ports["sandbox"])

    started = time.monotonic()
    exit_code = stack.stop()

    assert exit_code == 0, stack.log_tail()
    assert time.monotonic() - started < 15
    assert all(_nothing_listens_on(port) for port in ports)
    assert "Relasify local stack stopped" in stack.log_path.read_text()
    assert not (stack.state_dir / "stack.json").exists()


def test_webhook_verification_uses_the_seeded_verify_token(local_stack: Any) -> None:
    url = f"{local_stack.base_url}/webhooks/whatsapp"
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}

    accepted = httpx.get(url, params={**query, "hub.verify_token": "dev-verify-token"})
    refused = httpx.get(url, params={**query, "hub.verify_token": "wrong"})

    assert accepted.status_code == 200
    assert accepted.text == "1158201444"
    assert refused.status_code == 403


def test_webhook_signatures_are_checked_with_the_seeded_app_secret(local_stack: Any) -> None:
    body = json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()
    url = f"{local_stack.base_url}/webhooks/whatsapp"

    signed = httpx.post(
        url,
        content=body,
        headers={"content-type": "application/json", "x-hub-signature-256": sign(body, "dev-app-secret")},
    )
    forged = httpx.post(
        url,
        content=body,
        headers={"content-type": "application/json", "x-hub-signature-256": sign(body, "not-the-secret")},
    )

    assert signed.status_code == 200
    assert forged.status_code == 401


def test_graph_api_calls_go_to_the_sandbox(local_stack: Any) -> None:
    assert local_stack.sandbox_url is not None
    assert local_stack.environment["GRAPH_API_BASE_URL"] == local_stack.sandbox_url

    response = httpx.get(f"{local_stack.sandbox_url}/v23.0/unknown-object-id")

    assert response.status_code < 500
    assert response.headers["content-type"].startswith("application/json")
