"""Route groups loaded on first use: an API function's route modules are imported, and their routers
included in its resolver, when the first request that can reach one of their routes arrives. A cold
start then pays for the group it serves, not for every group's services and schemas (the contacts API
has nine groups; bench cold_start).

A function declares its groups' routes ("METHOD /rule", the rule as the router registers it) in the
order it used to include the routers; a test pins each declaration to what the router registers.
Answers stay those of the resolver with every router included up front, in that order:
- a request includes every group with a route that can match it (matching here is looser than
  Powertools', never stricter: a path parameter is any segment);
- a group is included only after every earlier group with a route that can match a request of its
  own, so where two groups' routes can match one path the earlier group's still comes first;
- a preflight (OPTIONS) includes every group: its allowed methods are those of every route.
"""

from __future__ import annotations

import importlib
import re
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from relasify.cold_start import collector_paused

_PARAMETER = re.compile(r"<\w+>")


def _router_of(module: str) -> APIGatewayHttpRouter:
    with collector_paused():  # a group's imports are a cold start's too (relasify.cold_start)
        router: APIGatewayHttpRouter = importlib.import_module(module).router
    return router


def _pattern(rule: str) -> re.Pattern[str]:
    # Unanchored at the start: a stage name before the path still matches (looser, never stricter).
    parts = _PARAMETER.split(rule)
    return re.compile("(?:" + "[^/]+".join(re.escape(part) for part in parts) + ")/*$")


def _segments(rule: str) -> list[str | None]:
    return [None if _PARAMETER.fullmatch(segment) else segment for segment in rule.strip("/").split("/")]


def _can_overlap(first: str, second: str) -> bool:
    """Whether one request (method and path) could match both routes."""
    method_a, rule_a = first.split(" ", 1)
    method_b, rule_b = second.split(" ", 1)
    if method_a != method_b:
        return False
    a, b = _segments(rule_a), _segments(rule_b)
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b, strict=True))


class RouteGroups:
    """Includes each route group's router in `app` on the first request that can reach it."""

    def __init__(
        self,
        app: APIGatewayHttpResolver,
        groups: Mapping[str, Sequence[str]],
        load: Callable[[str], APIGatewayHttpRouter] = _router_of,
    ) -> None:
        self._app = app
        self._load = load
        self._order = list(groups)
        self._routes = {
            group: [(route.split(" ", 1)[0], _pattern(route.split(" ", 1)[1])) for route in routes]
            for group, routes in groups.items()
        }
        # group -> the earlier groups it must follow (one of their routes can match a request of its own)
        self._after = {
            group: [
                earlier
                for earlier in self._order[:position]
                if any(_can_overlap(mine, theirs) for mine in groups[group] for theirs in groups[earlier])
            ]
            for position, group in enumerate(self._order)
        }
        self._included: set[str] = set()
        # Lambda runs one request at a time per process; the local stack may run several in threads.
        self._lock = threading.Lock()

    def include_all(self) -> None:
        """Every group (the OpenAPI document describes them all)."""
        with self._lock:
            for group in self._order:
                self._include(group)

    def include_for(self, method: str, path: str) -> None:
        method = method.upper()
        if method == "OPTIONS":
            self.include_all()
            return
        needed = [
            group
            for group in self._order
            if group not in self._included
            and any(route_method == method and pattern.search(path) for route_method, pattern in self._routes[group])
        ]
        if needed:
            with self._lock:
                for group in needed:
                    self._include(group)

    def resolve(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """Include what this HTTP API (payload 2.0) request can reach, then answer it."""
        http = (event.get("requestContext") or {}).get("http") or {}
        self.include_for(str(http.get("method") or ""), str(event.get("rawPath") or http.get("path") or ""))
        return self._app.resolve(event, context)

    def _include(self, group: str) -> None:
        if group in self._included:
            return
        for earlier in self._after[group]:
            self._include(earlier)
        router = self._load(group)
        if router.api_resolver is not None and router.api_resolver is not self._app:
            # Another resolver in this process took this module's router (the local stack hosts several
            # copies of a function; a router serves the resolver that included it last): load a copy of
            # our own, as a container of our own would. On Lambda a process has one resolver.
            sys.modules.pop(group, None)
            router = self._load(group)
        self._app.include_router(router)
        self._included.add(group)
