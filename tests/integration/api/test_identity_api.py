"""Workspaces, members, roles and the WhatsApp connection through the API."""

from __future__ import annotations

import base64

import boto3
from relasify_local.sandbox import Sandbox

from tests.support.api import ApiClient

OWNER = "owner@example.com"
CONNECTION = {
    "waba_id": "102345678901234",
    "phone_number_id": "109876543210987",
    "display_phone_number": "6281234500000",
    "access_token": "EAAG-token-aaaaaaaa",
}


def test_health_is_public(api: ApiClient) -> None:
    response = api.get("/health")
    assert response.status == 200
    assert response.json == {"status": "ok"}


def test_v1_needs_a_token(api: ApiClient) -> None:
    assert api.get("/v1/workspaces").status == 401
    assert api.get("/v1/workspaces", token="not-a-jwt").status == 401


def test_create_and_list_workspaces(api: ApiClient) -> None:
    created = api.post("/v1/workspaces", {"name": "Toko Budi"}, as_user=OWNER)
    assert created.status == 201
    assert created.json["role"] == "owner"
    listed = api.get("/v1/workspaces", as_user=OWNER)
    assert [w["id"] for w in listed.json["items"]] == [created.json["id"]]
    # Another user sees none of it.
    assert api.get("/v1/workspaces", as_user="stranger@example.com").json["items"] == []


def test_me_is_created_from_claims(api: ApiClient) -> None:
    response = api.get("/v1/me", as_user=OWNER)
    assert response.status == 200
    assert response.json["email"] == OWNER


def test_bad_input_is_a_problem(api: ApiClient) -> None:
    response = api.post("/v1/workspaces", {"name": ""}, as_user=OWNER)
    assert response.status == 422
    assert response.content_type == "application/problem+json"
    assert response.json["errors"][0]["location"].endswith("name")
    malformed = api.request("POST", "/v1/workspaces", body=b"{not json", as_user=OWNER)
    assert malformed.status in (400, 422)
    assert malformed.content_type == "application/problem+json"


def test_non_member_gets_404_and_low_role_403(api: ApiClient) -> None:
    ws = api.create_workspace(OWNER)
    assert api.get(f"/v1/workspaces/{ws}", as_user="stranger@example.com").status == 404
    api.add_member(ws, OWNER, "agent@example.com", "agent")
    assert api.get(f"/v1/workspaces/{ws}", as_user="agent@example.com").status == 200
    forbidden = api.get(f"/v1/workspaces/{ws}/audit", as_user="agent@example.com")
    assert forbidden.status == 403
    assert forbidden.content_type == "application/problem+json"


def test_last_owner_cannot_leave_or_be_demoted(api: ApiClient) -> None:
    ws = api.create_workspace(OWNER)
    me = api.get("/v1/me", as_user=OWNER).json["id"]
    assert api.patch(f"/v1/workspaces/{ws}/members/{me}", {"role": "admin"}, as_user=OWNER).status == 409
    assert api.delete(f"/v1/workspaces/{ws}/members/{me}", as_user=OWNER).status == 409


def test_admin_cannot_grant_owner(api: ApiClient) -> None:
    ws = api.create_workspace(OWNER)
    api.add_member(ws, OWNER, "admin@example.com", "admin")
    response = api.post(
        f"/v1/workspaces/{ws}/members", {"email": "x@example.com", "role": "owner"}, as_user="admin@example.com"
    )
    assert response.status == 403


def test_invitation_becomes_membership_on_first_sign_in(api: ApiClient) -> None:
    ws = api.create_workspace(OWNER)
    invited = api.post(f"/v1/workspaces/{ws}/members", {"email": "new@example.com", "role": "agent"}, as_user=OWNER)
    assert invited.status == 201
    assert invited.json["status"] == "invited"
    assert api.get(f"/v1/workspaces/{ws}", as_user="new@example.com").status == 200


def test_a_pending_invitation_can_be_revoked_and_then_grants_nothing(api: ApiClient) -> None:
    ws = api.create_workspace(OWNER)
    api.add_member(ws, OWNER, "admin@example.com", "admin")
    for email, role in (("new@example.com", "agent"), ("boss@example.com", "owner")):
        assert api.post(f"/v1/workspaces/{ws}/members", {"email": email, "role": role}, as_user=OWNER).status == 201
    # An admin may not revoke what only an owner may grant.
    assert api.delete(f"/v1/workspaces/{ws}/members/boss@example.com", as_user="admin@example.com").status == 403
    assert api.delete(f"/v1/workspaces/{ws}/members/New@Example.com", as_user="admin@example.com").status == 204
    assert api.delete(f"/v1/workspaces/{ws}/members/new@example.com", as_user=OWNER).status == 404  # spent
    listed = api.get(f"/v1/workspaces/{ws}/members", as_user=OWNER).json["items"]
    assert sorted(m["email"] for m in listed if m["status"] == "invited") == ["boss@example.com"]
    assert api.get(f"/v1/workspaces/{ws}", as_user="new@example.com").status == 404  # no access on sign-in
    audit = api.get(f"/v1/workspaces/{ws}/audit", as_user=OWNER).json["items"]
    revoked = [e for e in audit if e["action"] == "member.invitation_revoked"]
    assert len(revoked) == 1
    assert "new@example.com" not in str(revoked)  # no personal data in the security log entry


def test_whatsapp_token_is_encrypted_and_never_returned(api: ApiClient) -> None:
    ws = api.create_workspace(OWNER)
    secret = "EAAG-super-secret-token-123"
    body = {**CONNECTION, "access_token": secret}
    put = api.put(f"/v1/workspaces/{ws}/whatsapp", body, as_user=OWNER)
    assert put.status == 200, put.body
    assert secret not in put.body.decode()
    got = api.get(f"/v1/workspaces/{ws}/whatsapp", as_user=OWNER)
    assert got.status == 200
    assert secret not in got.body.decode()
    assert got.json["phone_number_id"] == "109876543210987"
    # Stored as KMS ciphertext: nowhere in the table in clear.
    items = boto3.client("dynamodb").scan(TableName=api_table())["Items"]
    assert secret not in str(items)
    assert secret.encode() not in b"".join(
        base64.b64decode(i["encrypted_access_token"]["S"]) for i in items if "encrypted_access_token" in i
    )
    # The token change is in the audit log (admin+).
    audit = api.get(f"/v1/workspaces/{ws}/audit", as_user=OWNER)
    assert "whatsapp.token_changed" in [e["action"] for e in audit.json["items"]]


def test_phone_number_id_belongs_to_one_workspace(api: ApiClient) -> None:
    body = dict(CONNECTION)
    first = api.create_workspace(OWNER)
    second = api.create_workspace("other@example.com")
    assert api.put(f"/v1/workspaces/{first}/whatsapp", body, as_user=OWNER).status == 200
    clash = api.put(f"/v1/workspaces/{second}/whatsapp", body, as_user="other@example.com")
    assert clash.status == 409
    assert clash.content_type == "application/problem+json"


def api_table() -> str:
    from relasify.settings import get_settings

    return get_settings().table_name


def test_authorisation_denials_are_in_the_security_log(api: ApiClient) -> None:
    from relasify import clock
    from relasify.data.identity import identity_repository

    ws = api.create_workspace(OWNER)
    api.add_member(ws, OWNER, "agent@example.com", "agent")
    assert api.get(f"/v1/workspaces/{ws}/audit", as_user="agent@example.com").status == 403
    assert api.get(f"/v1/workspaces/{ws}", as_user="stranger@example.com").status == 404

    audit = api.get(f"/v1/workspaces/{ws}/audit", as_user=OWNER).json["items"]
    denied = [e for e in audit if e["action"] == "authorization.denied"]
    assert [e["details"]["reason"] for e in denied] == ["role_too_low"]
    security = identity_repository().list_security_log(clock.now().strftime("%Y-%m-%d")).items
    assert any(e.action == "authorization.denied" and e.details.get("reason") == "not_a_member" for e in security)


def test_whatsapp_send_cap_is_set_by_admins_bounded_and_used_by_senders(api: ApiClient) -> None:
    from relasify.services import delivery, workspaces

    ws = api.create_workspace(OWNER)
    path = f"/v1/workspaces/{ws}/whatsapp"
    assert api.patch(path, {"throughput_per_second": 20}, as_user=OWNER).status == 404  # nothing connected yet
    body = dict(CONNECTION)
    assert api.put(path, body, as_user=OWNER).status == 200
    assert api.get(path, as_user=OWNER).json["throughput_per_second"] == 80  # Meta's default
    for bad in (0, 1001, -5, "fast", None):
        refused = api.patch(path, {"throughput_per_second": bad}, as_user=OWNER)
        assert refused.status == 422, (bad, refused.body)
        assert refused.content_type.startswith("application/problem+json")
    assert api.get(path, as_user=OWNER).json["throughput_per_second"] == 80  # a refused change changed nothing

    changed = api.patch(path, {"throughput_per_second": 20}, as_user=OWNER)
    assert changed.status == 200, changed.body
    assert changed.json["throughput_per_second"] == 20
    assert api.get(path, as_user=OWNER).json["throughput_per_second"] == 20
    assert delivery.send_rate(workspaces.get_whatsapp(ws)) == 20  # what every sender's limiter is built with
    audit = api.get(f"/v1/workspaces/{ws}/audit", as_user=OWNER).json["items"]
    entry = next(e for e in audit if e["action"] == "whatsapp.settings_changed")
    assert entry["target_ids"] == ["109876543210987"]


def test_rotating_the_token_keeps_the_send_cap_and_another_number_starts_from_the_default(
    api: ApiClient, graph_sandbox: Sandbox
) -> None:
    from relasify.services import delivery, workspaces

    graph_sandbox.register_number("109876543210999", display_phone_number="6281234500001")  # the seeded WABA's

    ws = api.create_workspace(OWNER)
    path = f"/v1/workspaces/{ws}/whatsapp"
    body = dict(CONNECTION)
    assert api.put(path, body, as_user=OWNER).status == 200
    assert api.patch(path, {"throughput_per_second": 400}, as_user=OWNER).status == 200

    rotated = api.put(path, {**body, "access_token": "EAAG-token-bbbbbbbb"}, as_user=OWNER)
    assert rotated.status == 200, rotated.body
    assert rotated.json["throughput_per_second"] == 400
    assert api.get(path, as_user=OWNER).json["throughput_per_second"] == 400
    assert delivery.send_rate(workspaces.get_whatsapp(ws)) == 400  # senders keep the upgraded cap

    # Meta's throughput tier is the number's: a different number starts from the default.
    other_number = {**body, "phone_number_id": "109876543210999", "display_phone_number": "6281234500001"}
    switched = api.put(path, other_number, as_user=OWNER)
    assert switched.status == 200, switched.body
    assert switched.json["throughput_per_second"] == 80
    assert delivery.send_rate(workspaces.get_whatsapp(ws)) == 80
