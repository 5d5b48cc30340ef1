"""CORS of the local HTTP API (relasify_local.gateway): the template's CorsConfiguration, applied as API
Gateway applies it (preflights answered by the gateway, headers set on every response)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relasify_local.gateway_events import HttpResponse


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
