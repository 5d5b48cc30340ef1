"""Contacts API: CRUD, validation bounds, duplicates (also concurrent), consent, listing and filters."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.api import ApiClient, ApiResponse

OWNER = "owner@example.com"
AGENT = "agent@example.com"


@pytest.fixture
def ws(api: ApiClient) -> str:
    ws = api.create_workspace(OWNER)
    api.add_member(ws, OWNER, AGENT, "agent")
    return ws


def _create(api: ApiClient, ws: str, body: dict, user: str = AGENT) -> ApiResponse:
    return api.post(f"/v1/workspaces/{ws}/contacts", body, as_user=user)


def test_create_get_patch_delete(api: ApiClient, ws: str) -> None:
    created = _create(
        api,
        ws,
        {
            "phone": "0812-3456-7890",
            "name": "Budi Santoso",
            "email": "budi@example.com",
            "tags": ["vip", "jakarta"],
            "attributes": {"city": "Jakarta", "orders": 3, "member": True},
        },
    )
    assert created.status == 201, created.body
    contact = created.json
    assert contact["phone"] == "+6281234567890"
    assert contact["tags"] == ["vip", "jakarta"]
    assert contact["consent"] == {"status": "unknown", "source": None, "at": None, "history": []}
    cid = contact["id"]

    got = api.get(f"/v1/workspaces/{ws}/contacts/{cid}", as_user=AGENT)
    assert got.status == 200
    assert got.json["name"] == "Budi Santoso"

    patched = api.patch(
        f"/v1/workspaces/{ws}/contacts/{cid}", {"name": "Budi S.", "tags": ["vip"], "email": None}, as_user=AGENT
    )
    assert patched.status == 200, patched.body
    assert patched.json["name"] == "Budi S."
    assert patched.json["tags"] == ["vip"]
    assert patched.json["email"] is None
    assert patched.json["attributes"] == {"city": "Jakarta", "orders": 3, "member": True}

    assert api.delete(f"/v1/workspaces/{ws}/contacts/{cid}", as_user=AGENT).status == 403  # admin+ (SPEC 3)
    assert api.get(f"/v1/workspaces/{ws}/contacts/{cid}", as_user=AGENT).status == 200
    assert api.delete(f"/v1/workspaces/{ws}/contacts/{cid}", as_user=OWNER).status == 204
    assert api.get(f"/v1/workspaces/{ws}/contacts/{cid}", as_user=AGENT).status == 404
    assert api.delete(f"/v1/workspaces/{ws}/contacts/{cid}", as_user=OWNER).status == 404
    # The phone is free again.
    assert _create(api, ws, {"phone": "+62 812 3456 7890"}).status == 201


def test_duplicate_phone_in_another_format_is_409_naming_the_existing_contact(api: ApiClient, ws: str) -> None:
    first = _create(api, ws, {"phone": "081234567890"}).json
    duplicate = _create(api, ws, {"phone": "wa.me/6281234567890"})
    assert duplicate.status == 409
    assert duplicate.content_type == "application/problem+json"
    assert duplicate.json["existing_contact_id"] == first["id"]
    assert duplicate.json["type"].endswith("/duplicate-contact")


def test_same_phone_in_two_workspaces_is_two_contacts(api: ApiClient, ws: str) -> None:
    other = api.create_workspace(OWNER, name="Other")
    assert _create(api, ws, {"phone": "081234567890"}).status == 201
    assert _create(api, other, {"phone": "081234567890"}, user=OWNER).status == 201


def test_invalid_phone_is_422_with_the_reason(api: ApiClient, ws: str) -> None:
    response = _create(api, ws, {"phone": "0812"})
    assert response.status == 422
    assert response.json["errors"][0]["location"] == "body/phone"
    assert response.json["errors"][0]["type"] == "phone_too_short"
    assert "0812" not in response.body.decode()  # personal data is not echoed


BOUNDS = [
    ({"phone": "081234567890", "tags": [f"t{i}" for i in range(21)]}, "body/tags"),
    ({"phone": "081234567890", "tags": ["x" * 51]}, "body/tags/0"),
    ({"phone": "081234567890", "tags": ["a;b"]}, "body/tags"),
    ({"phone": "081234567890", "attributes": {f"k{i}": 1 for i in range(51)}}, "body/attributes"),
    ({"phone": "081234567890", "attributes": {"Bad Key": "x"}}, "body/attributes"),
    ({"phone": "081234567890", "attributes": {"note": "x" * 501}}, "body/attributes/note"),
    ({"phone": "081234567890", "attributes": {"nested": {"a": 1}}}, "body/attributes/nested"),
    ({"phone": "081234567890", "name": "n" * 201}, "body/name"),
    ({"phone": "081234567890", "email": "not-an-email"}, "body/email"),
    ({"phone": "081234567890", "surprise": 1}, "body/surprise"),
    ({"name": "No Phone"}, "body/phone"),
    ({"phone": "081234567890", "consent": {"status": "opted_in"}}, "body/consent/source"),
]


def test_bounds_are_422_with_the_location(api: ApiClient, ws: str) -> None:
    for body, location in BOUNDS:
        response = _create(api, ws, body)
        assert response.status == 422, (body, response.body)
        assert response.content_type == "application/problem+json"
        locations = [e["location"] for e in response.json["errors"]]
        assert any(loc.startswith(location) for loc in locations), (body, locations)
    assert api.get(f"/v1/workspaces/{ws}/contacts", as_user=AGENT).json["items"] == []


def test_contact_by_user_id_without_phone(api: ApiClient, ws: str) -> None:
    response = _create(api, ws, {"user_id": "ID.1349281234", "name": "Sari"})
    assert response.status == 201
    assert response.json["phone"] is None
    assert response.json["user_id"] == "ID.1349281234"
    again = _create(api, ws, {"user_id": "ID.1349281234"})
    assert again.status == 409
    assert again.json["existing_contact_id"] == response.json["id"]


def test_concurrent_creates_of_one_phone_in_different_formats(api: ApiClient, ws: str) -> None:
    formats = [
        "0812-3456-7890",
        "+62 812 3456 7890",
        "6281234567890",
        "0062 812 3456 7890",
        "wa.me/6281234567890",
        "(0812) 3456 7890",
        "+6281234567890",
        "081234567890",
    ]
    with ThreadPoolExecutor(max_workers=len(formats)) as pool:
        responses = list(pool.map(lambda p: _create(api, ws, {"phone": p}), formats))
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] + [409] * (len(formats) - 1), [r.body for r in responses]
    winner = next(r.json["id"] for r in responses if r.status == 201)
    assert {r.json["existing_contact_id"] for r in responses if r.status == 409} == {winner}
    listed = api.get(f"/v1/workspaces/{ws}/contacts", as_user=AGENT).json["items"]
    assert [c["id"] for c in listed] == [winner]


def test_consent_history_is_append_only(api: ApiClient, ws: str) -> None:
    cid = _create(api, ws, {"phone": "081234567890"}).json["id"]
    path = f"/v1/workspaces/{ws}/contacts/{cid}/consent"
    missing_source = api.post(path, {"status": "opted_in"}, as_user=AGENT)
    assert missing_source.status == 422
    assert missing_source.json["errors"][0]["location"] == "body/source"
    future = api.post(path, {"status": "opted_in", "source": "form", "at": "2999-01-01T00:00:00Z"}, as_user=AGENT)
    assert future.status == 422

    opted_in = api.post(path, {"status": "opted_in", "source": "form", "at": "2026-01-02T03:04:05Z"}, as_user=AGENT)
    assert opted_in.status == 200, opted_in.body
    assert opted_in.json["consent"]["status"] == "opted_in"
    assert opted_in.json["consent"]["source"] == "form"
    opted_out = api.post(path, {"status": "opted_out"}, as_user=AGENT)
    consent = opted_out.json["consent"]
    assert consent["status"] == "opted_out"
    assert [(e["status"], e["source"]) for e in consent["history"]] == [("opted_in", "form"), ("opted_out", None)]
    assert consent["history"][0]["at"].startswith("2026-01-02T03:04:05")
    assert api.get(f"/v1/workspaces/{ws}/contacts/{cid}", as_user=AGENT).json["consent"] == consent

    from relasify.data.contacts import contact_repository
    from relasify.services.contacts import may_send_marketing

    assert may_send_marketing(contact_repository().get(ws, cid)) is False


def test_create_with_initial_opt_in(api: ApiClient, ws: str) -> None:
    response = _create(api, ws, {"phone": "081234567890", "consent": {"status": "opted_in", "source": "form"}})
    assert response.status == 201
    consent = response.json["consent"]
    assert consent["status"] == "opted_in"
    assert len(consent["history"]) == 1
    assert consent["history"][0]["actor_id"]


def test_patch_phone_to_a_taken_one_is_409(api: ApiClient, ws: str) -> None:
    a = _create(api, ws, {"phone": "081234567890"}).json["id"]
    b = _create(api, ws, {"phone": "081298765432"}).json["id"]
    response = api.patch(f"/v1/workspaces/{ws}/contacts/{b}", {"phone": "+6281234567890"}, as_user=AGENT)
    assert response.status == 409
    assert response.json["existing_contact_id"] == a
