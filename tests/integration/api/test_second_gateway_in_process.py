"""One process may host several local gateways (the in-process test stack, the merged OpenAPI
document built from the template, a restarted stack). Each load of a function gets its own handler
module AND its own sibling modules, as each Lambda container has its own interpreter: shared route
modules would share their Powertools routers, which follow the resolver that included them last,
and the first gateway's handlers would read the second app's request context (a 500 on every
workspace route for the rest of the process)."""

from __future__ import annotations

from relasify_local.cfn import load_template
from relasify_local.runtime import functions_from_template

from tests.support.api import REPO_ROOT, ApiClient


def test_loading_the_functions_again_leaves_the_first_gateway_working(api: ApiClient) -> None:
    ws = api.create_workspace("owner@example.com")
    again = functions_from_template(load_template(), REPO_ROOT)
    again["ContactsApiFunction"].load()  # as building the OpenAPI document does

    invited = api.post(
        f"/v1/workspaces/{ws}/members", {"email": "agent@example.com", "role": "agent"}, as_user="owner@example.com"
    )
    assert invited.status == 201, invited.body
    assert api.get(f"/v1/workspaces/{ws}/members", as_user="owner@example.com").status == 200
