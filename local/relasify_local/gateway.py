"""A local API Gateway HTTP API: routes from template.yaml, its authorizer, payload format 2.0.

Authorizer: with a JWT authorizer in the template, the gateway verifies tokens itself (the local
issuer's key standing in for Cognito) and passes claims as `authorizer.jwt.claims`. With a Lambda
REQUEST authorizer (template.yaml's CallerAuthorizer), API keys (`rk_...`) are checked by invoking
that very function, on every request (no result cache: a revoked key is refused at once), and JWTs
are verified locally and handed over as the context that function gives a user
(`relasify.web.authorizer.user_context`), as `authorizer.lambda`.

Routing follows API Gateway's precedence: a literal path segment beats a `{param}`, which
beats a greedy `{proxy+}`; a route's own method beats `ANY`; `$default` comes last. Requests
become format 2.0 events, responses are mapped back the way API Gateway maps them.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from relasify_local.jwt_local import LocalKeyPair, TokenRejectedError, authorizer_context, bearer_token, verify_token
from relasify_local.runtime import ACCOUNT_ID, REGION, LocalFunction, log_invocation_error

logger = logging.getLogger("relasify_local")

API_ID = "relasifylocal"
API_KEY_PREFIX = "rk_"  # bearer tokens the Lambda authorizer checks as API keys (SPEC 5c)
DEFAULT_ROUTE = "$default"
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway HTTP API request payload limit
_LITERAL, _PARAM, _GREEDY = 0, 1, 2
_TEXT_TYPES = ("application/json", "application/x-www-form-urlencoded", "application/javascript", "application/xml")


@dataclass(frozen=True)
class Route:
    method: str  # upper case, or "ANY"
    path: str  # template path, e.g. /v1/workspaces/{ws}/messages/{proxy+}
    function: LocalFunction
    requires_auth: bool

    @property
    def route_key(self) -> str:
        return DEFAULT_ROUTE if self.path == DEFAULT_ROUTE else f"{self.method} {self.path}"

    @property
    def segments(self) -> list[str]:
        return [] if self.path in ("/", DEFAULT_ROUTE) else self.path.strip("/").split("/")

    def match(self, method: str, path: str) -> tuple[tuple[int, ...], dict[str, str]] | None:
        """(specificity, path parameters) when this route serves the request, else None."""
        if self.method not in ("ANY", method):
            return None
        method_rank = 1 if self.method == "ANY" else 0
        if self.path == DEFAULT_ROUTE:
            return (3, method_rank), {}
        parts = [] if path == "/" else path[1:].split("/")
        ranks: list[int] = []
        params: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            if segment.startswith("{") and segment.endswith("+}"):
                rest = parts[index:]
                if not rest or not any(rest):
                    return None
                params[segment[1:-2]] = unquote("/".join(rest))
                ranks.append(_GREEDY)
                return (*ranks, method_rank), params
            if index >= len(parts):
                return None
            if segment.startswith("{") and segment.endswith("}"):
                if not parts[index]:
                    return None
                params[segment[1:-1]] = unquote(parts[index])
                ranks.append(_PARAM)
            elif segment == parts[index]:
                ranks.append(_LITERAL)
            else:
                return None
        if len(parts) != len(self.segments):
            return None
        # A full match ranks ahead of a greedy match that agrees on every segment so far.
        return (*ranks, -1, method_rank), params


class RouteTable:
    def __init__(self, routes: list[Route]) -> None:
        self.routes = list(routes)

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        best: tuple[tuple[int, ...], Route, dict[str, str]] | None = None
        for route in self.routes:
            matched = route.match(method.upper(), path)
            if matched is None:
                continue
            specificity, params = matched
            if best is None or specificity < best[0]:
                best = (specificity, route, params)
        return (best[1], best[2]) if best else None


def routes_from_functions(functions: dict[str, LocalFunction]) -> list[Route]:
    """HttpApi events of every function; `Auth: {Authorizer: NONE}` marks a public route. A function
    URL (AuthType NONE) is served at the paths the template publishes for it, every method, public:
    its events have the same payload format 2.0."""
    routes = [
        Route("ANY", path, function, requires_auth=False)
        for function in functions.values()
        for path in function.url_paths
    ]
    for function in functions.values():
        for props in function.events_of_type("HttpApi").values():
            path = props.get("Path") or DEFAULT_ROUTE
            method = str(props.get("Method") or "ANY").upper()
            method = "ANY" if method in ("*", "X-AMAZON-APIGATEWAY-ANY-METHOD") else method
            authorizer = (props.get("Auth") or {}).get("Authorizer")
            routes.append(Route(method, path, function, requires_auth=authorizer != "NONE"))
    return routes


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


def is_text_content_type(content_type: str | None) -> bool:
    """API Gateway passes these bodies as text; everything else (binary, unknown) arrives base64-encoded."""
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type.startswith("text/") or media_type in _TEXT_TYPES or media_type.endswith(("+json", "+xml", "/xml"))


@dataclass(frozen=True)
class HttpRequest:
    method: str
    target: str  # request target as sent: path and query string, still percent-encoded
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"


def build_event(
    request: HttpRequest,
    route: Route,
    path_parameters: dict[str, str],
    *,
    domain_name: str,
    claims: dict[str, Any] | None = None,
    authorizer: dict[str, Any] | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The payload format 2.0 event API Gateway would send for this request."""
    split = urlsplit(request.target)
    raw_path = split.path or "/"
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    query: dict[str, str] = {}
    for key, value in parse_qsl(split.query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    timestamp = time.time() if now is None else now
    request_id = base64.b32encode(uuid.uuid4().bytes[:10]).decode().rstrip("=")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": raw_path,
        "rawQueryString": split.query,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": domain_name,
            "domainPrefix": domain_name.split(".", 1)[0].split(":", 1)[0],
            "http": {
                "method": request.method.upper(),
                "path": raw_path,
                "protocol": request.protocol,
                "sourceIp": request.source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route.route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(timestamp)),
            "timeEpoch": int(timestamp * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if claims is not None:
        event["requestContext"]["authorizer"] = authorizer_context(claims)
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    if request.body:
        if is_text_content_type(headers.get("content-type")):
            try:
                event["body"] = request.body.decode("utf-8")
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(request.body).decode()
                event["isBase64Encoded"] = True
        else:
            event["body"] = base64.b64encode(request.body).decode()
            event["isBase64Encoded"] = True
    return event


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def json_response(status: int, payload: Any, extra_headers: list[tuple[str, str]] | None = None) -> HttpResponse:
    return HttpResponse(
        status, [("content-type", "application/json"), *(extra_headers or [])], json.dumps(payload).encode()
    )


def response_from_result(result: Any) -> HttpResponse:
    """Map a format 2.0 Lambda result to HTTP as API Gateway does (including its guessing rules)."""
    if not isinstance(result, dict) or "statusCode" not in result:
        # Without a statusCode, API Gateway treats the whole result as a 200 JSON body.
        body = result if isinstance(result, str) else json.dumps(result)
        return HttpResponse(200, [("content-type", "application/json")], body.encode())
    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((name, str(value)))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((name, str(v)) for v in values)
    headers.extend(("set-cookie", str(cookie)) for cookie in result.get("cookies") or [])
    raw_body = result.get("body")
    if raw_body is None:
        body = b""
    elif result.get("isBase64Encoded"):
        body = base64.b64decode(raw_body)
    else:
        body = raw_body.encode() if isinstance(raw_body, str) else json.dumps(raw_body).encode()
    if not any(name.lower() == "content-type" for name, _ in headers) and body:
        headers.append(("content-type", "application/json"))
    return HttpResponse(int(result["statusCode"]), headers, body)


@dataclass(frozen=True)
class CorsConfig:
    """The HttpApi's CorsConfiguration. As in API Gateway, the gateway answers preflight requests
    itself and sets the CORS headers on every response (ignoring any the function returned)."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False

    def allowed_origin(self, origin: str | None) -> str | None:
        if not origin:
            return None
        if "*" in self.allow_origins:
            return "*"
        return origin if origin.lower() in {o.lower() for o in self.allow_origins} else None

    def preflight(self, origin: str) -> HttpResponse:
        headers = [("access-control-allow-origin", origin)]
        if self.allow_methods:
            headers.append(("access-control-allow-methods", ",".join(self.allow_methods)))
        if self.allow_headers:
            headers.append(("access-control-allow-headers", ",".join(self.allow_headers)))
        if self.max_age is not None:
            headers.append(("access-control-max-age", str(self.max_age)))
        if self.allow_credentials:
            headers.append(("access-control-allow-credentials", "true"))
        return HttpResponse(204, headers, b"")

    def decorate(self, response: HttpResponse, origin: str | None) -> HttpResponse:
        headers = [(k, v) for k, v in response.headers if not k.lower().startswith("access-control-")]
        if origin is None:
            return HttpResponse(response.status, headers, response.body)
        headers.append(("access-control-allow-origin", origin))
        if self.expose_headers:
            headers.append(("access-control-expose-headers", ",".join(self.expose_headers)))
        if self.allow_credentials:
            headers.append(("access-control-allow-credentials", "true"))
        return HttpResponse(response.status, headers, response.body)


def cors_from_template(
    template: dict[str, Any], resolve: Callable[[Any], str | None], *, allow_origins: tuple[str, ...] | None = None
) -> CorsConfig | None:
    """CorsConfiguration of the template's HttpApi, its values resolved (e.g. `!Ref FrontendOrigin`).

    `allow_origins` (the stack's RELASIFY_CORS_ORIGINS) replaces the template's origins: locally the
    frontend runs on a dev server, not on the deployed FrontendOrigin. A configuration written as one
    `!If` (origins that depend on a parameter) is read from its last branch, which the template keeps
    identical to the first except for the origins."""
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") != "AWS::Serverless::HttpApi":
            continue
        config = (resource.get("Properties") or {}).get("CorsConfiguration")
        if isinstance(config, dict) and isinstance(config.get("Fn::If"), list):
            config = config["Fn::If"][-1]
        if not isinstance(config, dict):
            continue

        def values(key: str, config: dict[str, Any] = config) -> tuple[str, ...]:
            items = config.get(key) or []
            return tuple(v for v in (resolve(item) for item in items) if v) if isinstance(items, list) else ()

        max_age = resolve(config.get("MaxAge")) if "MaxAge" in config else None
        return CorsConfig(
            allow_origins=allow_origins if allow_origins is not None else values("AllowOrigins"),
            allow_methods=values("AllowMethods"),
            allow_headers=values("AllowHeaders"),
            expose_headers=values("ExposeHeaders"),
            max_age=int(max_age) if max_age else None,
            allow_credentials=resolve(config.get("AllowCredentials")) == "true",
        )
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
