"""The resolver mirrors the template's CORS origins (FRONTEND_ORIGIN + CORS_EXTRA_ORIGINS) for a preflight
that reaches a function; API Gateway and the local gateway answer most preflights themselves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

PREVIEW = "https://main.relasify-preview.pages.dev"


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from relasify.settings import get_settings
    from relasify.web.resolver import create_app

    monkeypatch.setenv("FRONTEND_ORIGIN", "https://app.relasify.id")
    monkeypatch.setenv("CORS_EXTRA_ORIGINS", f"{PREVIEW}, http://localhost:5173")
    get_settings.cache_clear()
    app = create_app()

    @app.get("/v1/ping")
    def ping() -> dict[str, str]:
        return {"ok": "yes"}

    yield app
    get_settings.cache_clear()


def _preflight(app: Any, origin: str) -> dict[str, Any]:
    event = {
        "version": "2.0",
        "routeKey": "OPTIONS /v1/ping",
        "rawPath": "/v1/ping",
        "rawQueryString": "",
        "headers": {"origin": origin, "access-control-request-method": "GET"},
        "requestContext": {
            "http": {"method": "OPTIONS", "path": "/v1/ping", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": "r1",
            "routeKey": "OPTIONS /v1/ping",
            "stage": "$default",
            "timeEpoch": 0,
        },
        "isBase64Encoded": False,
    }
    return app.resolve(event, None)


@pytest.mark.parametrize("origin", ["https://app.relasify.id", PREVIEW, "http://localhost:5173"])
def test_preflight_reaching_a_function_allows_the_configured_origins(app: Any, origin: str) -> None:
    response = _preflight(app, origin)
    assert response["statusCode"] == 204
    assert response["headers"]["Access-Control-Allow-Origin"] == origin


def test_preflight_reaching_a_function_from_another_origin_is_not_allowed(app: Any) -> None:
    response = _preflight(app, "https://evil.example")
    assert "Access-Control-Allow-Origin" not in (response.get("headers") or {})
