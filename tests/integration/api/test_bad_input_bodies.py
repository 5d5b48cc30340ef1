"""Bad-input corpus for the JSON routes: oversize, deeply nested, invalid UTF-8, wrong content types, empty
bodies, non-object JSON, huge strings, unknown fields and wrong types. Every request gets a clear 4xx
problem+json (never a 5xx), and what was stored before is still there, unchanged, afterwards."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.fuzz.inprocess import shared_moto_api
from tests.support.api import ApiClient, ApiResponse

OWNER = "owner@bad-input.test"
MAX_BODY = 256 * 1024

# Every JSON route that takes a body, with a valid body for it ({ws} and {contact} filled in per test).
JSON_ROUTES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "create-workspace": ("POST", "/v1/workspaces", {"name": "Toko Lain"}),
    "create-contact": ("POST", "/v1/workspaces/{ws}/contacts", {"phone": "081234567802", "name": "Sari"}),
    "patch-contact": ("PATCH", "/v1/workspaces/{ws}/contacts/{contact}", {"name": "Budi Baru"}),
    "consent": ("POST", "/v1/workspaces/{ws}/contacts/{contact}/consent", {"status": "opted_out"}),
    "add-member": ("POST", "/v1/workspaces/{ws}/members", {"email": "agent@bad-input.test", "role": "agent"}),
    "connect-whatsapp": (
        "PUT",
        "/v1/workspaces/{ws}/whatsapp",
        {"waba_id": "1", "phone_number_id": "2", "display_phone_number": "+62 811", "access_token": "x" * 12},
    ),
    "create-template": (
        "POST",
        "/v1/workspaces/{ws}/templates",
        {"name": "promo", "language": "id", "category": "MARKETING", "components": [{"type": "BODY", "text": "Hi"}]},
    ),
    "send-message": (
        "POST",
        "/v1/workspaces/{ws}/messages",
        {"to": "081234567803", "type": "text", "text": {"body": "x"}},
    ),
    "create-broadcast": ("POST", "/v1/workspaces/{ws}/broadcasts", {"name": "b", "template": {"name": "promo"}}),
    "create-import": ("POST", "/v1/workspaces/{ws}/contacts/imports", {"filename": "contacts.csv"}),
}
ROUTE_IDS = list(JSON_ROUTES)


@dataclass
class Seeded:
    api: ApiClient
    ws: str
    contact_id: str
    snapshot: Callable[[], Any]

    def path(self, template: str) -> str:
        return template.format(ws=self.ws, contact=self.contact_id)

    def send(self, route: str, body: bytes, content_type: str = "application/json", **kw: Any) -> ApiResponse:
        method, template, _ = JSON_ROUTES[route]
        headers = {"content-type": content_type, **kw.pop("headers", {})}
        return self.api.request(method, self.path(template), body=body, headers=headers, as_user=OWNER, **kw)


@pytest.fixture(scope="module")
def module_api() -> Iterator[ApiClient]:
    with shared_moto_api() as api:
        yield api


@pytest.fixture(scope="module")
def seeded(module_api: ApiClient) -> Seeded:
    api = module_api
    ws = api.create_workspace(OWNER)
    created = api.post(f"/v1/workspaces/{ws}/contacts", {"phone": "081234567801", "name": "Budi"}, as_user=OWNER)
    assert created.status == 201, created.body
    contact_id = created.json["id"]

    def snapshot() -> Any:
        workspace = api.get(f"/v1/workspaces/{ws}", as_user=OWNER)
        contact = api.get(f"/v1/workspaces/{ws}/contacts/{contact_id}", as_user=OWNER)
        listed = api.get(f"/v1/workspaces/{ws}/contacts", as_user=OWNER)
        workspaces = api.get("/v1/workspaces", as_user=OWNER)
        members = api.get(f"/v1/workspaces/{ws}/members", as_user=OWNER)
        assert (workspace.status, contact.status, listed.status, workspaces.status, members.status) == (200,) * 5
        return (
            workspace.json["name"],
            contact.json,
            [c["id"] for c in listed.json["items"]],
            sorted(w["id"] for w in workspaces.json["items"]),
            sorted(m["email"] for m in members.json["items"]),
        )

    return Seeded(api, ws, contact_id, snapshot)


def assert_problem(response: ApiResponse, *statuses: int) -> dict[str, Any]:
    """A 4xx RFC 9457 problem with a message, among the expected statuses."""
    assert response.status in statuses, (response.status, response.body[:300])
    assert response.content_type.startswith("application/problem+json"), response.headers
    body = response.json
    for field in ("type", "title", "status", "detail"):
        assert body.get(field), (field, body)
    assert body["status"] == response.status
    return body


def nested(depth: int, opener: str = "[", closer: str = "]") -> bytes:
    return (opener * depth + closer * depth).encode()


@pytest.mark.parametrize("route", ROUTE_IDS)
def test_oversize_body_is_413(seeded: Seeded, route: str) -> None:
    before = seeded.snapshot()
    _, _, valid = JSON_ROUTES[route]
    padded = {**valid, "padding": "x" * (MAX_BODY + 1)}
    problem = assert_problem(seeded.send(route, json.dumps(padded).encode()), 413)
    assert problem["type"].endswith("/payload-too-large")
    assert str(MAX_BODY) in problem["detail"]
    assert seeded.snapshot() == before


@pytest.mark.parametrize("route", ROUTE_IDS)
@pytest.mark.parametrize(
    "body",
    [nested(10_000), nested(10_000, '{"a":', "}")[:-10_000] + b"1" + b"}" * 10_000, nested(100_000)],
    ids=["list-10k", "object-10k", "list-100k"],
)
def test_deeply_nested_json_is_rejected(seeded: Seeded, route: str, body: bytes) -> None:
    before = seeded.snapshot()
    assert_problem(seeded.send(route, body), 400, 413, 422)
    assert seeded.snapshot() == before


@pytest.mark.parametrize("route", ROUTE_IDS)
@pytest.mark.parametrize(
    "body",
    [b'{"name": "\xff\xfe"}', b'{"name": "\xc3\x28"}', b"\x80\x81\x82", b'{"name": "\xed\xa0\x80"}'],
    ids=["ff-fe", "bad-continuation", "lone-continuation", "surrogate"],
)
def test_invalid_utf8_is_400(seeded: Seeded, route: str, body: bytes) -> None:
    before = seeded.snapshot()
    problem = assert_problem(seeded.send(route, body), 400, 422)
    assert "UTF-8" in problem["detail"] or problem["status"] == 422 or "JSON" in problem["detail"]
    assert seeded.snapshot() == before


# Bodies that are not JSON, sent with a content type that does not say JSON: refused with 415, never
# parsed as a form, a multipart upload or anything else.
WRONG_CONTENT_TYPES = {
    "text-plain": ("text/plain", b"name=Budi"),
    "form": ("application/x-www-form-urlencoded", b"name=Budi&phone=0812"),
    "multipart-no-boundary": ("multipart/form-data", b"--x\r\n\r\nname\r\n--x--"),
    "multipart": (
        "multipart/form-data; boundary=x",
        b'--x\r\nContent-Disposition: form-data; name="name"\r\n\r\nBudi\r\n--x--',
    ),
    "xml": ("application/xml", b"<contact><name>Budi</name></contact>"),
    "text-xml": ("text/xml", b"<a/>"),
    "octet-stream": ("application/octet-stream", b"\x00\x01\x02"),
}
# Content types curl, HTML forms and hurried clients send with a JSON body.
NON_JSON_CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "text/plain",
    "text/plain; charset=utf-8",
    "multipart/form-data",
    "application/octet-stream",
    "application/xml",
]


@pytest.mark.parametrize("route", [r for r in ROUTE_IDS if r != "create-import"])
@pytest.mark.parametrize("kind", list(WRONG_CONTENT_TYPES))
def test_wrong_content_type_with_a_body_that_is_not_json_is_415(seeded: Seeded, route: str, kind: str) -> None:
    before = seeded.snapshot()
    content_type, body = WRONG_CONTENT_TYPES[kind]
    problem = assert_problem(seeded.send(route, body, content_type), 415)
    assert problem["type"].endswith("/unsupported-media-type")
    assert "application/json" in problem["detail"]
    assert "not valid JSON" in problem["detail"]
    assert seeded.snapshot() == before


@pytest.mark.parametrize("route", [r for r in ROUTE_IDS if r != "create-import"])
@pytest.mark.parametrize("content_type", NON_JSON_CONTENT_TYPES)
def test_json_body_is_read_as_json_whatever_the_content_type(seeded: Seeded, route: str, content_type: str) -> None:
    # An unknown field proves the body was read as JSON: a form parser would have named the whole
    # JSON text as one "extra input" and missed every required field.
    before = seeded.snapshot()
    _, _, valid = JSON_ROUTES[route]
    problem = assert_problem(seeded.send(route, json.dumps({**valid, "is_admin": True}).encode(), content_type), 422)
    locations = [e["location"] for e in problem["errors"]]
    assert "body/is_admin" in locations, problem
    assert not any("{" in loc for loc in locations), problem
    assert seeded.snapshot() == before


@pytest.mark.parametrize("content_type", NON_JSON_CONTENT_TYPES)
def test_json_list_with_another_content_type_is_422_like_with_json(seeded: Seeded, content_type: str) -> None:
    before = seeded.snapshot()
    body = json.dumps([{"phone": "081234567809", "name": "Sari"}]).encode()
    problem = assert_problem(seeded.send("create-contact", body, content_type), 422)
    assert problem["detail"] == "The body must be a JSON object"
    assert seeded.snapshot() == before


def test_curl_data_without_content_type_creates_the_workspace(seeded: Seeded) -> None:
    """The README's first call: `curl -d '{"name":"Toko Budi"}'` sends application/x-www-form-urlencoded."""
    created = seeded.send("create-workspace", b'{"name":"Toko Budi"}', "application/x-www-form-urlencoded")
    assert created.status == 201, created.body
    assert created.json["name"] == "Toko Budi"
    fetched = seeded.api.get(f"/v1/workspaces/{created.json['id']}", as_user=OWNER)
    assert (fetched.status, fetched.json["name"]) == (200, "Toko Budi")


def test_json_contact_with_text_plain_is_created_as_sent(seeded: Seeded) -> None:
    body = json.dumps({"phone": "081234567808", "name": "Sari Plain"}).encode()
    created = seeded.send("create-contact", body, "text/plain")
    assert created.status == 201, created.body
    stored = seeded.api.get(f"/v1/workspaces/{seeded.ws}/contacts/{created.json['id']}", as_user=OWNER)
    assert (stored.json["name"], stored.json["phone"]) == ("Sari Plain", "+6281234567808")
    assert seeded.api.delete(f"/v1/workspaces/{seeded.ws}/contacts/{created.json['id']}", as_user=OWNER).status < 300


@pytest.mark.parametrize("route", ROUTE_IDS)
@pytest.mark.parametrize("body", [b"", b"   ", b"\n"], ids=["empty", "spaces", "newline"])
def test_empty_body_is_4xx(seeded: Seeded, route: str, body: bytes) -> None:
    before = seeded.snapshot()
    assert_problem(seeded.send(route, body), 400, 422)
    assert seeded.snapshot() == before


@pytest.mark.parametrize("route", ROUTE_IDS)
@pytest.mark.parametrize("body", [b"[]", b'[{"name": "x"}]', b'"name"', b"42", b"-1.5e308", b"null", b"true"])
def test_json_that_is_not_an_object_is_422(seeded: Seeded, route: str, body: bytes) -> None:
    before = seeded.snapshot()
    problem = assert_problem(seeded.send(route, body), 400, 422)
    if problem["status"] == 422:
        assert problem.get("errors"), problem
    assert seeded.snapshot() == before


def _string_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, str):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _string_paths(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _string_paths(v, (*path, i))]
    return []


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = list(value) if isinstance(value, list) else dict(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


HUGE_STRING_CASES = [
    (route, path)
    for route, (_, _, valid) in JSON_ROUTES.items()
    for path in _string_paths(valid)
    if route != "create-workspace"  # a huge name on create is covered by the oversize test; it would add a ws
] + [("create-workspace", ("name",))]


@pytest.mark.parametrize(
    ("route", "field"), HUGE_STRING_CASES, ids=lambda v: "/".join(map(str, v)) if isinstance(v, tuple) else v
)
def test_huge_string_in_every_field_is_4xx(seeded: Seeded, route: str, field: tuple[Any, ...]) -> None:
    before = seeded.snapshot()
    _, _, valid = JSON_ROUTES[route]
    for size in (100_000, MAX_BODY + 10):
        body = json.dumps(_replace(valid, field, "\u00e9" * size if size < MAX_BODY else "a" * size)).encode()
        problem = assert_problem(seeded.send(route, body), 413, 422)
        if problem["status"] == 422:
            locations = [e["location"] for e in problem["errors"]]
            assert any(loc.startswith("body") for loc in locations), problem
    assert seeded.snapshot() == before


@pytest.mark.parametrize("route", ROUTE_IDS)
def test_unknown_field_is_422_naming_it(seeded: Seeded, route: str) -> None:
    before = seeded.snapshot()
    _, _, valid = JSON_ROUTES[route]
    problem = assert_problem(seeded.send(route, json.dumps({**valid, "is_admin": True}).encode()), 422)
    assert any(e["location"].endswith("is_admin") for e in problem["errors"]), problem
    assert seeded.snapshot() == before


WRONG_TYPES: list[Any] = [None, 0, 1.5, True, [], {}, ["x"], {"x": 1}]
# Optional string fields where null is not a wrong type but the documented "no value" (create) or
# "clear it" (PATCH); covered by the contacts tests, left out here.
NULL_MEANS_NO_VALUE = {("create-contact", ("name",)), ("patch-contact", ("name",))}


@pytest.mark.parametrize("route", ROUTE_IDS)
def test_wrong_types_in_every_field_are_422(seeded: Seeded, route: str) -> None:
    before = seeded.snapshot()
    _, _, valid = JSON_ROUTES[route]
    for field in _string_paths(valid):
        for wrong in WRONG_TYPES:
            if wrong is None and (route, field) in NULL_MEANS_NO_VALUE:
                continue
            response = seeded.send(route, json.dumps(_replace(valid, field, wrong)).encode())
            problem = assert_problem(response, 422)
            assert problem["type"].endswith("/validation-error"), (route, field, wrong, problem)
            location = "/".join(map(str, ("body", *field)))
            # The error names the field (or the list holding it, for a template component's own check;
            # or, for a null in one of two alternative fields, the body with a message naming it).
            assert any(_names_field(e, location) for e in problem["errors"]), (location, problem)
    assert seeded.snapshot() == before  # nothing stored, nothing changed


def _names_field(error: dict[str, Any], field: str) -> bool:
    reported = error["location"]
    if reported == "body":
        return field.rsplit("/", 1)[-1] in error["message"]
    return reported == field or reported.startswith(field + "/") or field.startswith(reported + "/")


# Numbers DynamoDB cannot store; Python's json module parses every one of these literals.
UNSTORABLE_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-200", "1.5e126", "1" * 39, "9" * 5000]


@pytest.mark.parametrize("route", ROUTE_IDS)
def test_unstorable_numbers_in_every_field_are_422_naming_it(seeded: Seeded, route: str) -> None:
    before = seeded.snapshot()
    _, _, valid = JSON_ROUTES[route]
    for field in _string_paths(valid):
        template = json.dumps(_replace(valid, field, "__number__"))
        for literal in UNSTORABLE_NUMBERS:
            body = template.replace('"__number__"', literal).encode()
            problem = assert_problem(seeded.send(route, body), 422)
            assert [e["location"] for e in problem["errors"]] == ["/".join(map(str, ("body", *field)))], problem
    assert seeded.snapshot() == before
