"""The local gateway: API Gateway route precedence, payload format 2.0 events, response mapping,
and the JWT authorizer's refusals (the handler is never called for them)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from relasify_local.cfn import REPO_ROOT, load_template
from relasify_local.gateway import Gateway
from relasify_local.gateway_cors import cors_from_template
from relasify_local.gateway_events import HttpRequest, build_event, is_text_content_type, response_from_result
from relasify_local.gateway_routes import Route, RouteTable, routes_from_functions
from relasify_local.jwt_local import load_or_create_key, mint_token
from relasify_local.runtime import LocalFunction, function_url_paths, functions_from_template


class RecordingFunction(LocalFunction):
    """A function whose handler is a Python callable: records events, returns a canned result."""

    def __init__(self, logical_id: str, result: Any = None, error: Exception | None = None) -> None:
        super().__init__(logical_id=logical_id, code_dir=Path("/nonexistent"), handler="m.handler")
        self.result = {"statusCode": 200, "body": "{}"} if result is None else result
        self.error = error
        self.events: list[dict[str, Any]] = []

    def invoke(self, event: dict[str, Any]) -> Any:
        self.events.append(event)
        if self.error is not None:
            raise self.error
        return self.result


CONTACTS = RecordingFunction("ContactsApiFunction")
SEND = RecordingFunction("SendApiFunction")
WEBHOOK = RecordingFunction("WebhookReceiverFunction")

ARCHITECTURE_ROUTES = [
    Route("ANY", "/v1/workspaces", CONTACTS, True),
    Route("ANY", "/v1/workspaces/{proxy+}", CONTACTS, True),
    Route("ANY", "/v1/me", CONTACTS, True),
    Route("GET", "/health", CONTACTS, False),
    Route("ANY", "/v1/workspaces/{ws}/messages", SEND, True),
    Route("ANY", "/v1/workspaces/{ws}/messages/{proxy+}", SEND, True),
    Route("ANY", "/v1/workspaces/{ws}/templates", SEND, True),
    Route("ANY", "/v1/workspaces/{ws}/templates/{proxy+}", SEND, True),
    Route("GET", "/webhooks/whatsapp", WEBHOOK, False),
    Route("POST", "/webhooks/whatsapp", WEBHOOK, False),
]


@pytest.mark.parametrize(
    ("method", "path", "route_key", "params"),
    [
        ("POST", "/v1/workspaces", "ANY /v1/workspaces", {}),
        ("GET", "/v1/workspaces/w1", "ANY /v1/workspaces/{proxy+}", {"proxy": "w1"}),
        ("GET", "/v1/workspaces/w1/contacts/c1", "ANY /v1/workspaces/{proxy+}", {"proxy": "w1/contacts/c1"}),
        ("POST", "/v1/workspaces/w1/messages", "ANY /v1/workspaces/{ws}/messages", {"ws": "w1"}),
        (
            "GET",
            "/v1/workspaces/w1/messages/m1",
            "ANY /v1/workspaces/{ws}/messages/{proxy+}",
            {"ws": "w1", "proxy": "m1"},
        ),
        ("DELETE", "/v1/workspaces/w1/templates/hello", "ANY /v1/workspaces/{ws}/templates/{proxy+}", None),
        ("GET", "/health", "GET /health", {}),
        ("POST", "/webhooks/whatsapp", "POST /webhooks/whatsapp", {}),
        ("GET", "/v1/workspaces/a%20b/messages", "ANY /v1/workspaces/{ws}/messages", {"ws": "a b"}),
    ],
)
def test_routes_follow_api_gateway_precedence(method: str, path: str, route_key: str, params: dict | None) -> None:
    resolved = RouteTable(ARCHITECTURE_ROUTES).resolve(method, path)

    assert resolved is not None
    route, path_parameters = resolved
    assert route.route_key == route_key
    if params is not None:
        assert path_parameters == params


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/health"),  # only GET is declared
        ("GET", "/nothing"),
        ("GET", "/v1/workspaces/"),  # a greedy variable needs at least one segment
        ("PUT", "/webhooks/whatsapp"),
        ("GET", "/v1"),
    ],
)
def test_unrouted_requests_match_nothing(method: str, path: str) -> None:
    assert RouteTable(ARCHITECTURE_ROUTES).resolve(method, path) is None


def test_literal_beats_parameter_and_method_beats_any_and_default_is_last() -> None:
    literal, param, any_method, get_method, default = (RecordingFunction(n) for n in ("L", "P", "A", "G", "D"))
    table = RouteTable(
        [
            Route("ANY", "$default", default, True),
            Route("ANY", "/pets/{type}", param, True),
            Route("ANY", "/pets/dog", literal, True),
            Route("ANY", "/toys", any_method, True),
            Route("GET", "/toys", get_method, True),
        ]
    )

    assert table.resolve("GET", "/pets/dog")[0].function is literal
    assert table.resolve("GET", "/pets/cat")[0].function is param
    assert table.resolve("GET", "/toys")[0].function is get_method
    assert table.resolve("POST", "/toys")[0].function is any_method
    fallback = table.resolve("GET", "/elsewhere/deep")
    assert fallback[0].function is default
    assert fallback[0].route_key == "$default"


def test_routes_are_read_from_http_api_events_with_public_routes_marked() -> None:
    function = LocalFunction(
        "ContactsApiFunction",
        Path("/x"),
        "contacts_api.handler",
        events={
            "Health": {
                "Type": "HttpApi",
                "Properties": {"Path": "/health", "Method": "get", "Auth": {"Authorizer": "NONE"}},
            },
            "Workspaces": {"Type": "HttpApi", "Properties": {"Path": "/v1/workspaces", "Method": "ANY"}},
            "Queue": {"Type": "SQS", "Properties": {"Queue": "arn"}},
        },
    )

    routes = {route.route_key: route for route in routes_from_functions({"ContactsApiFunction": function})}

    assert set(routes) == {"GET /health", "ANY /v1/workspaces"}
    assert routes["GET /health"].requires_auth is False
    assert routes["ANY /v1/workspaces"].requires_auth is True


def test_a_function_url_is_served_at_the_paths_the_template_publishes_for_it() -> None:
    """template.yaml's receiver has a function URL (no HttpApi event); its WebhookUrl output names the
    path Meta calls. The local stack serves that path, every method, without the authorizer."""
    template = load_template()
    functions = functions_from_template(template, REPO_ROOT)
    assert functions["WebhookReceiverFunction"].url_paths == ("/webhooks/whatsapp",)
    assert function_url_paths(template, "ContactsApiFunction") == ()
    routes = [r for r in routes_from_functions(functions) if r.function.logical_id == "WebhookReceiverFunction"]
    assert [(r.method, r.path, r.requires_auth) for r in routes] == [("ANY", "/webhooks/whatsapp", False)]
    resolved = RouteTable(routes_from_functions(functions)).resolve("POST", "/webhooks/whatsapp")
    assert resolved is not None
    assert resolved[0].function.logical_id == "WebhookReceiverFunction"


def gateway_request(
    method: str = "GET", target: str = "/", headers: list[tuple[str, str]] | None = None, body: bytes = b""
) -> HttpRequest:
    return HttpRequest(method=method, target=target, headers=headers or [], body=body, source_ip="10.1.2.3")


def test_built_event_is_a_faithful_payload_format_2_event() -> None:
    route = Route("ANY", "/v1/workspaces/{ws}/messages/{proxy+}", SEND, True)
    request = gateway_request(
        "POST",
        "/v1/workspaces/w1/messages/m%2F1/retry?tag=a&tag=b&q=x%20y&empty=",
        [
            ("Content-Type", "application/json"),
            ("User-Agent", "pytest"),
            ("X-Multi", "one"),
            ("x-multi", "two"),
            ("Cookie", "session=abc; theme=dark"),
            ("Authorization", "Bearer t"),
        ],
        b'{"type": "text"}',
    )
    claims = {"sub": "user-1", "email": "a@example.com", "exp": 1700000000, "email_verified": True, "scope": "a b"}

    raw = build_event(
        request,
        route,
        {"ws": "w1", "proxy": "m/1/retry"},
        domain_name="127.0.0.1:3000",
        claims=claims,
        now=1700000000.5,
    )
    event = APIGatewayProxyEventV2(raw)

    assert event.version == "2.0"
    assert event.route_key == "ANY /v1/workspaces/{ws}/messages/{proxy+}"
    assert event.raw_path == "/v1/workspaces/w1/messages/m%2F1/retry"
    assert event.raw_query_string == "tag=a&tag=b&q=x%20y&empty="
    assert event.path == "/v1/workspaces/w1/messages/m%2F1/retry"
    assert event.http_method == "POST"
    assert event.headers["content-type"] == "application/json"
    assert all(name == name.lower() for name in event.headers)
    assert event.headers["x-multi"] == "one,two"
    assert "cookie" not in event.headers
    assert event.cookies == ["session=abc", "theme=dark"]
    assert event.query_string_parameters == {"tag": "a,b", "q": "x y", "empty": ""}
    assert event.path_parameters == {"ws": "w1", "proxy": "m/1/retry"}
    assert event.body == '{"type": "text"}'
    assert event.is_base64_encoded is False
    assert event.json_body == {"type": "text"}
    context = event.request_context
    assert context.stage == "$default"
    assert context.route_key == event.route_key
    assert context.account_id == "123456789012"
    assert context.api_id
    assert context.domain_name == "127.0.0.1:3000"
    assert context.request_id
    assert context.time == "14/Nov/2023:22:13:20 +0000"
    assert context.time_epoch == 1700000000500
    assert context.http.method == "POST"
    assert context.http.path == event.raw_path
    assert context.http.protocol == "HTTP/1.1"
    assert context.http.source_ip == "10.1.2.3"
    assert context.http.user_agent == "pytest"
    # API Gateway hands claims over as strings.
    assert context.authorizer.jwt_claim == {
        "sub": "user-1",
        "email": "a@example.com",
        "exp": "1700000000",
        "email_verified": "true",
        "scope": "a b",
    }
    assert context.authorizer.jwt_scopes == ["a", "b"]


def test_public_route_event_has_no_authorizer_and_no_optional_fields() -> None:
    raw = build_event(gateway_request("GET", "/health"), Route("GET", "/health", CONTACTS, False), {}, domain_name="d")
    event = APIGatewayProxyEventV2(raw)

    assert "authorizer" not in raw["requestContext"]
    assert event.request_context.authorizer.jwt_claim == {}
    assert event.body is None
    assert event.cookies == []
    assert event.query_string_parameters == {}
    assert event.path_parameters == {}
    assert event.raw_query_string == ""


@pytest.mark.parametrize(
    ("content_type", "is_text"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("application/problem+json", True),
        ("application/x-www-form-urlencoded", True),
        ("text/csv", True),
        ("application/xml", True),
        ("image/png", False),
        ("application/octet-stream", False),
        ("application/x-made-up", False),
        (None, False),
    ],
)
def test_text_content_types(content_type: str | None, is_text: bool) -> None:
    assert is_text_content_type(content_type) is is_text


def test_binary_body_arrives_base64_encoded() -> None:
    payload = bytes(range(256))
    raw = build_event(
        gateway_request("POST", "/upload", [("Content-Type", "image/png")], payload),
        Route("POST", "/upload", CONTACTS, False),
        {},
        domain_name="d",
    )
    event = APIGatewayProxyEventV2(raw)

    assert event.is_base64_encoded is True
    assert base64.b64decode(event.body) == payload


def test_lambda_result_is_mapped_back_to_http() -> None:
    response = response_from_result(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "application/json", "X-Id": "1"},
            "multiValueHeaders": {"X-Multi": ["a", "b"]},
            "cookies": ["a=1; Path=/", "b=2"],
            "body": base64.b64encode(b"\x00\x01").decode(),
            "isBase64Encoded": True,
        }
    )

    assert response.status == 201
    assert ("X-Id", "1") in response.headers
    assert ("X-Multi", "a") in response.headers
    assert ("X-Multi", "b") in response.headers
    assert [v for k, v in response.headers if k == "set-cookie"] == ["a=1; Path=/", "b=2"]
    assert response.body == b"\x00\x01"


def test_result_without_status_code_is_a_200_json_body_like_api_gateway() -> None:
    response = response_from_result({"hello": "world"})

    assert response.status == 200
    assert json.loads(response.body) == {"hello": "world"}


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory: pytest.TempPathFactory):
    return load_or_create_key(tmp_path_factory.mktemp("keys"))


def test_gateway_returns_api_gateway_404_for_unrouted_requests(signing_key) -> None:
    response = Gateway(ARCHITECTURE_ROUTES, signing_key).handle(gateway_request("GET", "/nope"))

    assert response.status == 404
    assert json.loads(response.body) == {"message": "Not Found"}


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-jwt", "Bearer ", "Basic abc"])
def test_gateway_refuses_missing_or_invalid_tokens_without_calling_the_handler(signing_key, authorization) -> None:
    function = RecordingFunction("Protected")
    headers = [("Authorization", authorization)] if authorization is not None else []

    response = Gateway([Route("ANY", "/v1/me", function, True)], signing_key).handle(
        gateway_request("GET", "/v1/me", headers)
    )

    assert response.status == 401
    assert json.loads(response.body) == {"message": "Unauthorized"}
    assert function.events == []


def test_gateway_refuses_expired_tokens(signing_key) -> None:
    function = RecordingFunction("Protected")
    expired = mint_token("a@example.com", key=signing_key, now=time.time() - 7200, ttl_seconds=60)

    response = Gateway([Route("ANY", "/v1/me", function, True)], signing_key).handle(
        gateway_request("GET", "/v1/me", [("Authorization", f"Bearer {expired}")])
    )

    assert response.status == 401
    assert function.events == []


def test_gateway_passes_verified_claims_to_the_handler(signing_key) -> None:
    function = RecordingFunction("Protected", result={"statusCode": 204})
    token = mint_token("a@example.com", sub="user-7", key=signing_key)

    response = Gateway([Route("ANY", "/v1/me", function, True)], signing_key).handle(
        gateway_request("GET", "/v1/me", [("Authorization", f"Bearer {token}")])
    )

    assert response.status == 204
    claims = APIGatewayProxyEventV2(function.events[0]).request_context.authorizer.jwt_claim
    assert claims["sub"] == "user-7"
    assert claims["email"] == "a@example.com"


def test_public_routes_need_no_token(signing_key) -> None:
    function = RecordingFunction(
        "Public", result={"statusCode": 200, "body": "ok", "headers": {"content-type": "text/plain"}}
    )

    response = Gateway([Route("GET", "/health", function, False)], signing_key).handle(
        gateway_request("GET", "/health")
    )

    assert response.status == 200
    assert response.body == b"ok"


def test_handler_exception_is_api_gateways_500(signing_key) -> None:
    function = RecordingFunction("Broken", error=RuntimeError("boom"))

    response = Gateway([Route("GET", "/health", function, False)], signing_key).handle(
        gateway_request("GET", "/health")
    )

    assert response.status == 500
    assert json.loads(response.body) == {"message": "Internal Server Error"}


def test_gateway_local_routes_take_precedence(signing_key) -> None:
    from relasify_local.gateway_events import HttpResponse

    gateway = Gateway(
        [Route("ANY", "$default", RecordingFunction("Default"), True)],
        signing_key,
        local_routes={("GET", "/docs"): lambda _: HttpResponse(200, [("content-type", "text/html")], b"<html>")},
    )

    assert gateway.handle(gateway_request("GET", "/docs")).body == b"<html>"
    assert gateway.handle(gateway_request("GET", "/docs?x=1")).body == b"<html>"


CORS_TEMPLATE = {
    "Resources": {
        "HttpApi": {
            "Type": "AWS::Serverless::HttpApi",
            "Properties": {
                "CorsConfiguration": {
                    "AllowOrigins": [{"Ref": "FrontendOrigin"}],
                    "AllowMethods": ["GET", "POST"],
                    "AllowHeaders": ["authorization", "content-type"],
                    "ExposeHeaders": ["location"],
                    "MaxAge": 600,
                }
            },
        }
    }
}


def _cors_gateway(signing_key, function: RecordingFunction) -> Gateway:
    cors = cors_from_template(CORS_TEMPLATE, lambda v: "http://localhost:5173" if isinstance(v, dict) else str(v))
    return Gateway([Route("ANY", "/v1/me", function, True)], signing_key, cors=cors)


def test_cors_preflight_is_answered_by_the_gateway_without_token_or_handler(signing_key) -> None:
    function = RecordingFunction("Protected")
    headers = [("Origin", "http://localhost:5173"), ("Access-Control-Request-Method", "POST")]

    response = _cors_gateway(signing_key, function).handle(gateway_request("OPTIONS", "/v1/me", headers))

    assert response.status == 204
    assert dict(response.headers) == {
        "access-control-allow-origin": "http://localhost:5173",
        "access-control-allow-methods": "GET,POST",
        "access-control-allow-headers": "authorization,content-type",
        "access-control-max-age": "600",
    }
    assert function.events == []


def test_cors_headers_are_set_for_allowed_origins_only(signing_key) -> None:
    function = RecordingFunction(
        "Protected", result={"statusCode": 200, "headers": {"Access-Control-Allow-Origin": "*"}}
    )
    gateway = _cors_gateway(signing_key, function)
    token = mint_token("a@example.com", key=signing_key)
    auth = ("Authorization", f"Bearer {token}")

    allowed = gateway.handle(gateway_request("GET", "/v1/me", [auth, ("Origin", "http://localhost:5173")]))
    refused = gateway.handle(gateway_request("GET", "/v1/me", [auth, ("Origin", "https://evil.example.com")]))
    unauthorized = gateway.handle(gateway_request("GET", "/v1/me", [("Origin", "http://localhost:5173")]))

    assert ("access-control-allow-origin", "http://localhost:5173") in allowed.headers
    assert ("access-control-expose-headers", "location") in allowed.headers
    assert not [h for h in allowed.headers if h == ("Access-Control-Allow-Origin", "*")]
    assert not [k for k, _ in refused.headers if k.lower() == "access-control-allow-origin"]
    assert unauthorized.status == 401
    assert ("access-control-allow-origin", "http://localhost:5173") in unauthorized.headers


PREVIEW_ORIGIN = "https://main.relasify-preview.pages.dev"


def _real_template_cors(signing_key, function: RecordingFunction, origins: tuple[str, ...]) -> Gateway:
    """The gateway as the local stack builds it: the repository's CorsConfiguration, origins from the environment."""
    from relasify_local.aws import LocalResources
    from relasify_local.cfn import load_template

    template = load_template()
    resources = LocalResources("http://moto.invalid", parameters={"FrontendOrigin": "https://app.relasify.id"})
    cors = cors_from_template(template, resources.resolve, allow_origins=origins)
    return Gateway([Route("ANY", "/v1/workspaces", function, True)], signing_key, cors=cors)


@pytest.mark.parametrize("origin", ["http://localhost:5173", PREVIEW_ORIGIN])
def test_preflight_from_a_configured_origin_is_204_with_the_templates_headers(signing_key, origin: str) -> None:
    function = RecordingFunction("Workspaces")
    gateway = _real_template_cors(signing_key, function, ("http://localhost:5173", PREVIEW_ORIGIN))
    headers = [
        ("Origin", origin),
        ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "authorization,content-type,idempotency-key"),
    ]

    response = gateway.handle(gateway_request("OPTIONS", "/v1/workspaces", headers))

    assert response.status == 204
    assert dict(response.headers) == {
        "access-control-allow-origin": origin,
        "access-control-allow-methods": "GET,POST,PUT,PATCH,DELETE,OPTIONS",
        "access-control-allow-headers": "authorization,content-type,idempotency-key",
        "access-control-max-age": "600",
    }
    assert function.events == []  # answered by the gateway, without a token, as API Gateway does


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example.com", "https://app.relasify.id", "https://other.relasify-preview.pages.dev", "null"],
)
def test_preflight_from_another_origin_gets_no_allow_origin(signing_key, origin: str) -> None:
    # app.relasify.id is the template's FrontendOrigin: locally only RELASIFY_CORS_ORIGINS counts.
    function = RecordingFunction(
        "Workspaces", result={"statusCode": 204, "headers": {"access-control-allow-origin": "*"}}
    )
    gateway = _real_template_cors(signing_key, function, ("http://localhost:5173", PREVIEW_ORIGIN))
    headers = [("Origin", origin), ("Access-Control-Request-Method", "POST")]

    response = gateway.handle(gateway_request("OPTIONS", "/v1/workspaces", headers))

    assert not [k for k, _ in response.headers if k.lower().startswith("access-control-")]


def test_responses_to_a_configured_origin_expose_location_and_retry_after(signing_key) -> None:
    function = RecordingFunction("Workspaces", result={"statusCode": 201, "headers": {"location": "/v1/workspaces/x"}})
    gateway = _real_template_cors(signing_key, function, (PREVIEW_ORIGIN,))
    auth = ("Authorization", f"Bearer {mint_token('a@example.com', key=signing_key)}")

    response = gateway.handle(gateway_request("POST", "/v1/workspaces", [auth, ("Origin", PREVIEW_ORIGIN)]))

    assert response.status == 201
    assert ("access-control-allow-origin", PREVIEW_ORIGIN) in response.headers
    assert ("access-control-expose-headers", "location,retry-after") in response.headers


def test_local_cors_origins_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from relasify_local.stack import DEV_CORS_ORIGINS, StackConfig

    monkeypatch.delenv("RELASIFY_CORS_ORIGINS", raising=False)
    assert StackConfig.from_env().cors_origins == DEV_CORS_ORIGINS
    assert "http://localhost:5173" in DEV_CORS_ORIGINS
    monkeypatch.setenv("RELASIFY_CORS_ORIGINS", f" http://localhost:3001 , {PREVIEW_ORIGIN}/ ")
    assert StackConfig.from_env().cors_origins == ("http://localhost:3001", PREVIEW_ORIGIN)
    monkeypatch.setenv("RELASIFY_CORS_ORIGINS", "")
    assert StackConfig.from_env().cors_origins == ()
