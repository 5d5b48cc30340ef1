"""A workspace closed through another container is unreadable at once on this one, even while
this container still holds a cached membership (the workspace's state is never cached)."""

from __future__ import annotations

from relasify.data.identity import identity_repository
from relasify.services import access

from tests.support.api import ApiClient

OWNER = "owner@example.com"


def test_closure_elsewhere_is_seen_at_once_despite_a_warm_membership_cache(api: ApiClient) -> None:
    ws = api.create_workspace(OWNER)
    api.add_member(ws, OWNER, "agent@example.com", "agent")
    assert api.get(f"/v1/workspaces/{ws}", as_user="agent@example.com").status == 200
    assert any(key[0] == ws for key in access._cache), "the membership is cached on this container"

    # Another container closes the workspace: nothing invalidates this container's cache.
    identity_repository().close_workspace(ws)

    response = api.get(f"/v1/workspaces/{ws}", as_user="agent@example.com")
    assert response.status == 404
    assert response.json["detail"] == "Workspace not found"
    assert api.get(f"/v1/workspaces/{ws}/contacts", as_user="agent@example.com").status == 404
