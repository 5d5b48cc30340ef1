"""Canned replies over HTTP (SPEC section 5a, role table of section 3): agents read and search by
shortcut prefix, admins create, change and delete; a shortcut is unique per workspace, atomically."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from relasify.settings import get_settings

from tests.support.api import ApiClient

OWNER = "owner@example.com"
ADMIN = "admin@example.com"
AGENT = "agent@example.com"


@pytest.fixture
def ws(api: ApiClient) -> str:
    ws = api.create_workspace(OWNER)
    api.add_member(ws, OWNER, ADMIN, "admin")
    api.add_member(ws, OWNER, AGENT, "agent")
    return ws


def _path(ws: str, reply_id: str | None = None) -> str:
    return f"/v1/workspaces/{ws}/canned-replies" + (f"/{reply_id}" if reply_id else "")


def _create(api: ApiClient, ws: str, shortcut: str, body: str = "Terima kasih!", user: str = ADMIN) -> str:
    created = api.post(_path(ws), {"shortcut": shortcut, "body": body}, as_user=user)
    assert created.status == 201, created.body
    return str(created.json["id"])


def _shortcuts(api: ApiClient, ws: str, query: str = "") -> list[str]:
    listed = api.get(_path(ws) + query, as_user=AGENT)
    assert listed.status == 200, listed.body
    return [r["shortcut"] for r in listed.json["items"]]


def test_admin_manages_agent_reads_and_searches_by_prefix(api: ApiClient, ws: str) -> None:
    thanks = _create(api, ws, "thanks", "Terima kasih sudah menghubungi kami.")
    _create(api, ws, "thx-short", "Makasih!")
    _create(api, ws, "ongkir", "Ongkos kirim ke Jakarta Rp10.000.")
    assert _shortcuts(api, ws) == ["ongkir", "thanks", "thx-short"]
    assert _shortcuts(api, ws, "?q=th") == ["thanks", "thx-short"]
    assert _shortcuts(api, ws, "?q=THA") == ["thanks"]  # shortcuts are lower case; so is the query
    assert _shortcuts(api, ws, "?q=zzz") == []

    got = api.get(_path(ws, thanks), as_user=AGENT)
    assert got.status == 200
    assert got.json["body"] == "Terima kasih sudah menghubungi kami."

    renamed = api.patch(_path(ws, thanks), {"shortcut": "tq", "body": "Terima kasih."}, as_user=ADMIN)
    assert renamed.status == 200, renamed.body
    assert (renamed.json["shortcut"], renamed.json["body"]) == ("tq", "Terima kasih.")
    assert _shortcuts(api, ws, "?q=t") == ["thx-short", "tq"]
    # the old shortcut is free again, the new one is taken
    _create(api, ws, "thanks", "Lagi")
    clash = api.post(_path(ws), {"shortcut": "tq", "body": "x"}, as_user=ADMIN)
    assert clash.status == 409
    assert clash.json["type"].endswith("duplicate-shortcut")
    assert clash.json["existing_id"] == thanks

    assert api.delete(_path(ws, thanks), as_user=ADMIN).status == 204
    assert api.get(_path(ws, thanks), as_user=AGENT).status == 404
    assert api.delete(_path(ws, thanks), as_user=ADMIN).status == 404
    assert "tq" not in _shortcuts(api, ws)
    _create(api, ws, "tq", "Free again after the delete")


def test_agents_cannot_write(api: ApiClient, ws: str) -> None:
    reply = _create(api, ws, "halo")
    assert api.post(_path(ws), {"shortcut": "mine", "body": "x"}, as_user=AGENT).status == 403
    assert api.patch(_path(ws, reply), {"body": "changed"}, as_user=AGENT).status == 403
    assert api.delete(_path(ws, reply), as_user=AGENT).status == 403
    assert _shortcuts(api, ws) == ["halo"]
    assert api.get(_path(ws, reply), as_user=AGENT).json["body"] == "Terima kasih!"


@pytest.mark.parametrize(
    "body",
    [
        {"shortcut": "Thanks", "body": "x"},  # upper case
        {"shortcut": "a b", "body": "x"},
        {"shortcut": "x" * 33, "body": "x"},
        {"shortcut": "", "body": "x"},
        {"shortcut": "ok", "body": ""},
        {"shortcut": "ok", "body": "x" * 4097},
        {"shortcut": "ok"},
        {"shortcut": "ok", "body": "x", "extra": 1},
    ],
)
def test_invalid_bodies_are_422_and_store_nothing(api: ApiClient, ws: str, body: dict[str, object]) -> None:
    refused = api.post(_path(ws), body, as_user=ADMIN)
    assert refused.status == 422, refused.body
    assert _shortcuts(api, ws) == []


def test_empty_patch_is_422(api: ApiClient, ws: str) -> None:
    reply = _create(api, ws, "halo")
    assert api.patch(_path(ws, reply), {}, as_user=ADMIN).status == 422


def test_concurrent_creates_of_one_shortcut_leave_exactly_one(api: ApiClient, ws: str) -> None:
    def attempt(n: int) -> int:
        return api.post(_path(ws), {"shortcut": "promo", "body": f"Promo {n}"}, as_user=ADMIN).status

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = sorted(pool.map(attempt, range(6)))
    assert statuses.count(201) == 1, statuses
    assert set(statuses) <= {201, 409}, statuses
    assert _shortcuts(api, ws) == ["promo"]


def test_rename_onto_a_taken_shortcut_is_409_and_changes_nothing(api: ApiClient, ws: str) -> None:
    first = _create(api, ws, "first", "One")
    second = _create(api, ws, "second", "Two")
    refused = api.patch(_path(ws, second), {"shortcut": "first", "body": "Changed"}, as_user=ADMIN)
    assert refused.status == 409
    assert refused.json["existing_id"] == first
    assert api.get(_path(ws, second), as_user=AGENT).json["body"] == "Two"
    assert _shortcuts(api, ws) == ["first", "second"]


def test_replies_are_account_data_in_the_workspace_partition(api: ApiClient, ws: str) -> None:
    """Kept while the workspace is active (no TTL), in `WS#<ws>` where the closure stamp walks."""
    reply = _create(api, ws, "halo")
    table = boto3.resource("dynamodb").Table(get_settings().table_name)
    item = table.get_item(Key={"PK": f"WS#{ws}", "SK": f"CANNED#{reply}"})["Item"]
    marker = table.get_item(Key={"PK": f"WS#{ws}", "SK": "CANNEDKEY#halo"})["Item"]
    assert "expires_at" not in item
    assert "expires_at" not in marker
    assert marker["reply_id"] == reply
