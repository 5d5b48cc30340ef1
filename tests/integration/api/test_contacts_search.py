"""Contact search over HTTP (SPEC section 4, `q`): a prefix of any word of the name or e-mail, case-
and accent-insensitive, or phone digits in any Indonesian form, combinable with `tag`; served by word
items (never a Scan), each contact once across pages; words follow renames and leave with the contact."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import boto3
import pytest
from boto3.dynamodb.conditions import Key
from pynamodb.connection.base import Connection
from relasify.data.contact_search import contact_words
from relasify.phones import normalize_phone
from relasify.settings import get_settings

from tests.support.api import ApiClient, run_import_worker

OWNER = "owner@example.com"


@pytest.fixture
def ws(api: ApiClient) -> str:
    return api.create_workspace(OWNER)


@pytest.fixture
def dynamodb_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    original = Connection._make_api_call

    def counting(self: Connection, operation_name: str, operation_kwargs: dict) -> dict:
        calls.append(operation_name)
        return original(self, operation_name, operation_kwargs)

    monkeypatch.setattr(Connection, "_make_api_call", counting)
    return calls


PEOPLE: dict[str, tuple[str, str | None, list[str]]] = {
    "Budi Santoso": ("081234567801", "budi.santoso@gmail.com", ["vip"]),
    "Dédé Kurniawan": ("081234567802", "dede@tokoku.id", []),
    "Ahmad Budiman": ("085712345603", None, ["vip"]),
    "Bunga Bulan": ("087812345604", "bunga@example.com", []),
    "Siti Nurhaliza": ("+6281398765405", None, ["vip"]),
}


def _seed(api: ApiClient, ws: str) -> dict[str, str]:
    ids = {}
    for name, (phone, email, tags) in PEOPLE.items():
        body: dict[str, Any] = {"phone": phone, "name": name, "tags": tags}
        if email:
            body["email"] = email
        created = api.post(f"/v1/workspaces/{ws}/contacts", body, as_user=OWNER)
        assert created.status == 201, created.body
        ids[name] = created.json["id"]
    return ids


def _search(api: ApiClient, ws: str, q: str, extra: str = "") -> list[str]:
    response = api.get(f"/v1/workspaces/{ws}/contacts?q={quote(q)}{extra}", as_user=OWNER)
    assert response.status == 200, response.body
    return sorted(c["name"] for c in response.json["items"])


def test_any_word_of_name_or_email_case_and_accent_insensitive(
    api: ApiClient, ws: str, dynamodb_calls: list[str]
) -> None:
    _seed(api, ws)
    dynamodb_calls.clear()
    assert _search(api, ws, "san") == ["Budi Santoso"]
    assert "Scan" not in dynamodb_calls
    assert dynamodb_calls.count("Query") == 1
    assert _search(api, ws, "BUDI") == ["Ahmad Budiman", "Budi Santoso"]
    assert _search(api, ws, "dede") == ["Dédé Kurniawan"]
    assert _search(api, ws, "DÉD") == ["Dédé Kurniawan"]
    assert _search(api, ws, "kurni") == ["Dédé Kurniawan"]
    assert _search(api, ws, "tokoku") == ["Dédé Kurniawan"]  # a word of the e-mail address
    assert _search(api, ws, "gmail") == ["Budi Santoso"]
    assert _search(api, ws, "santoso bud") == ["Budi Santoso"]  # several words: all must match
    assert _search(api, ws, "siti budi") == []
    assert _search(api, ws, "nurhaliza") == ["Siti Nurhaliza"]
    assert _search(api, ws, "antoso") == []  # a prefix, not any substring
    assert _search(api, ws, "zzz") == []
    assert "Scan" not in dynamodb_calls


def test_phone_digits_in_every_indonesian_form(api: ApiClient, ws: str) -> None:
    _seed(api, ws)
    for q in ("0812345678", "62812345678", "+62812345678", "+62 812-3456-78", "0812-3456-78"):
        assert _search(api, ws, q) == ["Budi Santoso", "Dédé Kurniawan"], q
    for q in ("0813 9876 5405", "6281398765405", "+6281398765405"):
        assert _search(api, ws, q) == ["Siti Nurhaliza"], q
    assert _search(api, ws, "0857") == ["Ahmad Budiman"]


def test_q_combines_with_tag(api: ApiClient, ws: str) -> None:
    _seed(api, ws)
    assert _search(api, ws, "bu", "&tag=vip") == ["Ahmad Budiman", "Budi Santoso"]
    assert _search(api, ws, "bu") == ["Ahmad Budiman", "Budi Santoso", "Bunga Bulan"]
    assert _search(api, ws, "0812", "&tag=vip") == ["Budi Santoso"]
    assert _search(api, ws, "bu", "&tag=nobody") == []


def test_each_contact_once_across_pages_and_cursors_bound_to_their_search(api: ApiClient, ws: str) -> None:
    ids = _seed(api, ws)  # "Bunga Bulan" has two words starting with "bu"
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = api.get(
            f"/v1/workspaces/{ws}/contacts?q=bu&limit=1" + (f"&cursor={cursor}" if cursor else ""), as_user=OWNER
        )
        assert page.status == 200, page.body
        assert len(page.json["items"]) <= 1
        seen += [c["id"] for c in page.json["items"]]
        cursor = page.json["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted([ids["Ahmad Budiman"], ids["Budi Santoso"], ids["Bunga Bulan"]])
    first = api.get(f"/v1/workspaces/{ws}/contacts?q=bu&limit=1", as_user=OWNER).json
    assert api.get(f"/v1/workspaces/{ws}/contacts?q=si&cursor={first['next_cursor']}", as_user=OWNER).status == 400
    other = api.create_workspace(OWNER, name="Other")
    assert api.get(f"/v1/workspaces/{other}/contacts?q=bu&cursor={first['next_cursor']}", as_user=OWNER).status == 400


def _word_items(ws: str) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb").Table(get_settings().table_name)
    items: list[dict[str, Any]] = []
    for first in "0123456789abcdefghijklmnopqrstuvwxyz":
        items += table.query(KeyConditionExpression=Key("PK").eq(f"WS#{ws}#WORD#{first}"))["Items"]
    return items


def test_words_follow_changes_and_leave_with_the_contact(api: ApiClient, ws: str) -> None:
    ids = _seed(api, ws)
    budi = ids["Budi Santoso"]
    renamed = api.patch(
        f"/v1/workspaces/{ws}/contacts/{budi}", {"name": "Bambang Wijaya", "email": None}, as_user=OWNER
    )
    assert renamed.status == 200, renamed.body
    assert _search(api, ws, "santoso") == []
    assert _search(api, ws, "gmail") == []
    assert _search(api, ws, "wija") == ["Bambang Wijaya"]
    assert _search(api, ws, "0812345678") == ["Bambang Wijaya", "Dédé Kurniawan"]
    mine = sorted(i["SK"] for i in _word_items(ws) if i["contact_id"] == budi)
    assert mine == sorted([f"bambang#{budi}", f"wijaya#{budi}", f"6281234567801#{budi}"])

    # Erasure removes the words with the contact (they are personal data).
    assert api.post(f"/v1/workspaces/{ws}/contacts/{budi}/erase", as_user=OWNER).status == 200
    assert [i for i in _word_items(ws) if i["contact_id"] == budi] == []
    assert _search(api, ws, "bambang") == []
    assert api.delete(f"/v1/workspaces/{ws}/contacts/{ids['Siti Nurhaliza']}", as_user=OWNER).status == 204
    assert [i for i in _word_items(ws) if i["contact_id"] == ids["Siti Nurhaliza"]] == []
    # What is left is exactly the words of the remaining contacts: no orphans.
    expected = {
        f"{word}#{ids[name]}"
        for name in ("Dédé Kurniawan", "Ahmad Budiman", "Bunga Bulan")
        for word in contact_words(name, PEOPLE[name][1], normalize_phone(PEOPLE[name][0]))
    }
    assert {i["SK"] for i in _word_items(ws)} == expected
    assert len(expected) == 5 + 3 + 5


def test_imported_contacts_are_searchable_and_merges_move_their_words(api: ApiClient, ws: str) -> None:
    def run(csv: bytes) -> None:
        response = api.request(
            "POST",
            f"/v1/workspaces/{ws}/contacts/imports",
            body=csv,
            headers={"content-type": "text/csv"},
            as_user=OWNER,
        )
        assert response.status == 202, response.body
        run_import_worker(get_settings().import_queue_url)

    run(b"phone,name,email\n081234500001,Rina Marlina,rina@warung.id\n081234500002,Joko,\n")
    assert _search(api, ws, "marl") == ["Rina Marlina"]
    assert _search(api, ws, "warung") == ["Rina Marlina"]
    assert _search(api, ws, "0812345000") == ["Joko", "Rina Marlina"]
    run(b"phone,name\n081234500001,Rina Kartika\n")
    assert _search(api, ws, "marl") == []
    assert _search(api, ws, "kart") == ["Rina Kartika"]
    assert _search(api, ws, "warung") == ["Rina Kartika"]  # the e-mail did not change
