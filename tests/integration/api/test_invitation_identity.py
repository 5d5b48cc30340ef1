"""Invitations from the attacker's side (SPEC §3 "Invitations"), through the local gateway.

An invitation is accepted only by a token whose `email_verified` claim is true: a token that merely
claims someone's address (unverified, or without the claim) joins nothing, sees nothing and leaves
the invitation pending for the real owner of the address. And `POST .../members` answers the same
whether or not the address has an account, so it cannot be used to learn who uses Relasify.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pynamodb.connection.base import Connection
from relasify.data import models as m
from relasify.data.identity import identity_repository

from tests.support.api import ApiClient

OWNER = "owner@example.com"
VICTIM = "victim@example.com"
IMPOSTOR_SUB = "impostor-sub-0001"

# How an impostor's token may say the address is not verified. API Gateway hands claims over as
# strings: the boolean false arrives as "false"; only "true" (or the boolean true) counts.
UNVERIFIED = {
    "false": {"email_verified": False},
    "missing": {"email_verified": None},
    "string-1": {"extra_claims": {"email_verified": "1"}},
    "string-yes": {"extra_claims": {"email_verified": "yes"}},
}


def _impostor_token(api: ApiClient, how: dict[str, Any]) -> str:
    return api.token(VICTIM, sub=IMPOSTOR_SUB, name="Impostor", **how)


def _invitations(ws: str) -> list[tuple[str, str]]:
    return [(i.email, i.role) for i in identity_repository().list_invitations(ws)]


@pytest.mark.parametrize("how", UNVERIFIED.values(), ids=UNVERIFIED.keys())
def test_an_unverified_token_with_the_invited_address_joins_nothing(api: ApiClient, how: dict[str, Any]) -> None:
    ws = api.create_workspace(OWNER)
    assert api.post(f"/v1/workspaces/{ws}/members", {"email": VICTIM, "role": "admin"}, as_user=OWNER).status == 201
    impostor = _impostor_token(api, how)

    # Whatever the impostor calls first, the workspace stays hidden and the invitation pending.
    assert api.get("/v1/workspaces", token=impostor).json["items"] == []
    assert api.get(f"/v1/workspaces/{ws}", token=impostor).status == 404
    assert api.get(f"/v1/workspaces/{ws}/contacts", token=impostor).status == 404
    assert api.get(f"/v1/workspaces/{ws}", token=impostor).status == 404  # warm container: still nothing
    assert identity_repository().get_membership(ws, IMPOSTOR_SUB) is None
    assert _invitations(ws) == [(VICTIM, "admin")]
    export = api.get("/v1/me/export", token=impostor)
    assert export.status == 200
    assert export.json["invitations"] == []  # not even the workspace's name
    # The address is matched to no one: the impostor's record holds none and is in no e-mail index.
    me = api.get("/v1/me", token=impostor).json
    assert me["id"] == IMPOSTOR_SUB
    assert me["email"] == ""
    assert identity_repository().get_user_by_email(VICTIM) is None

    # They can still use the API as themselves.
    own = api.post("/v1/workspaces", {"name": "Toko Palsu"}, token=impostor)
    assert own.status == 201
    assert [w["id"] for w in api.get("/v1/workspaces", token=impostor).json["items"]] == [own.json["id"]]

    # The real owner of the address, with a verified token, joins with the invited role.
    joined = api.get(f"/v1/workspaces/{ws}", as_user=VICTIM)
    assert joined.status == 200, joined.body
    assert joined.json["role"] == "admin"
    assert _invitations(ws) == []
    members = api.get(f"/v1/workspaces/{ws}/members", as_user=OWNER).json["items"]
    assert sorted((x["email"], x["role"], x["status"]) for x in members) == [
        (OWNER, "owner", "active"),
        (VICTIM, "admin", "active"),
    ]
    assert IMPOSTOR_SUB not in [x["user_id"] for x in members]


def test_an_unverified_impostor_deleting_their_account_leaves_the_invitation(api: ApiClient) -> None:
    ws = api.create_workspace(OWNER)
    assert api.post(f"/v1/workspaces/{ws}/members", {"email": VICTIM, "role": "agent"}, as_user=OWNER).status == 201
    impostor = _impostor_token(api, UNVERIFIED["false"])
    assert api.get("/v1/me", token=impostor).status == 200

    assert api.delete("/v1/me", token=impostor).status == 204

    assert _invitations(ws) == [(VICTIM, "agent")]
    assert api.get(f"/v1/workspaces/{ws}", as_user=VICTIM).status == 200


def test_a_user_whose_address_becomes_unverified_drops_out_of_the_email_index(api: ApiClient) -> None:
    """A Cognito user who changes their e-mail gets `email_verified` false until they confirm it:
    from then on the old record's address matches nothing either."""
    assert api.get("/v1/me", as_user=VICTIM).status == 200
    victim = identity_repository().get_user_by_email(VICTIM)
    assert victim is not None

    changed = api.token("new-address@example.com", sub=victim.sub, email_verified=False)
    assert api.get("/v1/me", token=changed).json["email"] == ""

    assert identity_repository().get_user_by_email(VICTIM) is None
    assert identity_repository().get_user_by_email("new-address@example.com") is None
    stored = m.UserModel.get(m.user_pk(victim.sub), m.UserModel.SK_VALUE, consistent_read=True)
    assert stored.gsi1pk is None


# --- no account enumeration through POST .../members -------------------------------------------


@pytest.fixture
def dynamodb_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """Every DynamoDB request the handlers make on the response path, as (operation, table or index)
    in order (the usage log's background thread writes one record per request, whenever it runs)."""
    calls: list[tuple[str, str]] = []
    dispatch = Connection.dispatch

    def recording(self: Connection, operation_name: str, operation_kwargs: dict[str, Any]) -> Any:
        if threading.current_thread() is threading.main_thread():
            target = operation_kwargs.get("IndexName") or operation_kwargs.get("TableName")
            calls.append((operation_name, str(target)))
        return dispatch(self, operation_name, operation_kwargs)

    monkeypatch.setattr(Connection, "dispatch", recording)
    return calls


def test_adding_a_registered_or_unknown_address_answers_the_same(
    api: ApiClient, dynamodb_calls: list[tuple[str, str]]
) -> None:
    registered, unknown = "registered@example.com", "nobody@example.com"
    ws = api.create_workspace(OWNER)
    assert api.get("/v1/me", as_user=registered).status == 200  # has an account
    assert api.get(f"/v1/workspaces/{ws}", as_user=OWNER).status == 200  # the owner is warm: same path twice

    answers, requests = {}, {}
    for email in (registered, unknown):
        dynamodb_calls.clear()
        response = api.post(f"/v1/workspaces/{ws}/members", {"email": email, "role": "agent"}, as_user=OWNER)
        answers[email], requests[email] = response, list(dynamodb_calls)

    for email, response in answers.items():
        assert response.status == 201, response.body
        body = response.json
        assert body.pop("email") == email
        assert body.pop("created_at")
        assert body == {"user_id": None, "name": None, "role": "agent", "status": "invited"}
        assert response.headers["content-type"] == "application/json"
    assert list(answers[registered].json) == list(answers[unknown].json)  # same keys, same order
    # The same DynamoDB requests either way: no lookup whose cost depends on the address.
    assert requests[registered] == requests[unknown]
    assert requests[registered]
    assert not [c for c in requests[registered] if c[1] == m.UserModel.gsi1.Meta.index_name]

    # The audit log says the same about both, and nothing personal.
    audit = api.get(f"/v1/workspaces/{ws}/audit", as_user=OWNER).json["items"]
    member_events = [(e["action"], e["target_ids"], e["details"]) for e in audit if e["action"].startswith("member.")]
    assert member_events == [("member.invited", [], {"role": "agent"})] * 2
    assert registered not in str(audit)
    assert unknown not in str(audit)

    # Both are pending until the person comes with a verified token; the registered user (already
    # signed in on this warm container) joins on their next request to the workspace.
    listed = api.get(f"/v1/workspaces/{ws}/members", as_user=OWNER).json["items"]
    assert sorted((x["email"], x["status"], x["user_id"]) for x in listed if x["email"] != OWNER) == [
        (unknown, "invited", None),
        (registered, "invited", None),
    ]
    joined = api.get(f"/v1/workspaces/{ws}", as_user=registered)
    assert joined.status == 200, joined.body
    assert joined.json["role"] == "agent"
    assert _invitations(ws) == [(unknown, "agent")]


def test_a_warm_user_sees_a_new_invitation_in_their_workspace_list(api: ApiClient) -> None:
    ws = api.create_workspace(OWNER)
    assert api.get("/v1/workspaces", as_user=VICTIM).json["items"] == []  # signed in, cached
    assert api.post(f"/v1/workspaces/{ws}/members", {"email": VICTIM, "role": "agent"}, as_user=OWNER).status == 201

    listed = api.get("/v1/workspaces", as_user=VICTIM).json["items"]

    assert [(w["id"], w["role"]) for w in listed] == [(ws, "agent")]


def test_inviting_a_current_member_is_refused(api: ApiClient) -> None:
    ws = api.create_workspace(OWNER)
    api.add_member(ws, OWNER, VICTIM, "agent")

    again = api.post(f"/v1/workspaces/{ws}/members", {"email": "Victim@Example.com", "role": "admin"}, as_user=OWNER)

    assert again.status == 409
    assert _invitations(ws) == []
    assert identity_repository().get_membership(ws, api.get("/v1/me", as_user=VICTIM).json["id"]).role == "agent"


def test_an_admin_cannot_downgrade_a_pending_owner_invitation_by_inviting_again(api: ApiClient) -> None:
    """Re-inviting overwrites the invitation: an admin doing it to an owner's invitation would revoke
    something only an owner may revoke."""
    ws = api.create_workspace(OWNER)
    api.add_member(ws, OWNER, "admin@example.com", "admin")
    owner_invite = api.post(f"/v1/workspaces/{ws}/members", {"email": VICTIM, "role": "owner"}, as_user=OWNER)
    assert owner_invite.status == 201

    downgrade = api.post(
        f"/v1/workspaces/{ws}/members", {"email": VICTIM, "role": "agent"}, as_user="admin@example.com"
    )

    assert downgrade.status == 403
    assert downgrade.content_type.startswith("application/problem+json")
    assert _invitations(ws) == [(VICTIM, "owner")]
