"""Unknown methods and paths over a real socket (SPEC section 10: "an unknown method or path is a 4xx
problem too"). The local gateway's HTTP server used to answer TRACE, PROPFIND and the like itself with
http.server's 501 HTML page. Now every method reaches the gateway, as in API Gateway: what no route
serves goes to the `$default` route (NotFoundFunction), a 404 problem+json; a method an API function
does not take on one of its paths is that function's 404 problem+json."""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from relasify_local.gateway import Gateway, GatewayHttpServer
from relasify_local.gateway_routes import RouteTable
from relasify_local.openapi import OpenApiRoutes

from tests.support.api import ApiClient

METHODS = ("TRACE", "PROPFIND", "MKCOL", "BREW", "CONNECT")
PATHS = ("/v1/workspaces/{ws}/contacts", "/webhooks/whatsapp", "/docs", "/no-such-path-{random}")
NOT_FOUND_TYPE = "https://relasify.id/problems/not-found"


@dataclass
class Served:
    host: str
    port: int
    api: ApiClient
    ws: str


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes


@pytest.fixture
def served(api: ApiClient) -> Iterator[Served]:
    """The in-process stack's gateway (template routes, its authorizer, /docs) on a localhost port."""
    ws = api.create_workspace("owner@example.com")
    table = RouteTable(api.gateway.table.routes)
    gateway = Gateway(
        table.routes,
        api.key,
        local_routes=OpenApiRoutes(table).local_routes(),
        caller_authorizer=api.gateway.caller_authorizer,
    )
    server = GatewayHttpServer("127.0.0.1", 0)
    server.start(gateway)
    try:
        yield Served("127.0.0.1", server.port, api, ws)
    finally:
        server.stop()


def _send(served: Served, method: str, target: str, *, authorised: bool = True) -> Answer:
    """One request with the request line exactly as given (http.client sends the target verbatim)."""
    connection = http.client.HTTPConnection(served.host, served.port, timeout=30)
    try:
        headers = {"content-length": "0"}
        if authorised:
            headers["authorization"] = f"Bearer {served.api.token('owner@example.com')}"
        connection.request(method, target, headers=headers)
        response = connection.getresponse()
        return Answer(response.status, response.getheader("content-type") or "", response.read())
    finally:
        connection.close()


def _assert_not_found_problem(answer: Answer) -> None:
    assert answer.status == 404, answer.body
    assert answer.content_type == "application/problem+json"
    problem = json.loads(answer.body)
    assert (problem["type"], problem["status"], problem["title"]) == (NOT_FOUND_TYPE, 404, "Not found")
    assert b"<html" not in answer.body.lower()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", METHODS)
def test_unknown_method_is_a_404_problem_on_every_path(served: Served, method: str, path: str) -> None:
    target = path.format(ws=served.ws, random=uuid.uuid4().hex)
    _assert_not_found_problem(_send(served, method, target))


@pytest.mark.parametrize("path", ["/webhooks/whatsapp", "/docs", "/no-such-path"])
def test_without_a_token_public_paths_answer_the_same_problem(served: Served, path: str) -> None:
    """The $default route is public: an unmatched request needs no token to be told 404."""
    _assert_not_found_problem(_send(served, "TRACE", path, authorised=False))


def test_without_a_token_a_v1_path_is_the_authorizers_401_first(served: Served) -> None:
    """`/v1/workspaces/{proxy+}` takes ANY method behind the JWT authorizer, which answers before the
    function sees the method: API Gateway's own 401 (docs/HARDENING.md lists this shape as its own)."""
    answer = _send(served, "PROPFIND", f"/v1/workspaces/{served.ws}/contacts", authorised=False)
    assert (answer.status, json.loads(answer.body)) == (401, {"message": "Unauthorized"})


def test_connect_in_authority_form_is_a_404_problem(served: Served) -> None:
    _assert_not_found_problem(_send(served, "CONNECT", "example.com:443"))


def test_unknown_path_with_a_known_method_is_a_404_problem(served: Served) -> None:
    _assert_not_found_problem(_send(served, "GET", "/no-such-path", authorised=False))
    _assert_not_found_problem(_send(served, "DELETE", "/webhooks/whatsapp", authorised=False))


def test_a_malformed_request_line_is_a_4xx_without_html(served: Served) -> None:
    """http.server's own refusals (here a request line it cannot parse) are JSON too."""
    import socket

    with socket.create_connection((served.host, served.port), timeout=30) as sock:
        sock.sendall(b"GET /a b c HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), head
    assert b"content-type: application/problem+json" in head.lower()
    assert json.loads(body)["status"] == 400
    assert b"<html" not in body.lower()
