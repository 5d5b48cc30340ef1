"""Contacts listing: cursor pagination bound to the workspace, tag and q filters served by indexes,
one DynamoDB Query per page and no Scan."""

from __future__ import annotations

from pathlib import Path

import pytest
from pynamodb.connection.base import Connection

from tests.support.api import ApiClient

OWNER = "owner@example.com"
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def ws(api: ApiClient) -> str:
    return api.create_workspace(OWNER)


@pytest.fixture
def dynamodb_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every DynamoDB operation made through pynamodb, by name."""
    calls: list[str] = []
    original = Connection._make_api_call

    def counting(self: Connection, operation_name: str, operation_kwargs: dict) -> dict:
        calls.append(operation_name)
        return original(self, operation_name, operation_kwargs)

    monkeypatch.setattr(Connection, "_make_api_call", counting)
    return calls


def _seed(api: ApiClient, ws: str) -> dict[str, str]:
    people = {
        "Budi Santoso": ("081234567801", ["vip", "jakarta"]),
        "budiman": ("081234567802", ["jakarta"]),
        "Sari Dewi": ("081398765403", ["vip"]),
        "Agus": ("082112345604", []),
        "Bunga": ("+6281234567805", ["vip"]),
    }
    ids = {}
    for name, (phone, tags) in people.items():
        response = api.post(
            f"/v1/workspaces/{ws}/contacts", {"phone": phone, "name": name, "tags": tags}, as_user=OWNER
        )
        assert response.status == 201, response.body
        ids[name] = response.json["id"]
    return ids


def _names(response_json: dict) -> list[str]:
    return [c["name"] for c in response_json["items"]]


def test_pagination_filters_and_cursor_binding(api: ApiClient, ws: str, dynamodb_calls: list[str]) -> None:
    ids = _seed(api, ws)
    base = f"/v1/workspaces/{ws}/contacts"

    # Cursor pagination in creation order, one Query per page, no Scan.
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        dynamodb_calls.clear()
        url = f"{base}?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(url, as_user=OWNER)
        assert page.status == 200, page.body
        assert dynamodb_calls.count("Query") == 1, dynamodb_calls
        assert "Scan" not in dynamodb_calls
        seen += [c["id"] for c in page.json["items"]]
        pages += 1
        cursor = page.json["next_cursor"]
        if cursor is None:
            break
    assert seen == list(ids.values())
    assert pages == 3

    # Tag: one Query on the tag partition (+ one BatchGetItem for the contacts).
    dynamodb_calls.clear()
    vip = api.get(f"{base}?tag=vip", as_user=OWNER)
    assert sorted(_names(vip.json)) == ["Budi Santoso", "Bunga", "Sari Dewi"]
    assert dynamodb_calls.count("Query") == 1
    assert "Scan" not in dynamodb_calls

    # q: a name prefix (case-insensitive) on the search words ...
    dynamodb_calls.clear()
    assert sorted(_names(api.get(f"{base}?q=BUDI", as_user=OWNER).json)) == ["Budi Santoso", "budiman"]
    assert dynamodb_calls.count("Query") == 1
    assert "Scan" not in dynamodb_calls
    # ... or a phone prefix on GSI1, in any common format.
    for q in ("0812345678", "+62812345678", "62812345678", "0812-3456-78"):
        found = api.get(f"{base}?q={q.replace('+', '%2B')}", as_user=OWNER).json
        assert sorted(_names(found)) == ["Budi Santoso", "Bunga", "budiman"], q
    exact = api.get(f"{base}?q=0813-9876-5403", as_user=OWNER).json
    assert _names(exact) == ["Sari Dewi"]
    assert api.get(f"{base}?q=zzz", as_user=OWNER).json == {"items": [], "next_cursor": None}

    # Filtered listings paginate too.
    first = api.get(f"{base}?tag=vip&limit=2", as_user=OWNER).json
    rest = api.get(f"{base}?tag=vip&limit=2&cursor={first['next_cursor']}", as_user=OWNER).json
    assert len(first["items"]) == 2
    assert len(rest["items"]) == 1

    # A cursor is bound to its workspace and its listing.
    other = api.create_workspace(OWNER, name="Other")
    foreign = api.get(f"/v1/workspaces/{other}/contacts?cursor={first['next_cursor']}", as_user=OWNER)
    assert foreign.status == 400
    assert foreign.json["type"].endswith("/invalid-cursor")
    other_listing = api.get(f"{base}?q=budi&cursor={first['next_cursor']}", as_user=OWNER)
    assert other_listing.status == 400
    assert api.get(f"{base}?cursor=garbage", as_user=OWNER).status == 400


def test_list_bounds(api: ApiClient, ws: str) -> None:
    base = f"/v1/workspaces/{ws}/contacts"
    for query in ("limit=0", "limit=101", "tag=" + "x" * 51):
        response = api.get(f"{base}?{query}", as_user=OWNER)
        assert response.status == 422, (query, response.body)
        assert response.json["errors"][0]["location"].startswith("query"), response.json


def test_no_scan_in_the_contacts_code() -> None:
    """Static guard: the contacts code paths never call Scan."""
    sources = [
        "layers/domain/relasify/data/contacts.py",
        "layers/domain/relasify/data/contact_search.py",
        "layers/domain/relasify/data/imports.py",
        "layers/domain/relasify/data/import_contacts.py",
        "layers/domain/relasify/services/contacts.py",
        "layers/domain/relasify/services/imports.py",
        "layers/domain/relasify/services/import_rows.py",
        "layers/domain/relasify/services/import_plan.py",
        "layers/domain/relasify/services/exports.py",
        "functions/contacts/contact_routes.py",
        "functions/contacts/import_worker.py",
    ]
    for source in sources:
        text = (REPO / source).read_text()
        assert ".scan(" not in text, source
        assert '"Scan"' not in text, source
