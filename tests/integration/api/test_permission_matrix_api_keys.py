"""The SPEC's permission matrix (test_permission_matrix.py, typed in from SPEC section 3) with an API key
as the caller (SPEC 5c): an agent key is refused exactly where an agent is, an admin key is allowed
exactly where an admin is, and no key is ever an owner. A key of another workspace gets the
membership 404 on every row."""

from __future__ import annotations

import pytest

from tests.integration.api.test_permission_matrix import (
    ACTIVE_ROWS,
    ADMIN,
    AGENT,
    OWNER,
    OWNER_EMAIL,
    Row,
    concrete_path,
    empty_body,
    is_membership_404,
)
from tests.support.api import ApiClient


def _key(api: ApiClient, ws: str, role: str) -> str:
    created = api.post(f"/v1/workspaces/{ws}/api-keys", {"name": f"{role} key", "role": role}, as_user=OWNER_EMAIL)
    assert created.status == 201, created.body
    return created.json["key"]


def test_the_matrix_has_rows_an_admin_key_cannot_use() -> None:
    """Else the 'never an owner' half of the test below would check nothing."""
    assert [row.path for row in ACTIVE_ROWS if row.min_role == OWNER]


@pytest.mark.parametrize("row", ACTIVE_ROWS, ids=lambda r: f"{r.method} {r.path}")
def test_a_key_has_exactly_the_rights_of_its_role_and_never_an_owner_s(api: ApiClient, row: Row) -> None:
    ws = api.create_workspace(OWNER_EMAIL)
    keys = {AGENT: _key(api, ws, "agent"), ADMIN: _key(api, ws, "admin")}
    path, body = concrete_path(row, ws), empty_body(row.method)

    for role in (AGENT, ADMIN):
        response = api.request(row.method, path, json_body=body, token=keys[role])
        if role < row.min_role:
            assert response.status == 403, (role.label, response.status, response.body)
            assert response.content_type == "application/problem+json"
            assert response.json["detail"] == f"This action needs the {row.min_role.label} role or higher"
        else:
            assert response.status not in (401, 403), (role.label, response.body)
            assert not is_membership_404(response.status, response.json), (role.label, response.body)
            assert response.status < 500, (role.label, response.body)


@pytest.mark.usefixtures("unlimited_budgets")
def test_a_key_of_another_workspace_is_404_on_every_row(api: ApiClient) -> None:
    """One key fires a request per row (60+) in about a second, past its burst of 40 on a fast
    machine: the budget is lifted here, it is tested in test_rate_limits.py."""
    ws = api.create_workspace(OWNER_EMAIL)
    other = api.create_workspace("other-owner@example.com", name="Other")
    key = _key(api, ws, "admin")
    for row in ACTIVE_ROWS:
        response = api.request(row.method, concrete_path(row, other), json_body=empty_body(row.method), token=key)
        assert is_membership_404(response.status, response.json), (row, response.body)
