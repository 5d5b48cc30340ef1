"""Route groups loaded on first use (relasify.web.route_groups): an API function answers as if every
router were included up front, while a request loads only the groups that can answer it."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from relasify.web.route_groups import RouteGroups

REPO_ROOT = Path(__file__).resolve().parents[2]
# Each API handler that loads its route groups on first use, by folder.
LAZY_APIS = {"functions/contacts": "contacts_api", "functions/send": "send_api"}


def _declared(folder: str) -> dict[str, tuple[str, ...]]:
    source = (REPO_ROOT / folder / f"{LAZY_APIS[folder]}.py").read_text()
    namespace: dict[str, Any] = {}
    start = source.index("ROUTE_GROUPS = {")
    exec(source[start : source.index("\n}\n", start) + 3], namespace)  # the literal alone: no import
    return namespace["ROUTE_GROUPS"]


@pytest.mark.parametrize("folder", sorted(LAZY_APIS))
def test_each_declared_group_is_what_its_router_registers(folder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO_ROOT / folder))
    declared = _declared(folder)
    modules = {path.stem for path in (REPO_ROOT / folder).glob("*.py")}
    routers = {
        name for name in modules if "router = APIGatewayHttpRouter()" in (REPO_ROOT / folder / f"{name}.py").read_text()
    }
    assert set(declared) == routers, f"ROUTE_GROUPS must name every route module of {folder}, and only those"
    for group, routes in declared.items():
        saved = sys.modules.pop(group, None)
        try:
            router = importlib.import_module(group).router
            registered = tuple(f"{method} {rule}" for rule, methods, *_ in router._routes for method in methods)
        finally:
            sys.modules.pop(group, None)
            if saved is not None:
                sys.modules[group] = saved
        assert routes == registered, f"{folder}: {group}'s ROUTE_GROUPS entry is stale; it registers {registered}"


def _router(*routes: str) -> APIGatewayHttpRouter:
    router = APIGatewayHttpRouter()
    for route in routes:
        method, rule = route.split(" ", 1)

        def answer(route: str = route, **_: str) -> dict[str, str]:
            return {"route": route}

        router.route(rule, method)(answer)
    return router


def _event(method: str, path: str) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {},
        "requestContext": {"http": {"method": method, "path": path}, "stage": "$default"},
        "isBase64Encoded": False,
    }


GROUPS = {
    "items": ("GET /w/<ws>/items", "GET /w/<ws>/items/exports/<export_id>", "POST /w/<ws>/items"),
    "people": ("GET /me", "GET /w/<ws>/people"),
    "item_rights": ("GET /w/<ws>/items/<item_id>/export", "DELETE /me"),
}


def _routes(loaded: list[str]) -> tuple[APIGatewayHttpResolver, RouteGroups]:
    app = APIGatewayHttpResolver()

    def load(group: str) -> APIGatewayHttpRouter:
        loaded.append(group)
        return _router(*GROUPS[group])

    return app, RouteGroups(app, GROUPS, load=load)


def _answer(routes: RouteGroups, method: str, path: str) -> tuple[int, str]:
    response = routes.resolve(_event(method, path), None)
    return response["statusCode"], response["body"]


def test_a_request_loads_only_the_groups_that_can_answer_it() -> None:
    loaded: list[str] = []
    _, routes = _routes(loaded)
    assert _answer(routes, "GET", "/w/1/people") == (200, '{"route":"GET /w/<ws>/people"}')
    assert loaded == ["people"]
    assert _answer(routes, "GET", "/w/1/people") == (200, '{"route":"GET /w/<ws>/people"}')
    assert loaded == ["people"]  # loaded once
    assert _answer(routes, "POST", "/w/1/items")[0] == 200
    assert loaded == ["people", "items"]


def test_a_group_loads_after_the_earlier_groups_that_can_match_its_paths() -> None:
    # GET /w/1/items/exports/export matches both `items` (export id "export") and `item_rights`
    # (item id "exports"): `items` came first, so it answers, whatever loaded first.
    loaded: list[str] = []
    _, routes = _routes(loaded)
    assert _answer(routes, "GET", "/w/1/items/abc/export") == (200, '{"route":"GET /w/<ws>/items/<item_id>/export"}')
    assert loaded == ["items", "item_rights"]
    assert _answer(routes, "GET", "/w/1/items/exports/export")[1] == '{"route":"GET /w/<ws>/items/exports/<export_id>"}'


def test_a_path_two_groups_share_loads_the_group_of_its_method() -> None:
    loaded: list[str] = []
    _, routes = _routes(loaded)
    assert _answer(routes, "DELETE", "/me") == (200, '{"route":"DELETE /me"}')
    assert "people" not in loaded  # GET /me cannot match a DELETE
    assert _answer(routes, "GET", "/me") == (200, '{"route":"GET /me"}')
    assert loaded[-1] == "people"


def test_an_unknown_path_loads_nothing_and_is_not_found() -> None:
    loaded: list[str] = []
    _, routes = _routes(loaded)
    assert _answer(routes, "GET", "/nowhere")[0] == 404
    assert _answer(routes, "PUT", "/w/1/people")[0] == 404  # a path of a group, not its method
    assert loaded == []


def test_a_preflight_loads_every_group() -> None:
    loaded: list[str] = []
    _, routes = _routes(loaded)
    routes.resolve(_event("OPTIONS", "/w/1/items"), None)
    assert loaded == ["items", "people", "item_rights"]


def test_a_router_another_resolver_took_is_loaded_again_for_this_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # The local stack hosts several copies of a function in one process; each needs routers of its own.
    first, second = APIGatewayHttpResolver(), APIGatewayHttpResolver()
    shared = _router("GET /w/<ws>/people")
    copies = [shared, _router("GET /w/<ws>/people")]
    RouteGroups(first, {"people": GROUPS["people"]}, load=lambda _: shared).include_all()
    RouteGroups(second, {"people": GROUPS["people"]}, load=lambda _: copies.pop(0)).include_all()
    assert shared.api_resolver is first
    assert not copies  # the second resolver loaded its own copy


@pytest.mark.parametrize(
    ("folder", "path", "only"), [("functions/contacts", "/v1/workspaces/w/contacts/c", "contact_routes")]
)
def test_a_cold_api_imports_only_the_group_it_serves(folder: str, path: str, only: str) -> None:
    """What is NOT done: a cold contacts API asked for a contact imports no other group's module."""
    module = LAZY_APIS[folder]
    probe = f"""
import sys
sys.path.insert(0, {str(REPO_ROOT / folder)!r})
import {module}
assert not set({module}.ROUTE_GROUPS) & set(sys.modules), "a group was imported at init"
{module}.routes.include_for("GET", {path!r})
print(sorted(set({module}.ROUTE_GROUPS) & set(sys.modules)))
"""
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=False,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": ":".join(sys.path),
            "AWS_DEFAULT_REGION": "ap-southeast-3",
            "POWERTOOLS_TRACE_DISABLED": "true",
        },
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == str([only])
