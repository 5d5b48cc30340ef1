"""Permission matrix generated from the route table: every `/v1/workspaces/<ws>/...` route of every
API function, for a non-member and for each role. A new route is covered automatically."""

from __future__ import annotations

import re

import pytest
from relasify.services.access import Role
from relasify.web.auth import ROUTE_POLICIES, RoutePolicy

from tests.support.api import ApiClient, api_functions, load_api_modules

OWNER = "owner@example.com"
ROLE_USERS = {Role.AGENT: "agent@example.com", Role.ADMIN: "admin@example.com", Role.OWNER: OWNER}
NON_MEMBER = "stranger@example.com"

load_api_modules()
POLICIES = sorted(set(ROUTE_POLICIES), key=lambda p: (p.path, p.method))


def _concrete(policy: RoutePolicy, ws: str) -> str:
    return re.sub(r"<(\w+)>", lambda m: ws if m.group(1) == "ws" else "x0unknown", policy.path)


def test_every_workspace_route_is_guarded() -> None:
    """No route under /v1/workspaces/<ws> may bypass `workspace_route` (and so the guard)."""
    registered = set()
    for module in api_functions():
        app = module.app
        for route in [*app._static_routes, *app._dynamic_routes]:
            if route.path.startswith("/v1/workspaces/<ws>"):
                registered.add((str(route.method).upper(), route.path))
    guarded = {(p.method, p.path) for p in POLICIES}
    assert registered, "no workspace routes found"
    assert registered <= guarded, f"unguarded routes: {registered - guarded}"


@pytest.fixture
def workspace(api: ApiClient) -> str:
    ws = api.create_workspace(OWNER)
    for role, email in ROLE_USERS.items():
        if role is not Role.OWNER:
            api.add_member(ws, OWNER, email, role.label)
    api.get("/v1/me", as_user=NON_MEMBER)
    return ws


def _is_guard_denial(status: int, body: dict | None) -> bool:
    if status == 403:
        return True
    return status == 404 and (body or {}).get("detail") == "Workspace not found"


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: f"{p.method} {p.path}")
def test_route_permissions(api: ApiClient, workspace: str, policy: RoutePolicy) -> None:
    path = _concrete(policy, workspace)
    body = {} if policy.method in ("POST", "PUT", "PATCH") else None

    denied = api.request(policy.method, path, json_body=body, as_user=NON_MEMBER)
    assert denied.status == 404, denied.body
    assert denied.json["detail"] == "Workspace not found"
    assert denied.content_type == "application/problem+json"

    for role, email in ROLE_USERS.items():
        response = api.request(policy.method, path, json_body=body, as_user=email)
        if role >= policy.min_role:
            assert not _is_guard_denial(response.status, response.json), (role, response.status, response.body)
            assert response.status < 500, response.body
        else:
            assert response.status == 403, (role, response.status, response.body)
            assert response.content_type == "application/problem+json"


def test_foreign_workspace_id_is_404_for_every_route(api: ApiClient, workspace: str) -> None:
    """A member of one workspace addressing another workspace's id learns nothing."""
    other = api.create_workspace("other-owner@example.com", name="Other")
    for policy in POLICIES:
        response = api.request(
            policy.method,
            _concrete(policy, other),
            json_body={} if policy.method in ("POST", "PUT", "PATCH") else None,
            as_user=OWNER,
        )
        assert response.status == 404, (policy, response.body)
