"""The gateway's HTTP server on a real localhost socket: bodies (binary, chunked, too large),
cookies in both directions, and a clean stop that frees the port."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from relasify_local.gateway import MAX_PAYLOAD_BYTES, Gateway, GatewayHttpServer
from relasify_local.gateway_routes import Route
from relasify_local.jwt_local import load_or_create_key
from relasify_local.runtime import LocalFunction


class EchoFunction(LocalFunction):
    """Echoes the request body back (base64 in, bytes out) and sets two cookies."""

    def __init__(self) -> None:
        super().__init__(logical_id="EchoFunction", code_dir=Path("/nonexistent"), handler="echo.handler")
        self.events: list[dict[str, Any]] = []

    def invoke(self, event: dict[str, Any]) -> Any:
        self.events.append(event)
        body = event.get("body") or ""
        raw = base64.b64decode(body) if event["isBase64Encoded"] else body.encode()
        return {
            "statusCode": 200,
            "headers": {"content-type": "application/octet-stream"},
            "cookies": ["a=1; Path=/", "b=2; HttpOnly"],
            "body": base64.b64encode(raw).decode(),
            "isBase64Encoded": True,
        }


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, EchoFunction]]:
    function = EchoFunction()
    server = GatewayHttpServer("127.0.0.1", 0)
    server.start(Gateway([Route("ANY", "/echo", function, False)], load_or_create_key(tmp_path)))
    try:
        yield f"http://127.0.0.1:{server.port}", function
    finally:
        server.stop()


def _nothing_listens_on(port: int) -> bool:
    """True when a connection to the port is refused (TIME_WAIT leftovers do not count)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_binary_body_round_trips_and_cookies_flow_both_ways(served: tuple[str, EchoFunction]) -> None:
    base_url, function = served
    payload = bytes(range(256)) * 4

    response = httpx.post(
        f"{base_url}/echo?x=1",
        content=payload,
        headers={"content-type": "application/octet-stream", "cookie": "session=abc; theme=dark"},
    )

    assert response.status_code == 200
    assert response.content == payload
    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    event = function.events[0]
    assert event["isBase64Encoded"] is True
    assert event["cookies"] == ["session=abc", "theme=dark"]
    assert event["queryStringParameters"] == {"x": "1"}


def test_chunked_request_body_is_reassembled(served: tuple[str, EchoFunction]) -> None:
    base_url, function = served

    def chunks() -> Iterator[bytes]:
        yield b'{"part": '
        yield b'"one", "more": "two"}'

    response = httpx.post(f"{base_url}/echo", content=chunks(), headers={"content-type": "application/json"})

    assert response.status_code == 200
    assert function.events[0]["body"] == '{"part": "one", "more": "two"}'
    assert function.events[0]["isBase64Encoded"] is False


def test_payload_over_api_gateways_limit_is_refused_before_the_handler(served: tuple[str, EchoFunction]) -> None:
    base_url, function = served

    response = httpx.post(f"{base_url}/echo", content=b"x" * (MAX_PAYLOAD_BYTES + 1))

    assert response.status_code == 413
    assert function.events == []


def test_stop_frees_the_port(tmp_path: Path) -> None:
    server = GatewayHttpServer("127.0.0.1", 0)
    server.start(Gateway([], load_or_create_key(tmp_path)))
    port = server.port
    assert httpx.get(f"http://127.0.0.1:{port}/x").status_code == 404

    server.stop()

    assert _nothing_listens_on(port)
