"""A local API Gateway HTTP API: routes from template.yaml, its authorizer, payload format 2.0.

Authorizer: with a JWT authorizer in the template, the gateway verifies tokens itself (the local
issuer's key standing in for Cognito) and passes claims as `authorizer.jwt.claims`. With a Lambda
REQUEST authorizer (template.yaml's CallerAuthorizer), API keys (`rk_...`) are checked by invoking
that very function, on every request (no result cache: a revoked key is refused at once), and JWTs
are verified locally and handed over as the context that function gives a user
(`relasify.web.authorizer.user_context`), as `authorizer.lambda`.

Its parts: `gateway_routes` (the routes and API Gateway's precedence among them), `gateway_events`
(requests as format 2.0 events, results mapped back the way API Gateway maps them) and
`gateway_cors` (the template's CorsConfiguration).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from relasify_local.gateway_cors import CorsConfig
from relasify_local.gateway_events import (
    API_ID,
    HttpRequest,
    HttpResponse,
    build_event,
    json_response,
    response_from_result,
)
from relasify_local.gateway_routes import Route, RouteTable
from relasify_local.jwt_local import LocalKeyPair, TokenRejectedError, authorizer_context, bearer_token, verify_token
from relasify_local.runtime import ACCOUNT_ID, REGION, LocalFunction, log_invocation_error

logger = logging.getLogger("relasify_local")

API_KEY_PREFIX = "rk_"  # bearer tokens the Lambda authorizer checks as API keys (SPEC 5c)
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway HTTP API request payload limit


def caller_authorizer_function(template: dict[str, Any], functions: dict[str, LocalFunction]) -> LocalFunction | None:
    """The function of the HttpApi's default Lambda authorizer (`FunctionArn: !GetAtt X.Arn`), if any."""
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") != "AWS::Serverless::HttpApi":
            continue
        auth = (resource.get("Properties") or {}).get("Auth") or {}
        config = (auth.get("Authorizers") or {}).get(auth.get("DefaultAuthorizer") or "") or {}
        arn = config.get("FunctionArn")
        if isinstance(arn, dict) and "Fn::GetAtt" in arn:
            target = arn["Fn::GetAtt"]
            logical_id = target.split(".", 1)[0] if isinstance(target, str) else target[0]
            return functions.get(logical_id)
    return None


NOT_FOUND = {"message": "Not Found"}
UNAUTHORIZED = {"message": "Unauthorized"}
INTERNAL_ERROR = {"message": "Internal Server Error"}

LocalRouteHandler = Callable[[HttpRequest], HttpResponse]


class Gateway:
    """Routing, authorisation and invocation, independent of the HTTP server (unit-testable)."""

    def __init__(
        self,
        routes: list[Route],
        signing_key: LocalKeyPair,
        *,
        local_routes: dict[tuple[str, str], LocalRouteHandler] | None = None,
        domain_name: str = "127.0.0.1:3000",
        cors: CorsConfig | None = None,
        caller_authorizer: LocalFunction | None = None,
    ) -> None:
        self.table = RouteTable(routes)
        # The template's Lambda authorizer (None: a JWT authorizer, checked here).
        self.caller_authorizer = caller_authorizer
        self.cors = cors
        self.signing_key = signing_key
        # Routes served by the gateway itself (Swagger UI, OpenAPI document), keyed by (method, path).
        self.local_routes = dict(local_routes or {})
        self.domain_name = domain_name

    def handle(self, request: HttpRequest) -> HttpResponse:
        if self.cors is None:
            return self._handle(request)
        origin = self.cors.allowed_origin(_header(request, "origin"))
        if origin and request.method.upper() == "OPTIONS" and _header(request, "access-control-request-method"):
            return self.cors.preflight(origin)
        return self.cors.decorate(self._handle(request), origin)

    def _handle(self, request: HttpRequest) -> HttpResponse:
        path = urlsplit(request.target).path or "/"
        local = self.local_routes.get((request.method.upper(), path))
        if local is not None:
            return local(request)
        resolved = self.table.resolve(request.method, path)
        if resolved is None:
            return json_response(404, NOT_FOUND)
        route, params = resolved
        authorizer = None
        if route.requires_auth:
            try:
                authorizer = self._authorize(request, route, params)
            except TokenRejectedError as rejected:
                logger.info("unauthorized %s: %s", route.route_key, rejected)
                return json_response(401, UNAUTHORIZED, [("www-authenticate", "Bearer")])
            except Exception as exc:  # an authorizer that fails is API Gateway's 500
                if self.caller_authorizer is not None:
                    log_invocation_error(self.caller_authorizer, exc)
                return json_response(500, INTERNAL_ERROR)
        event = build_event(request, route, params, domain_name=self.domain_name, authorizer=authorizer)
        try:
            result = route.function.invoke(event)
        except Exception as exc:
            log_invocation_error(route.function, exc)
            return json_response(500, INTERNAL_ERROR)
        try:
            return response_from_result(result)
        except Exception as exc:  # a malformed result is API Gateway's 500 too
            log_invocation_error(route.function, exc)
            return json_response(500, INTERNAL_ERROR)

    def _authorize(self, request: HttpRequest, route: Route, params: dict[str, str]) -> dict[str, Any]:
        """`requestContext.authorizer` for an accepted caller; TokenRejectedError when refused (401)."""
        header = _header(request, "authorization")
        token = bearer_token(header)
        if self.caller_authorizer is None:
            return authorizer_context(verify_token(token, self.signing_key))
        if token is not None and token.startswith(API_KEY_PREFIX):
            # Never logged: the key is the credential (SPEC 5c).
            event = build_event(request, route, params, domain_name=self.domain_name)
            event.update(
                type="REQUEST",
                routeArn=f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/$default/{request.method.upper()}"
                f"{urlsplit(request.target).path}",
                identitySource=[header],
            )
            answer = self.caller_authorizer.invoke(event)
            if not isinstance(answer, dict) or answer.get("isAuthorized") is not True:
                raise TokenRejectedError("api key refused by the authorizer")
            return {"lambda": dict(answer.get("context") or {})}
        from relasify.web.authorizer import user_context  # the context the authorizer gives a user

        return {"lambda": user_context(verify_token(token, self.signing_key))}


def _header(request: HttpRequest, name: str) -> str | None:
    return next((value for key, value in request.headers if key.lower() == name), None)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: GatewayHttpServer

    def _read_body(self) -> bytes | None:
        """The request body, or None when it exceeds API Gateway's payload limit."""
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            chunks: list[bytes] = []
            size = 0
            while True:
                chunk_size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if chunk_size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                size += chunk_size
                if size > MAX_PAYLOAD_BYTES:
                    self.close_connection = True
                    return None
                chunks.append(self.rfile.read(chunk_size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_PAYLOAD_BYTES:
            self.close_connection = True
            return None
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        body = self._read_body()
        if body is None:
            self._write(json_response(413, {"message": "Request Entity Too Large"}))
            return
        request = HttpRequest(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
        )
        try:
            response = self.server.gateway.handle(request)
        except Exception:
            logger.exception("gateway error")
            response = json_response(500, INTERNAL_ERROR)
        self._write(response)

    def _write(self, response: HttpResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("apigw-requestid", uuid.uuid4().hex[:16])
        self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def __getattr__(self, name: str) -> Any:
        # http.server answers a method without a `do_<METHOD>` with its own 501 HTML page; API Gateway
        # routes every method (TRACE, PROPFIND, made-up ones): unmatched ones reach the $default route.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (malformed request line, oversized headers) as JSON, not HTML."""
        self.close_connection = True
        status = code if 400 <= code < 500 else 400
        title = message or self.responses.get(code, ("Bad Request",))[0]
        body = {"type": "about:blank", "title": title, "status": status, "detail": explain or title}
        self._write(HttpResponse(status, [("content-type", "application/problem+json")], json.dumps(body).encode()))

    def log_message(self, format: str, *args: Any) -> None:
        # Only the request line's method and path reach the log (query strings may carry personal data).
        logger.debug("%s %s", self.command, urlsplit(getattr(self, "path", "")).path)


class GatewayHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int) -> None:
        super().__init__((host, port), _RequestHandler)
        self.gateway: Gateway | None = None  # type: ignore[assignment]
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._thread = threading.Thread(target=self.serve_forever, name="relasify-gateway", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=10)
        self.server_close()
