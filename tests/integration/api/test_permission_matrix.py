"""Permission matrix written from SPEC section 3's role table, not from the code's route table.

Each row below is (method, path, minimum role, the SPEC phrase it comes from), typed in by hand
from the SPEC. The test makes a real request through the local gateway for a non-member and for
each role, and checks: non-member -> 404 "Workspace not found"; below the row's role -> 403; at or
above -> past the guard (the request may still be refused for its empty body or unknown ids).

`test_every_served_route_has_a_row_and_every_row_is_served` compares the rows with the routes the
API functions behind the gateway actually serve, so a new route without a row fails here: add its
row with the SPEC phrase that decides its role. Rows in `SPEC_NOT_YET_SERVED` are routes the SPEC
names whose code is not on this branch yet (inbox, real-time, integrations): they are checked as
soon as they are served, and until then they are only listed.

SPEC section 3:
  agent | read contacts; create and correct (PATCH) contacts; consent; conversations (read, notes,
          read receipts, status, assign to self or unassign self); send messages; read canned
          replies; list members (id, name, role: for assignment); read the WhatsApp connection's
          status (never the token)
  admin | also: delete/erase contacts, restrict, single and bulk export, imports, templates,
          broadcasts, WhatsApp connect/change/disconnect, member management, assign anyone,
          canned replies, audit log
  owner | also: close the workspace, make or remove owners
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
from relasify.data.memberships import Role

from tests.support.api import ApiClient, gateway_and_key

AGENT, ADMIN, OWNER = Role.AGENT, Role.ADMIN, Role.OWNER


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # SPEC style: /v1/workspaces/{ws}/contacts/{contact_id}
    min_role: Role
    spec: str  # the phrase of SPEC section 3 that sets min_role

    @property
    def key(self) -> tuple[str, str]:
        return self.method, _shape(self.path)


WS = "/v1/workspaces/{ws}"

# Served today. Keep grouped by resource; one row per method and path.
ROWS: list[Row] = [
    # The workspace itself: the SPEC gives every member their workspace (`GET /v1/workspaces` lists it).
    Row("GET", WS, AGENT, "every member: the workspace they belong to"),
    Row("POST", f"{WS}/close", OWNER, "owner: close the workspace"),
    # Contacts (SPEC section 4).
    Row("GET", f"{WS}/contacts", AGENT, "agent: read contacts"),
    Row("POST", f"{WS}/contacts", AGENT, "agent: create contacts"),
    Row("GET", f"{WS}/contacts/{{contact_id}}", AGENT, "agent: read contacts"),
    Row("PATCH", f"{WS}/contacts/{{contact_id}}", AGENT, "agent: correct (PATCH) contacts"),
    Row("DELETE", f"{WS}/contacts/{{contact_id}}", ADMIN, "admin: delete/erase contacts"),
    Row("POST", f"{WS}/contacts/{{contact_id}}/consent", AGENT, "agent: consent"),
    Row("POST", f"{WS}/contacts/{{contact_id}}/erase", ADMIN, "admin: delete/erase contacts"),
    Row("POST", f"{WS}/contacts/{{contact_id}}/restrict", ADMIN, "admin: restrict"),
    Row("POST", f"{WS}/contacts/{{contact_id}}/unrestrict", ADMIN, "admin: restrict"),
    Row("GET", f"{WS}/contacts/{{contact_id}}/export", ADMIN, "admin: single export"),
    Row("GET", f"{WS}/contacts/export", ADMIN, "admin: bulk export"),
    # Polling a bulk export hands out its download URL: the export itself.
    Row("GET", f"{WS}/contacts/exports/{{export_id}}", ADMIN, "admin: bulk export"),
    Row("POST", f"{WS}/contacts/imports", ADMIN, "admin: imports"),
    Row("POST", f"{WS}/contacts/imports/{{import_id}}/start", ADMIN, "admin: imports"),
    Row("GET", f"{WS}/contacts/imports/{{import_id}}", ADMIN, "admin: imports"),
    Row("GET", f"{WS}/contacts/{{contact_id}}/messages", AGENT, "agent: conversations (read)"),
    # Messages (SPEC section 5).
    Row("POST", f"{WS}/messages", AGENT, "agent: send messages"),
    Row("GET", f"{WS}/messages/{{message_id}}", AGENT, "agent: send messages; conversations (read)"),
    # Templates: "templates" is an admin item, but outside the 24 h window an agent can only reach a
    # customer with a template message ("send messages" is an agent item), and composing one needs the
    # approved templates' names, languages and parameters. So reading them is agent; submitting,
    # syncing with Meta and deleting them is the admin's "templates".
    Row("GET", f"{WS}/templates", AGENT, "agent: send messages (choosing a template to send)"),
    Row("POST", f"{WS}/templates", ADMIN, "admin: templates"),
    Row("POST", f"{WS}/templates/sync", ADMIN, "admin: templates"),
    Row("DELETE", f"{WS}/templates/{{name}}", ADMIN, "admin: templates"),
    # Broadcasts: reading them too (their audience, parameters and counts) is "broadcasts".
    Row("POST", f"{WS}/broadcasts", ADMIN, "admin: broadcasts"),
    Row("GET", f"{WS}/broadcasts", ADMIN, "admin: broadcasts"),
    Row("GET", f"{WS}/broadcasts/{{broadcast_id}}", ADMIN, "admin: broadcasts"),
    Row("POST", f"{WS}/broadcasts/{{broadcast_id}}/cancel", ADMIN, "admin: broadcasts"),
    # Members: agents get the reduced view (id, name, role); invitations, e-mails and changes are
    # "member management". Making or removing owners is checked per request (test below).
    Row("GET", f"{WS}/members", AGENT, "agent: list members (id, name, role: for assignment)"),
    Row("POST", f"{WS}/members", ADMIN, "admin: member management"),
    Row("PATCH", f"{WS}/members/{{user}}", ADMIN, "admin: member management"),
    Row("DELETE", f"{WS}/members/{{user}}", ADMIN, "admin: member management"),
    # WhatsApp connection.
    Row("GET", f"{WS}/whatsapp", AGENT, "agent: read the WhatsApp connection's status (never the token)"),
    Row("PUT", f"{WS}/whatsapp", ADMIN, "admin: WhatsApp connect"),
    Row("PATCH", f"{WS}/whatsapp", ADMIN, "admin: WhatsApp change"),
    Row("DELETE", f"{WS}/whatsapp", ADMIN, "admin: WhatsApp disconnect"),
    Row("GET", f"{WS}/audit", ADMIN, "admin: audit log"),
    Row("GET", f"{WS}/changes", AGENT, "agent: conversations (read) (SPEC 5b: events of every workspace)"),
    Row("POST", f"{WS}/webhooks", ADMIN, "SPEC 5c: outgoing webhooks (admin)"),
    Row("GET", f"{WS}/webhooks", ADMIN, "SPEC 5c: outgoing webhooks (admin)"),
    Row("GET", f"{WS}/webhooks/{{webhook_id}}", ADMIN, "SPEC 5c: outgoing webhooks (admin)"),
    Row("DELETE", f"{WS}/webhooks/{{webhook_id}}", ADMIN, "SPEC 5c: outgoing webhooks (admin)"),
    Row("GET", f"{WS}/webhooks/{{webhook_id}}/deliveries", ADMIN, "SPEC 5c: outgoing webhooks (admin)"),
    # Re-enabling an endpoint disabled after 24 h of failures ("an admin can re-enable it").
    Row("PATCH", f"{WS}/webhooks/{{webhook_id}}", ADMIN, "SPEC 5c: outgoing webhooks (admin)"),
]

# Named by SPEC sections 5a-5c, served by branches not merged here yet. A row moves up into ROWS
# (nothing else to do) once its route is served; until then the test only lists it.
SPEC_NOT_YET_SERVED: list[Row] = [
    Row("GET", f"{WS}/conversations", AGENT, "agent: conversations (read)"),
    Row("GET", f"{WS}/conversations/{{contact_id}}", AGENT, "agent: conversations (read)"),
    # Assigning someone else is "assign anyone" (admin); the service checks the assignee per request.
    Row("PATCH", f"{WS}/conversations/{{contact_id}}", AGENT, "agent: conversations (status, assign to self)"),
    Row("POST", f"{WS}/conversations/{{contact_id}}/read", AGENT, "agent: conversations (read receipts)"),
    Row("POST", f"{WS}/conversations/{{contact_id}}/notes", AGENT, "agent: conversations (notes)"),
    Row("GET", f"{WS}/conversations/{{contact_id}}/messages", AGENT, "agent: conversations (read)"),
    Row("GET", f"{WS}/messages/{{message_id}}/media", AGENT, "agent: conversations (read)"),
    Row("POST", f"{WS}/media", AGENT, "agent: send messages (media upload)"),
    Row("GET", f"{WS}/canned-replies", AGENT, "agent: read canned replies"),
    Row("POST", f"{WS}/canned-replies", ADMIN, "admin: canned replies"),
    Row("PATCH", f"{WS}/canned-replies/{{reply_id}}", ADMIN, "admin: canned replies"),
    Row("DELETE", f"{WS}/canned-replies/{{reply_id}}", ADMIN, "admin: canned replies"),
    Row("GET", f"{WS}/canned-replies/{{reply_id}}", AGENT, "agent: read canned replies (one, by id)"),
    Row("POST", f"{WS}/api-keys", ADMIN, "SPEC 5c: api-keys (admin)"),
    Row("GET", f"{WS}/api-keys", ADMIN, "SPEC 5c: api-keys (admin)"),
    Row("DELETE", f"{WS}/api-keys/{{key_id}}", ADMIN, "SPEC 5c: api-keys (admin)"),
]

OWNER_EMAIL = "owner@example.com"
ROLE_USERS = {AGENT: "agent@example.com", ADMIN: "admin@example.com", OWNER: OWNER_EMAIL}
NON_MEMBER = "stranger@example.com"
UNKNOWN_ID = "x0unknown"  # a well-formed id that names nothing


def _shape(path: str) -> str:
    """A path with its parameter names erased: SPEC `{id}`, API Gateway `{id}` and Powertools `<id>` alike."""
    return re.sub(r"\{[^}/]+\}|<[^>/]+>", "{}", path)


@cache
def served_routes() -> frozenset[tuple[str, str]]:
    """(method, shape) of every route the gateway serves under /v1/workspaces/{ws}: the routes of each
    function it sends such paths to (their Powertools apps), or the gateway route itself for a function
    without one."""
    gateway, _ = gateway_and_key()
    served: set[tuple[str, str]] = set()
    for route in gateway.table.routes:
        if not route.path.startswith("/v1/workspaces/{") or route.method == "OPTIONS":
            continue  # OPTIONS is the unauthenticated CORS preflight
        module = route.function.try_load()
        route_groups = getattr(module, "routes", None)
        if route_groups is not None:
            route_groups.include_all()  # an API that loads its route groups on first use: list them all
        app = getattr(module, "app", None)
        app_routes = [*getattr(app, "_static_routes", []), *getattr(app, "_dynamic_routes", [])]
        if not app_routes:
            served.add((route.method, _shape(route.path)))
        for app_route in app_routes:
            if app_route.path.startswith("/v1/workspaces/<ws>"):
                served.add((str(app_route.method).upper(), _shape(app_route.path)))
    return frozenset(served)


ACTIVE_ROWS = ROWS + [row for row in SPEC_NOT_YET_SERVED if row.key in served_routes()]


def concrete_path(row: Row, ws: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ws if m.group(1) == "ws" else UNKNOWN_ID, row.path)


def empty_body(method: str) -> dict[str, Any] | None:
    return {} if method in ("POST", "PUT", "PATCH") else None


def test_the_table_has_one_row_per_route() -> None:
    keys = [row.key for row in ROWS + SPEC_NOT_YET_SERVED]
    assert len(keys) == len(set(keys)), [k for k in keys if keys.count(k) > 1]


def test_every_served_route_has_a_row_and_every_row_is_served() -> None:
    served = served_routes()
    assert len(served) >= len(ROWS), "the route listing found too few routes"
    rows = {row.key for row in ACTIVE_ROWS}
    assert sorted(served - rows) == [], "served without a row in the SPEC matrix: add one"
    stale = {row.key for row in ROWS} - served
    assert sorted(stale) == [], "rows for routes nobody serves"


@pytest.fixture
def workspace(api: ApiClient) -> str:
    ws = api.create_workspace(OWNER_EMAIL)
    api.add_member(ws, OWNER_EMAIL, ROLE_USERS[AGENT], "agent")
    api.add_member(ws, OWNER_EMAIL, ROLE_USERS[ADMIN], "admin")
    api.get("/v1/me", as_user=NON_MEMBER)
    return ws


def is_membership_404(status: int, body: Any) -> bool:
    return status == 404 and isinstance(body, dict) and body.get("detail") == "Workspace not found"


@pytest.mark.parametrize("row", ACTIVE_ROWS, ids=lambda r: f"{r.method} {r.path}")
def test_route_allows_exactly_the_spec_roles(api: ApiClient, workspace: str, row: Row) -> None:
    path, body = concrete_path(row, workspace), empty_body(row.method)

    stranger = api.request(row.method, path, json_body=body, as_user=NON_MEMBER)
    assert is_membership_404(stranger.status, stranger.json), (stranger.status, stranger.body)
    assert stranger.content_type == "application/problem+json"

    # Lowest role first: the owner's request (e.g. close) may end the workspace.
    for role in (AGENT, ADMIN, OWNER):
        response = api.request(row.method, path, json_body=body, as_user=ROLE_USERS[role])
        if role < row.min_role:
            assert response.status == 403, (role.label, response.status, response.body)
            assert response.content_type == "application/problem+json"
            assert response.json["detail"] == f"This action needs the {row.min_role.label} role or higher"
        else:
            assert response.status != 403, (role.label, response.body)
            assert not is_membership_404(response.status, response.json), (role.label, response.body)
            assert response.status < 500, (role.label, response.body)


@pytest.mark.usefixtures("unlimited_budgets")
def test_another_workspace_id_is_404_on_every_route(api: ApiClient, workspace: str) -> None:
    """An owner of one workspace addressing another workspace's id learns nothing. One user fires a
    request per row (60+) in about a second, past a person's burst of 40 on a fast machine: the
    budget is lifted here, it is tested in test_rate_limits.py."""
    other = api.create_workspace("other-owner@example.com", name="Other")
    for row in ACTIVE_ROWS:
        response = api.request(
            row.method, concrete_path(row, other), json_body=empty_body(row.method), as_user=OWNER_EMAIL
        )
        assert is_membership_404(response.status, response.json), (row, response.body)


def _user_id(api: ApiClient, email: str) -> str:
    return api.get("/v1/me", as_user=email).json["id"]


def _role_of(api: ApiClient, ws: str, user_id: str) -> str | None:
    members = api.get(f"/v1/workspaces/{ws}/members", as_user=OWNER_EMAIL).json["items"]
    return next((m["role"] for m in members if m.get("user_id") == user_id), None)


def test_only_an_owner_makes_or_removes_owners(api: ApiClient, workspace: str) -> None:
    """SPEC "owner: make or remove owners": within the admin's "member management" routes."""
    ws, admin = workspace, ROLE_USERS[ADMIN]
    members = f"/v1/workspaces/{ws}/members"
    agent_id, co_owner = _user_id(api, ROLE_USERS[AGENT]), "co-owner@example.com"
    api.add_member(ws, OWNER_EMAIL, co_owner, "owner")
    co_owner_id = _user_id(api, co_owner)

    refusals = [
        api.post(members, {"email": "new@example.com", "role": "owner"}, as_user=admin),
        api.patch(f"{members}/{agent_id}", {"role": "owner"}, as_user=admin),
        api.patch(f"{members}/{co_owner_id}", {"role": "agent"}, as_user=admin),
        api.delete(f"{members}/{co_owner_id}", as_user=admin),
    ]
    assert [r.status for r in refusals] == [403, 403, 403, 403], [r.body for r in refusals]
    assert {r.content_type for r in refusals} == {"application/problem+json"}
    assert (_role_of(api, ws, agent_id), _role_of(api, ws, co_owner_id)) == ("agent", "owner")
    listed = api.get(members, as_user=OWNER_EMAIL).json["items"]
    assert "new@example.com" not in [m.get("email") for m in listed]

    # The admin's member management below owner is not affected.
    assert api.patch(f"{members}/{agent_id}", {"role": "admin"}, as_user=admin).status == 200
    # An owner does all four.
    assert api.patch(f"{members}/{agent_id}", {"role": "owner"}, as_user=OWNER_EMAIL).status == 200
    assert api.patch(f"{members}/{co_owner_id}", {"role": "agent"}, as_user=OWNER_EMAIL).status == 200
    assert api.delete(f"{members}/{co_owner_id}", as_user=OWNER_EMAIL).status == 204
    invited = api.post(members, {"email": "new@example.com", "role": "owner"}, as_user=OWNER_EMAIL)
    assert (invited.status, invited.json["role"]) == (201, "owner")
    assert (_role_of(api, ws, agent_id), _role_of(api, ws, co_owner_id)) == ("owner", None)


def test_agents_see_members_as_id_name_and_role_only(api: ApiClient, workspace: str) -> None:
    """SPEC "list members (id, name, role: for assignment)": no e-mails, no invitations."""
    ws = workspace
    api.post(f"/v1/workspaces/{ws}/members", {"email": "invitee@example.com", "role": "agent"}, as_user=OWNER_EMAIL)

    as_agent = api.get(f"/v1/workspaces/{ws}/members", as_user=ROLE_USERS[AGENT])
    assert as_agent.status == 200, as_agent.body
    expected = sorted(
        [
            {"user_id": _user_id(api, email), "name": email.split("@")[0], "role": r.label}
            for r, email in ROLE_USERS.items()
        ],
        key=lambda m: m["user_id"],
    )
    assert sorted(as_agent.json["items"], key=lambda m: m["user_id"]) == expected
    assert "@" not in as_agent.body.decode()

    as_admin = api.get(f"/v1/workspaces/{ws}/members", as_user=ROLE_USERS[ADMIN]).json["items"]
    assert {m["email"] for m in as_admin} == {*ROLE_USERS.values(), "invitee@example.com"}
    assert {m["status"] for m in as_admin} == {"active", "invited"}


def test_agents_read_the_whatsapp_status_without_the_token(api: ApiClient, workspace: str) -> None:
    """SPEC "read the WhatsApp connection's status (never the token)": what an admin sees, and no more."""
    path, token = f"/v1/workspaces/{workspace}/whatsapp", "EAAG-agent-must-not-see-this-1"
    connection = {"waba_id": "102345678901234", "phone_number_id": "109876543210987", "access_token": token}
    connected = api.put(path, {**connection, "display_phone_number": "6281234500000"}, as_user=ROLE_USERS[ADMIN])
    assert connected.status == 200, connected.body

    as_agent = api.get(path, as_user=ROLE_USERS[AGENT])
    assert as_agent.status == 200, as_agent.body
    assert as_agent.json == api.get(path, as_user=ROLE_USERS[ADMIN]).json
    assert (as_agent.json["phone_number_id"], as_agent.json["token_status"]) == ("109876543210987", "valid")
    assert token not in as_agent.body.decode()
    assert "access_token" not in as_agent.json
