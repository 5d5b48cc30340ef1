"""Revocation is immediate on every container: a workspace closed, a member removed or a member
demoted through one container is refused by the very next request on another, because the role
guard reads the workspace and the membership on every request (one consistent BatchGetItem) and
caches neither. A guarded request still costs what it cost with the old membership cache."""

from __future__ import annotations

from relasify.data.identity import identity_repository

from bench.aws_counter import count_aws
from tests.support.api import ApiClient

OWNER = "owner@example.com"
ADMIN = "admin@example.com"
AGENT = "agent@example.com"


def _sub(api: ApiClient, email: str) -> str:
    return api.get("/v1/me", as_user=email).json["id"]


def test_closure_elsewhere_is_seen_at_once(api: ApiClient) -> None:
    ws = api.create_workspace(OWNER)
    api.add_member(ws, OWNER, AGENT, "agent")
    assert api.get(f"/v1/workspaces/{ws}", as_user=AGENT).status == 200  # this container is warm

    # Another container closes the workspace: nothing reaches this container but the table.
    identity_repository().close_workspace(ws)

    response = api.get(f"/v1/workspaces/{ws}", as_user=AGENT)
    assert response.status == 404
    assert response.json["detail"] == "Workspace not found"
    assert api.get(f"/v1/workspaces/{ws}/contacts", as_user=AGENT).status == 404


def test_member_removed_elsewhere_is_refused_on_the_very_next_request(api: ApiClient) -> None:
    ws = api.create_workspace(OWNER)
    api.add_member(ws, OWNER, AGENT, "agent")
    agent = _sub(api, AGENT)
    assert api.get(f"/v1/workspaces/{ws}/contacts", as_user=AGENT).status == 200

    identity_repository().remove_member(ws, agent)  # through another container

    response = api.get(f"/v1/workspaces/{ws}/contacts", as_user=AGENT)
    assert response.status == 404
    assert response.json["detail"] == "Workspace not found"
    # The owner, whose membership was read on the same requests, is unaffected.
    assert api.get(f"/v1/workspaces/{ws}/contacts", as_user=OWNER).status == 200


def test_member_demoted_elsewhere_loses_the_higher_role_on_the_very_next_request(api: ApiClient) -> None:
    ws = api.create_workspace(OWNER)
    api.add_member(ws, OWNER, ADMIN, "admin")
    admin = _sub(api, ADMIN)
    assert api.get(f"/v1/workspaces/{ws}/audit", as_user=ADMIN).status == 200  # admin route

    identity_repository().change_role(ws, admin, "agent")  # through another container

    refused = api.get(f"/v1/workspaces/{ws}/audit", as_user=ADMIN)
    assert refused.status == 403
    assert refused.content_type == "application/problem+json"
    assert api.get(f"/v1/workspaces/{ws}/contacts", as_user=ADMIN).status == 200  # still an agent


def test_a_guarded_request_costs_no_more_dynamodb_requests_than_with_the_cache(api: ApiClient) -> None:
    """docs/PERFORMANCE.md, contact list page: 2 DynamoDB requests (the workspace GetItem, the
    contacts Query) when the membership came from the cache (the usage log is a log line, no
    request). Reading the membership on every request must not raise that: it rides in the
    workspace read."""
    ws = api.create_workspace(OWNER)
    api.add_member(ws, OWNER, AGENT, "agent")
    assert api.get(f"/v1/workspaces/{ws}/contacts?limit=50", as_user=AGENT).status == 200  # warm-up

    with count_aws() as counter:
        assert api.get(f"/v1/workspaces/{ws}/contacts?limit=50", as_user=AGENT).status == 200

    dynamodb = {name.removeprefix("dynamodb:"): n for name, n in counter.requests.items() if "dynamodb:" in name}
    # Plus the request budgets (docs/SCALING.md): one UpdateItem for the caller's, one for the workspace's.
    assert sum(dynamodb.values()) <= 4, dynamodb
    assert dynamodb == {"BatchGetItem": 1, "Query": 1, "UpdateItem": 2}
