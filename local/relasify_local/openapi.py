"""The merged OpenAPI document of every API function, and Swagger UI to browse it.

Each API function's Powertools resolver (`app` in its handler module) describes its own
routes; Powertools' OpenAPIMerge joins them. Operations behind the JWT authorizer get the
bearer security requirement, public ones (health, webhooks) none. A module that is missing
or fails to import is skipped with a warning, so /docs keeps working while code is in flux.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from relasify_local.gateway_events import HttpRequest, HttpResponse, json_response
from relasify_local.gateway_routes import Route, RouteTable
from relasify_local.runtime import LocalFunction

logger = logging.getLogger("relasify_local")

API_TITLE = "Relasify API"
API_VERSION = "1.0.0"
SECURITY_SCHEME = "bearerAuth"
_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def api_functions(table: RouteTable) -> list[LocalFunction]:
    seen: dict[str, LocalFunction] = {}
    for route in table.routes:
        seen.setdefault(route.function.logical_id, route.function)
    return list(seen.values())


def merged_openapi(table: RouteTable, server_url: str | None = None) -> dict[str, Any]:
    from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, Server

    merge = OpenAPIMerge(
        title=API_TITLE,
        version=API_VERSION,
        description="Relasify backend, served by the local stack. Mint a token with `relasify token --email ...`.",
        servers=[Server(url=server_url)] if server_url else None,
        security_schemes={SECURITY_SCHEME: HTTPBearer(bearerFormat="JWT")},
        on_conflict="first",
    )
    undescribed: list[LocalFunction] = []
    for function in api_functions(table):
        module = function.try_load()
        route_groups = getattr(module, "routes", None) if module is not None else None
        if hasattr(route_groups, "include_all"):
            route_groups.include_all()  # an API that loads its route groups on first use: describe them all
        app = getattr(module, "app", None) if module is not None else None
        if app is None or not hasattr(app, "get_openapi_schema"):
            if module is not None:
                undescribed.append(function)
            continue
        try:
            merge.add_schema(app.get_openapi_schema())
        except Exception as exc:
            logger.warning("%s: OpenAPI schema failed (%s); left out", function.logical_id, type(exc).__name__)
    if undescribed:
        merge.add_schema(_route_only_schema(table, undescribed))
    document: dict[str, Any] = json.loads(merge.get_openapi_json_schema())
    _apply_security(document, table)
    return document


def _route_only_schema(table: RouteTable, functions: list[LocalFunction]) -> dict[str, Any]:
    """Operations for plain handlers (no resolver, e.g. the webhook receiver), from their template routes."""
    ids = {f.logical_id for f in functions}
    # A plain handler may declare its routes' responses as OPENAPI_RESPONSES = {method: {status: response}}.
    declared = {f.logical_id: getattr(f.try_load(), "OPENAPI_RESPONSES", None) or {} for f in functions}
    paths: dict[str, dict[str, Any]] = {}
    for route in table.routes:
        if route.function.logical_id not in ids or route.method == "OPTIONS" or "+}" in route.path:
            continue
        if route.method == "ANY":  # a function URL's route: the methods the handler declares
            for method in declared[route.function.logical_id]:
                _add_operation(paths, replace(route, method=method.upper()), declared)
            continue
        _add_operation(paths, route, declared)
    return {"paths": paths}


def _add_operation(paths: dict[str, dict[str, Any]], route: Route, declared: dict[str, dict[str, Any]]) -> None:
    parameters = [
        {"name": segment[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
        for segment in route.segments
        if segment.startswith("{")
    ]
    operation: dict[str, Any] = {
        "summary": route.route_key,
        "description": f"Served by {route.function.logical_id}, a plain handler without an OpenAPI model.",
        "operationId": re.sub(r"[^A-Za-z0-9]+", "_", f"{route.function.logical_id}_{route.route_key}").strip("_"),
        "responses": declared[route.function.logical_id].get(route.method)
        or {"default": {"description": "See the function's documentation"}},
    }
    if parameters:
        operation["parameters"] = parameters
    paths.setdefault(route.path, {})[route.method.lower()] = operation


# Every authorised operation may answer this: the caller's or the workspace's request budget is
# used up (relasify.services.rate_limits). Declared here, once, for all of them.
RATE_LIMITED_RESPONSE: dict[str, Any] = {
    "description": "Too many requests: the caller's or the workspace's request budget is used up",
    "headers": {
        "Retry-After": {
            "description": "Seconds until a request fits the budget again",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
    "content": {
        "application/problem+json": {
            "schema": {
                "type": "object",
                "required": ["type", "title", "status", "detail"],
                "properties": {
                    "type": {"type": "string", "examples": ["https://relasify.id/problems/rate-limited"]},
                    "title": {"type": "string"},
                    "status": {"type": "integer", "enum": [429]},
                    "detail": {"type": "string"},
                    "retry_after": {"type": "integer", "minimum": 1},
                    "budget": {"type": "string", "enum": ["user", "workspace"]},
                },
            }
        }
    },
}


def _apply_security(document: dict[str, Any], table: RouteTable) -> None:
    """Mark operations served by authorised routes as needing the bearer token (and as subject to
    the request budgets: 429)."""
    for path, item in (document.get("paths") or {}).items():
        concrete = path.replace("{", "").replace("}", "")  # any value matches a {param} segment
        for method, operation in item.items():
            if method not in _HTTP_METHODS or not isinstance(operation, dict):
                continue
            resolved = table.resolve(method.upper(), concrete)
            if resolved is not None and resolved[0].requires_auth:
                operation["security"] = [{SECURITY_SCHEME: []}]
                operation.setdefault("responses", {}).setdefault("429", RATE_LIMITED_RESPONSE)
            else:
                operation.pop("security", None)


def _swagger_asset_dir() -> Path:
    import aws_lambda_powertools.event_handler.openapi.swagger_ui as swagger_ui

    return Path(swagger_ui.__file__).parent


@cache
def _asset(name: str) -> bytes:
    if name == "swagger.html":
        return resources.files("relasify_local").joinpath("swagger.html").read_bytes()
    return (_swagger_asset_dir() / name).read_bytes()


class OpenApiRoutes:
    """GET /docs, its assets, and GET /openapi.json, served by the gateway itself."""

    def __init__(self, table: RouteTable, server_url: str | None = None) -> None:
        self.table = table
        self.server_url = server_url
        self._document: bytes | None = None
        self._lock = threading.Lock()

    def document(self) -> bytes:
        with self._lock:
            if self._document is None:
                self._document = json.dumps(merged_openapi(self.table, self.server_url), indent=2).encode()
            return self._document

    def openapi_json(self, _: HttpRequest) -> HttpResponse:
        try:
            return HttpResponse(200, [("content-type", "application/json")], self.document())
        except Exception:
            logger.exception("building the OpenAPI document failed")
            return json_response(500, {"message": "Internal Server Error"})

    @staticmethod
    def docs_page(_: HttpRequest) -> HttpResponse:
        return HttpResponse(200, [("content-type", "text/html; charset=utf-8")], _asset("swagger.html"))

    @staticmethod
    def swagger_js(_: HttpRequest) -> HttpResponse:
        body = _asset("swagger-ui-bundle.min.js")
        return HttpResponse(200, [("content-type", "application/javascript"), ("cache-control", "max-age=3600")], body)

    @staticmethod
    def swagger_css(_: HttpRequest) -> HttpResponse:
        body = _asset("swagger-ui.min.css")
        return HttpResponse(200, [("content-type", "text/css"), ("cache-control", "max-age=3600")], body)

    def local_routes(self) -> dict[tuple[str, str], Any]:
        return {
            ("GET", "/docs"): self.docs_page,
            ("GET", "/docs/"): self.docs_page,
            ("GET", "/docs/swagger-ui-bundle.js"): self.swagger_js,
            ("GET", "/docs/swagger-ui.css"): self.swagger_css,
            ("GET", "/openapi.json"): self.openapi_json,
        }
