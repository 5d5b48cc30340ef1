"""The local HTTP API's routes (relasify_local.gateway): the template's HttpApi events and function URLs,
matched with API Gateway's precedence: a literal path segment beats a `{param}`, which beats a greedy
`{proxy+}`; a route's own method beats `ANY`; `$default` comes last."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from relasify_local.runtime import LocalFunction

DEFAULT_ROUTE = "$default"
_LITERAL, _PARAM, _GREEDY = 0, 1, 2


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
