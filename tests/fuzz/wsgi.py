"""A WSGI face for the local gateway, so Schemathesis calls the real routes, JWT authorizer and
handlers in-process (no sockets): a WSGI environ becomes the gateway's HttpRequest and back."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from relasify_local.gateway import Gateway
from relasify_local.gateway_events import HttpRequest, HttpResponse

# Cases run in this process (per-operation and stateful), for the terminal summary.
cases_run: dict[str, int] = {"cases": 0, "stateful": 0}


def _request_from_environ(environ: dict[str, Any]) -> HttpRequest:
    target = environ.get("RAW_URI") or environ.get("PATH_INFO", "/")
    if environ.get("QUERY_STRING") and "?" not in target:
        target = f"{target}?{environ['QUERY_STRING']}"
    headers = [(key[5:].replace("_", "-").lower(), value) for key, value in environ.items() if key.startswith("HTTP_")]
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers.append((key.replace("_", "-").lower(), environ[key]))
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    return HttpRequest(environ["REQUEST_METHOD"], target, headers, body)


class GatewayWsgiApp:
    """Every request through `gateway.handle`; each response is kept in `observed` for the checks."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.requests = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.requests += 1
        response: HttpResponse = self.gateway.handle(_request_from_environ(environ))
        reason = HTTPStatus(response.status).phrase if response.status in HTTPStatus._value2member_map_ else ""
        start_response(f"{response.status} {reason}", [(k, v) for k, v in response.headers])
        return [response.body]
