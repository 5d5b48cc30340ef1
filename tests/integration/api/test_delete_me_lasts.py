"""`DELETE /v1/me` lasts (SPEC section 8): the deleted user's tokens stay valid for the JWT
authorizer until they expire, but every request with a token from a sign-in at or before the
deletion is refused with 401 `account-deleted`, on this container and on any other that still
remembers the user, instead of re-creating the user record or accepting invitations again. A token
from a later sign-in (the person signs up again) creates a fresh user. The Cognito user goes too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from relasify import clock, retention
from relasify.data import identity_provider
from relasify.data import models as m
from relasify.data.identity import identity_repository
from relasify.services import workspaces
from relasify.settings import get_settings

from bench.aws_counter import count_aws
from tests.support.api import ApiClient, ApiResponse

OWNER = "owner@example.com"
MEMBER = "member@example.com"


def _refused(response: ApiResponse) -> bool:
    return (
        response.status == 401
        and response.content_type == "application/problem+json"
        and response.json["type"].endswith("/account-deleted")
        and response.json["detail"] == "account deleted; sign in again"
    )


def _member_deleted(api: ApiClient, *, seconds_ago: int = 0) -> tuple[str, str, str]:
    """A workspace with a member who then deletes their account (`seconds_ago`, with a token from a
    sign-in a minute before that); returns (ws, member sub, their token)."""
    ws = api.create_workspace(OWNER)
    api.add_member(ws, OWNER, MEMBER, "agent")
    deleted_at = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    token = api.token(MEMBER, now=(deleted_at - timedelta(minutes=1)).timestamp())
    member_id = api.get("/v1/me", token=token).json["id"]
    assert api.get("/v1/workspaces", token=token).json["items"][0]["id"] == ws
    clock.set_clock(lambda: deleted_at)
    try:
        assert api.delete("/v1/me", token=token).status == 204
    finally:
        clock.set_clock(None)
    return ws, member_id, token


def _user_item(sub: str) -> m.UserModel | None:
    return m.UserModel.get_live(m.user_pk(sub), m.UserModel.SK_VALUE, consistent_read=True)


def test_the_deleted_users_token_is_refused_and_the_user_stays_deleted(api: ApiClient) -> None:
    ws, member_id, token = _member_deleted(api)

    assert _refused(api.get("/v1/me", token=token))
    assert _refused(api.get("/v1/workspaces", token=token))
    assert _refused(api.get(f"/v1/workspaces/{ws}/contacts", token=token))
    assert _refused(api.get(f"/v1/workspaces/{ws}/templates", token=token))  # the send API
    assert _refused(api.get("/v1/me/export", token=token))
    assert _refused(api.post("/v1/workspaces", {"name": "Toko Baru"}, token=token))

    assert _user_item(member_id) is None
    assert identity_repository().list_user_memberships(member_id) == []


def test_a_pending_invitation_is_not_accepted_by_the_deleted_users_token(api: ApiClient) -> None:
    ws, member_id, token = _member_deleted(api)
    invited = api.post(f"/v1/workspaces/{ws}/members", {"email": MEMBER, "role": "admin"}, as_user=OWNER)
    assert invited.status == 201
    assert invited.json["status"] == "invited"  # no such user any more

    assert _refused(api.get("/v1/workspaces", token=token))
    assert _refused(api.get(f"/v1/workspaces/{ws}", token=token))

    assert _user_item(member_id) is None
    assert identity_repository().get_membership(ws, member_id) is None
    assert [i.email for i in identity_repository().list_invitations(ws)] == [MEMBER]  # still pending


def test_a_token_from_a_later_sign_in_creates_a_fresh_user(api: ApiClient) -> None:
    ws, member_id, _ = _member_deleted(api, seconds_ago=30)
    assert api.post(f"/v1/workspaces/{ws}/members", {"email": MEMBER, "role": "agent"}, as_user=OWNER).status == 201
    new_token = api.token(MEMBER)  # the person signs in again, after the deletion

    me = api.get("/v1/me", token=new_token)
    assert me.status == 200, me.body
    assert me.json["id"] == member_id
    stored = _user_item(member_id)
    assert stored is not None
    assert [w["id"] for w in api.get("/v1/workspaces", token=new_token).json["items"]] == [ws]  # invitation taken


def test_a_container_that_remembers_the_user_refuses_too(api: ApiClient) -> None:
    """The deletion ran on another container: this one's sign-in cache still says "seen"."""
    ws = api.create_workspace(OWNER)
    api.add_member(ws, OWNER, MEMBER, "agent")
    token = api.token(MEMBER)
    member_id = api.get("/v1/me", token=token).json["id"]
    remembered = set(workspaces._seen_claims)
    assert any(key[0] == member_id for key in remembered)

    assert api.delete("/v1/me", token=token).status == 204
    workspaces._seen_claims.update(remembered)  # this container never heard of the deletion

    assert _refused(api.get("/v1/me", token=token))
    workspaces._seen_claims.update(remembered)
    assert _refused(api.get("/v1/workspaces", token=token))
    workspaces._seen_claims.update(remembered)
    assert _refused(api.get(f"/v1/workspaces/{ws}/contacts", token=token))
    workspaces._seen_claims.update(remembered)
    assert _refused(api.get(f"/v1/workspaces/{ws}/templates", token=token))  # the send API
    workspaces._seen_claims.update(remembered)
    assert _refused(api.get("/v1/me/export", token=token))
    assert _user_item(member_id) is None


def test_the_deletion_marker_holds_no_personal_data_and_outlives_every_token(api: ApiClient) -> None:
    _, member_id, _ = _member_deleted(api)
    markers = [item for item in m.DeletedUserModel.scan() if item.pk.startswith("DELETED_USER#")]
    assert len(markers) == 1
    marker = markers[0]
    assert member_id not in marker.pk
    assert MEMBER not in marker.pk
    # 30-day refresh token + 60-minute tokens (template.yaml UserPoolClient), with margin.
    lifetime = timedelta(seconds=int(marker.expires_at) - int(marker.deleted_at))
    assert lifetime == retention.USER_DELETION_MARKER_WINDOW >= timedelta(days=30, hours=1)


def test_a_signed_in_request_costs_no_extra_dynamodb_request(api: ApiClient) -> None:
    """The marker is read only when the user record is missing: a first sign-in on a container (an
    existing user) is still one UpdateItem (+ the invitations Query), a warm GET /v1/me one GetItem."""
    api.create_workspace(OWNER)
    token = api.token(OWNER)
    workspaces._seen_claims.clear()  # a new container

    with count_aws() as cold:
        assert api.get("/v1/me", token=token).status == 200
    with count_aws() as warm:
        assert api.get("/v1/me", token=token).status == 200

    def dynamodb(counter: Any) -> dict[str, int]:
        # Without PutItem: the usage-log write happens on a worker thread, whenever it flushes.
        requests = {k.removeprefix("dynamodb:"): n for k, n in counter.requests.items() if k.startswith("dynamodb:")}
        return {k: n for k, n in requests.items() if k != "PutItem"}

    # Each also takes one request of the caller's budget (one UpdateItem, docs/SCALING.md).
    assert dynamodb(cold) == {"UpdateItem": 1 + 1, "Query": 1, "GetItem": 1}
    assert dynamodb(warm) == {"GetItem": 1, "UpdateItem": 1}


# --- the Cognito user ------------------------------------------------------------------------------------


@pytest.fixture
def user_pool(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> str:
    pool_id = boto3.client("cognito-idp").create_user_pool(PoolName="relasify-test")["UserPool"]["Id"]
    monkeypatch.setenv("USER_POOL_ID", pool_id)
    get_settings.cache_clear()
    identity_provider.reset_for_tests()
    return pool_id


def _cognito_user(pool_id: str, username: str, email: str) -> str:
    created = boto3.client("cognito-idp").admin_create_user(
        UserPoolId=pool_id, Username=username, UserAttributes=[{"Name": "email", "Value": email}]
    )
    return next(a["Value"] for a in created["User"]["Attributes"] if a["Name"] == "sub")


def _cognito_user_exists(pool_id: str, username: str) -> bool:
    try:
        boto3.client("cognito-idp").admin_get_user(UserPoolId=pool_id, Username=username)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "UserNotFoundException":
            return False
        raise
    return True


@pytest.mark.parametrize("username", ["native-user-0001", "Google_104577712345678901234"])
def test_delete_me_deletes_the_cognito_user_native_or_federated(api: ApiClient, user_pool: str, username: str) -> None:
    bystander = _cognito_user(user_pool, "someone-else", OWNER)
    sub = _cognito_user(user_pool, username, MEMBER)
    assert sub != bystander
    token = api.token(MEMBER, sub=sub)
    assert api.get("/v1/me", token=token).status == 200

    assert api.delete("/v1/me", token=token).status == 204

    assert not _cognito_user_exists(user_pool, username)
    assert _cognito_user_exists(user_pool, "someone-else")
    assert _refused(api.get("/v1/me", token=token))
