"""API Gateway's payload format 2.0, as the local HTTP API (relasify_local.gateway) speaks it: an HTTP
request as the event a function receives, and a function's result as the HTTP response API Gateway
makes of it (including its guessing rules)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from relasify_local.gateway_routes import Route
from relasify_local.jwt_local import authorizer_context
from relasify_local.runtime import ACCOUNT_ID

API_ID = "relasifylocal"
_TEXT_TYPES = ("application/json", "application/x-www-form-urlencoded", "application/javascript", "application/xml")


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
