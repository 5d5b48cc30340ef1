"""CORS on the local stack, over HTTP, as a browser sees it (the template's CorsConfiguration, origins
from RELASIFY_CORS_ORIGINS with the dev servers as default)."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import LocalStackProcess

DEV_ORIGIN = "http://localhost:5173"
PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}


def test_preflight_from_the_dev_frontend_is_204_without_a_token(local_stack: LocalStackProcess) -> None:
    with local_stack.client() as client:
        response = client.options("/v1/workspaces", headers={"Origin": DEV_ORIGIN, **PREFLIGHT})
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == DEV_ORIGIN
    assert set(response.headers["access-control-allow-methods"].split(",")) >= {"GET", "POST", "PATCH", "DELETE"}
    assert set(response.headers["access-control-allow-headers"].split(",")) == {
        "authorization",
        "content-type",
        "idempotency-key",
    }
    assert response.headers["access-control-max-age"] == "600"


def test_preflight_from_another_origin_gets_no_cors_headers(local_stack: LocalStackProcess) -> None:
    with local_stack.client() as client:
        response = client.options("/v1/workspaces", headers={"Origin": "https://evil.example", **PREFLIGHT})
    assert not [name for name in response.headers if name.lower().startswith("access-control-")], response.headers


def test_api_answers_to_the_dev_frontend_carry_its_origin_only(local_stack: LocalStackProcess) -> None:
    with local_stack.client(headers=local_stack.auth_headers("cors@example.com")) as client:
        allowed = client.get("/v1/workspaces", headers={"Origin": DEV_ORIGIN})
        refused = client.get("/v1/workspaces", headers={"Origin": "https://evil.example"})
    assert allowed.status_code == refused.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == DEV_ORIGIN
    assert allowed.headers["access-control-expose-headers"] == "location,retry-after"
    assert "access-control-allow-origin" not in refused.headers


def test_allowed_origins_are_configured_by_the_environment(local_stack_factory: Any) -> None:
    preview = "https://main.relasify-preview.pages.dev"
    stack = local_stack_factory("cors", {"RELASIFY_CORS_ORIGINS": f"{preview},http://localhost:3001"})
    with stack.client() as client:
        from_preview = client.options("/v1/me", headers={"Origin": preview, **PREFLIGHT})
        from_dev_default = client.options("/v1/me", headers={"Origin": DEV_ORIGIN, **PREFLIGHT})
    assert from_preview.status_code == 204
    assert from_preview.headers["access-control-allow-origin"] == preview
    assert "access-control-allow-origin" not in from_dev_default.headers
