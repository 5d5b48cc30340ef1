"""Bad-input corpus for CSV imports, exports, headers and names: binary junk, NUL bytes, a 2 MB single line,
wrong delimiters, missing phone column, header-only files, formula cells (exported neutralised), CR/LF in
header values, path traversal and odd characters in ids, names and filenames. Every request gets a 4xx
problem+json or a completed/failed import with row errors, never a 5xx, and stored contacts survive."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from tests.fuzz.inprocess import BUCKET, shared_moto_api
from tests.integration.api.test_bad_input_bodies import assert_problem
from tests.support.api import ApiClient, ApiResponse, run_import_worker

OWNER = "owner@csv-input.test"


@pytest.fixture(scope="module")
def module_api() -> Iterator[ApiClient]:
    with shared_moto_api() as api:
        yield api


@pytest.fixture(scope="module")
def ws(module_api: ApiClient) -> str:
    ws = module_api.create_workspace(OWNER)
    created = module_api.post(f"/v1/workspaces/{ws}/contacts", {"phone": "081234567801", "name": "Budi"}, as_user=OWNER)
    assert created.status == 201
    return ws


def contacts(api: ApiClient, ws: str) -> list[dict[str, Any]]:
    listed = api.get(f"/v1/workspaces/{ws}/contacts?limit=100", as_user=OWNER)
    assert listed.status == 200
    return sorted(listed.json["items"], key=lambda c: c["id"])


def post_csv(api: ApiClient, ws: str, body: bytes, content_type: str = "text/csv") -> ApiResponse:
    return api.request(
        "POST",
        f"/v1/workspaces/{ws}/contacts/imports",
        body=body,
        headers={"content-type": content_type},
        as_user=OWNER,
    )


BAD_CSVS: dict[str, bytes] = {
    "binary-junk": bytes(range(256)) * 40,
    "nul-bytes": b"phone,name\n0812\x0034567890,Bu\x00di\n\x00\x00\x00\n",
    "two-mb-single-line": b"phone," + b"x" * (2 * 1024 * 1024),
    "semicolon-delimiter": b"phone;name\n081234567890;Sari\n",
    "tab-delimiter": b"phone\tname\n081234567891\tSari\n",
    "missing-phone-column": b"name,email\nSari,sari@example.com\n",
    "only-headers": b"phone,name,email\n",
    "only-bom": b"\xef\xbb\xbf",
    "empty": b"",
    "unbalanced-quotes": b'phone,name\n"081234567892,"Sari\n',
    "ragged-rows": b"phone,name\n081234567893,Sari,extra,cells\n081234567894\n",
    "huge-cell": b"phone,name\n081234567895," + b"n" * 200_000 + b"\n",
    "many-columns": b",".join(b"c%d" % i for i in range(5000)) + b"\n" + b",".join(b"v" for _ in range(5000)) + b"\n",
    "latin1-not-utf8": "phone,name\n081234567896,Jos\u00e9\n".encode("latin-1"),
}


@pytest.mark.parametrize("kind", list(BAD_CSVS))
def test_malformed_csv_is_refused_or_ends_with_row_errors(module_api: ApiClient, ws: str, kind: str) -> None:
    before = contacts(module_api, ws)
    response = post_csv(module_api, ws, BAD_CSVS[kind])
    if response.status != 202:
        assert_problem(response, 400, 413, 415, 422)
        assert contacts(module_api, ws) == before
        return
    run_import_worker()
    job = module_api.get(f"/v1/workspaces/{ws}/contacts/imports/{response.json['id']}", as_user=OWNER)
    assert job.status == 200
    assert job.json["status"] in ("completed", "failed"), job.json
    assert job.json["created"] == 0 or kind in ("semicolon-delimiter", "tab-delimiter", "ragged-rows", "huge-cell")
    if job.json["status"] == "failed":
        assert job.json["failure_reason"]
    after = {c["id"]: c for c in contacts(module_api, ws)}
    for contact in before:  # nothing stored before is lost or overwritten by junk
        assert after[contact["id"]]["phone"] == contact["phone"]


def test_formula_cells_are_imported_as_text_and_exported_neutralised(module_api: ApiClient, ws: str) -> None:
    rows = [
        ("081234567811", '=HYPERLINK("http://evil")'),
        ("081234567812", "+1+1"),
        ("081234567813", "-2+3"),
        ("081234567814", "@SUM(A1)"),
        ("081234567815", "=cmd|' /C calc'!A0"),
    ]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([("phone", "name", "note"), *((p, n, n) for p, n in rows)])
    response = post_csv(module_api, ws, buffer.getvalue().encode())
    assert response.status == 202, response.body
    run_import_worker()
    job = module_api.get(f"/v1/workspaces/{ws}/contacts/imports/{response.json['id']}", as_user=OWNER).json
    assert job["status"] == "completed"
    assert (job["created"], job["failed"]) == (len(rows), 0), job
    export = module_api.export_contacts(ws, "csv", as_user=OWNER)
    key = urlsplit(export["url"]).path.split("/", 2)[2]
    text = boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read().decode("utf-8-sig")
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    for _, name in rows:
        assert name not in cells  # never the raw formula
        assert "'" + name in cells  # neutralised with a leading apostrophe


HEADER_INJECTIONS = {
    "crlf": "abc\r\nX-Injected: 1",
    "lf": "abc\nSet-Cookie: a=b",
    "cr": "abc\rX",
    "nul": "abc\x00def",
    "huge": "k" * 10_000,
}


@pytest.mark.parametrize("kind", list(HEADER_INJECTIONS))
def test_header_injection_in_idempotency_key_is_refused_or_harmless(module_api: ApiClient, ws: str, kind: str) -> None:
    before = contacts(module_api, ws)
    response = module_api.post(
        f"/v1/workspaces/{ws}/messages",
        {"to": "081234567803", "type": "text", "text": {"body": "x"}},
        as_user=OWNER,
        headers={"idempotency-key": HEADER_INJECTIONS[kind]},
    )
    assert response.status < 500, response.body
    if response.status >= 400:
        assert_problem(response, response.status)
    for name, value in response.headers.items():
        assert "\r" not in name + value
        assert "\n" not in name + value
        assert name.lower() not in ("x-injected", "set-cookie")
    assert contacts(module_api, ws) == before


TRAVERSALS = ["..%2F..%2Fetc%2Fpasswd", "..%2F..%2Fetc", "%2e%2e%2f%2e%2e%2f", "..", "...", "..%5C..%5Cwin"]
ODD_IDS = ["%00", "%0d%0aX-Injected:%201", "%F0%9F%98%80", "%FF%FE", "a%20b", "'%3B--", "%3Cscript%3E", "x" * 300]


@pytest.mark.parametrize("raw_id", TRAVERSALS + ODD_IDS)
@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("GET", "/v1/workspaces/{ws}/contacts/{id}"),
        ("PATCH", "/v1/workspaces/{ws}/contacts/{id}"),
        ("DELETE", "/v1/workspaces/{ws}/contacts/{id}"),
        ("GET", "/v1/workspaces/{ws}/contacts/imports/{id}"),
        ("POST", "/v1/workspaces/{ws}/contacts/imports/{id}/start"),
        ("DELETE", "/v1/workspaces/{ws}/templates/{id}"),
        ("GET", "/v1/workspaces/{ws}/messages/{id}"),
        ("GET", "/v1/workspaces/{ws}/broadcasts/{id}"),
        ("GET", "/v1/workspaces/{id}"),
    ],
)
def test_traversal_and_odd_ids_are_4xx(module_api: ApiClient, ws: str, method: str, template: str, raw_id: str) -> None:
    before = contacts(module_api, ws)
    path = template.format(ws=ws, id=raw_id)
    body = {"name": "x"} if method == "PATCH" else None
    response = module_api.request(method, path, json_body=body, as_user=OWNER)
    assert 400 <= response.status < 500, (path, response.status, response.body[:200])
    if response.json not in ({"message": "Not Found"},):  # the gateway's own 404 when no route matches
        assert_problem(response, 400, 403, 404, 405, 422)
    assert contacts(module_api, ws) == before


@pytest.mark.parametrize("filename", ["../../etc/passwd", "..\\..\\boot.ini", "/abs/path.csv", "a\x00.csv", "\r\n.csv"])
def test_traversal_in_import_filename_never_escapes_the_import_prefix(
    module_api: ApiClient, ws: str, filename: str
) -> None:
    response = module_api.post(f"/v1/workspaces/{ws}/contacts/imports", {"filename": filename}, as_user=OWNER)
    if response.status != 202:
        assert_problem(response, 400, 422)
        return
    key = urlsplit(response.json["upload_url"]).path
    assert ".." not in key
    assert "passwd" not in key
    assert "boot.ini" not in key


@pytest.mark.parametrize("name", ["../../etc", "..%2F..%2Fetc", "promo/../../x", "PROMO", "promo name", "é"])
def test_traversal_in_template_names_is_422(module_api: ApiClient, ws: str, name: str) -> None:
    response = module_api.post(
        f"/v1/workspaces/{ws}/templates",
        {"name": name, "language": "id", "category": "MARKETING", "components": [{"type": "BODY", "text": "Hi"}]},
        as_user=OWNER,
    )
    problem = assert_problem(response, 422)
    assert any(e["location"] == "body/name" for e in problem["errors"]), problem
