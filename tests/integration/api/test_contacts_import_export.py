"""Import and export through the API: inline CSV and presigned upload, the worker run by its SQS
handler, export to S3 with formula neutralisation and a security-log entry."""

from __future__ import annotations

import csv
import io
import json
from urllib.parse import urlsplit

import boto3
import requests

from tests.support.api import ApiClient, run_import_worker

OWNER = "owner@example.com"
ADMIN = "admin@example.com"  # bulk export and imports are admin+ (SPEC section 3)


def _run_worker(queue_url: str) -> None:
    run_import_worker(queue_url)


def test_inline_csv_import(api: ApiClient, aws_resources) -> None:
    ws = api.create_workspace(OWNER)
    api.add_member(ws, OWNER, ADMIN, "admin")
    body = b"phone,name,tags\n0812-3456-7801,Budi,vip\n+6281234567801,Budi,\nbad,Nobody,\n081298765402,Sari,\n"
    response = api.request(
        "POST", f"/v1/workspaces/{ws}/contacts/imports", body=body, headers={"content-type": "text/csv"}, as_user=ADMIN
    )
    assert response.status == 202, response.body
    import_id = response.json["id"]
    assert response.json["status"] == "queued"

    _run_worker(aws_resources.import_queue_url)
    job = api.get(f"/v1/workspaces/{ws}/contacts/imports/{import_id}", as_user=ADMIN).json
    assert job["status"] == "completed"
    assert (job["processed"], job["total"]) == (4, 4)
    assert (job["created"], job["updated"], job["skipped"], job["failed"]) == (2, 0, 1, 1)
    assert job["errors"] == [{"row": 4, "column": "phone", "reason": "Not a phone number"}]
    listed = api.get(f"/v1/workspaces/{ws}/contacts?tag=vip", as_user=ADMIN).json["items"]
    assert [c["name"] for c in listed] == ["Budi"]

    # Another workspace cannot see the import.
    other = api.create_workspace(ADMIN, name="Mine")
    assert api.get(f"/v1/workspaces/{other}/contacts/imports/{import_id}", as_user=ADMIN).status == 404


def test_presigned_upload_import(api: ApiClient, aws_resources) -> None:
    ws = api.create_workspace(OWNER)
    base = f"/v1/workspaces/{ws}/contacts/imports"
    assert api.post(base, {"filename": ""}, as_user=OWNER).status == 422
    unknown = api.post(base, {"nope": "x"}, as_user=OWNER).json["errors"]
    assert "body/nope" in [e["location"] for e in unknown]  # next to the missing filename
    created = api.post(base, {"filename": "contacts.csv"}, as_user=OWNER)
    assert created.status == 202, created.body
    job = created.json
    assert job["status"] == "awaiting_upload"
    assert job["upload_url"].startswith("https://")

    early = api.post(f"{base}/{job['id']}/start", {}, as_user=OWNER)
    assert early.status == 409  # nothing uploaded yet

    csv_text = "phone,name\n" + "".join(f"0812{10_000_000 + i},P{i}\n" for i in range(300))
    upload = requests.put(job["upload_url"], data=csv_text.encode(), headers={"Content-Type": "text/csv"}, timeout=10)
    assert upload.status_code == 200, upload.text
    started = api.post(f"{base}/{job['id']}/start", {}, as_user=OWNER)
    assert started.status == 202
    assert started.json["status"] == "queued"
    assert api.post(f"{base}/{job['id']}/start", {}, as_user=OWNER).status == 202  # repeating is harmless

    _run_worker(aws_resources.import_queue_url)
    done = api.get(f"{base}/{job['id']}", as_user=OWNER).json
    assert done["status"] == "completed"
    assert done["created"] == 300
    assert done["upload_url"] is None


def test_export_csv_and_json(api: ApiClient, aws_resources) -> None:
    ws = api.create_workspace(OWNER)
    api.add_member(ws, OWNER, ADMIN, "admin")
    hostile = '=HYPERLINK("http://evil")'
    created = api.post(
        f"/v1/workspaces/{ws}/contacts",
        {
            "phone": "081234567801",
            "name": hostile,
            "tags": ["vip"],
            "attributes": {"note": "@SUM(1+1)", "n": 2},
            "consent": {"status": "opted_in", "source": "form"},
        },
        as_user=ADMIN,
    ).json
    api.post(f"/v1/workspaces/{ws}/contacts", {"phone": "081234567802", "name": "Sari"}, as_user=ADMIN)

    export = api.export_contacts(ws, "csv", as_user=ADMIN)
    assert export["status"] == "completed"
    assert export["count"] == 2
    assert export["format"] == "csv"
    key = urlsplit(export["url"]).path.split("/", 2)[2]
    assert key.startswith(f"exports/{ws}/")
    assert "X-Amz-Expires=300" in export["url"]
    text = boto3.client("s3").get_object(Bucket=aws_resources.media_bucket, Key=key)["Body"].read().decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    budi = next(r for r in rows if r["id"] == created["id"])
    assert budi["name"] == "'" + hostile
    assert budi["phone"] == "'+6281234567801"
    assert budi["tags"] == "vip"
    assert json.loads(budi["attributes"]) == {"n": 2, "note": "@SUM(1+1)"}  # inside JSON: not a cell start
    assert budi["consent_status"] == "opted_in"
    assert json.loads(budi["consent_history"])[0]["source"] == "form"
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@")), cell

    as_json = api.export_contacts(ws, "json", as_user=ADMIN)
    key = urlsplit(as_json["url"]).path.split("/", 2)[2]
    documents = json.loads(boto3.client("s3").get_object(Bucket=aws_resources.media_bucket, Key=key)["Body"].read())
    assert {d["name"] for d in documents} == {hostile, "Sari"}  # JSON is data, not formulas: unchanged
    assert next(d for d in documents if d["id"] == created["id"])["consent"]["history"][0]["source"] == "form"

    assert api.get(f"/v1/workspaces/{ws}/contacts/export?format=xml", as_user=ADMIN).status == 422
    audit = api.get(f"/v1/workspaces/{ws}/audit", as_user=OWNER).json["items"]
    exported = [e for e in audit if e["action"] == "contacts.exported"]
    assert len(exported) == 2
    assert {e["details"]["format"] for e in exported} == {"csv", "json"}
    assert all(e["details"]["count"] == 2 for e in exported)
    assert "081234567801" not in json.dumps(audit)


FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
HOSTILE_CONTACTS = [
    {"phone": "081234567811", "name": "-Budi-", "tags": ["vip", "toko+62"], "attributes": {"kota": "-Jakarta"}},
    {"phone": "+62 812 3456 7812", "name": "+62 shop", "attributes": {"note": "@SUM(1+1)", "n": -2, "ok": True}},
    {"phone": "081234567813", "name": '=HYPERLINK("http://evil")', "email": "a@example.com"},
    {"phone": "081234567814", "name": "Toko;=cmd|' /C calc'!A0", "attributes": {"x": "a;=b", "y": "line\n=2+2"}},
    {"phone": "081234567815", "name": "Ayu\n@Tanah Abang", "tags": ["pelanggan"]},
    {"phone": "081234567816", "name": "'quoted", "attributes": {"q": "'"}},
    {"phone": "081234567817", "name": "O'Brien - Toko, Jaya"},
]


def _comparable(contact: dict) -> tuple:
    return (contact["phone"], contact["name"], contact.get("email"), contact["tags"], contact["attributes"])


def _listed(api: ApiClient, ws: str) -> list[tuple]:
    items = api.get(f"/v1/workspaces/{ws}/contacts?limit=100", as_user=OWNER).json["items"]
    return sorted(_comparable(c) for c in items)


def _import(api: ApiClient, ws: str, body: bytes, queue_url: str) -> dict:
    response = api.request(
        "POST", f"/v1/workspaces/{ws}/contacts/imports", body=body, headers={"content-type": "text/csv"}, as_user=OWNER
    )
    assert response.status == 202, response.body
    _run_worker(queue_url)
    return api.get(f"/v1/workspaces/{ws}/contacts/imports/{response.json['id']}", as_user=OWNER).json


def test_an_exported_csv_is_formula_free_with_any_separator_and_imports_back_to_the_same_contacts(
    api: ApiClient, aws_resources
) -> None:
    """CSV injection (issue 15.5): a spreadsheet in the Indonesian locale splits on `;`, so a cell after
    an embedded `;` (or TAB, or line break) must not start a formula either; and the apostrophes the
    export adds are removed by the import, exactly, so an export imports back to the same contacts."""
    ws = api.create_workspace(OWNER)
    for body in HOSTILE_CONTACTS:
        assert api.post(f"/v1/workspaces/{ws}/contacts", body, as_user=OWNER).status == 201
    originals = _listed(api, ws)
    export = api.export_contacts(ws, "csv", as_user=OWNER)
    key = urlsplit(export["url"]).path.split("/", 2)[2]
    raw = boto3.client("s3").get_object(Bucket=aws_resources.media_bucket, Key=key)["Body"].read()
    text = raw.decode("utf-8")
    for delimiter in (",", ";", "\t"):
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
            assert not [cell for cell in row if cell.startswith(FORMULA_TRIGGERS)], (delimiter, row)
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):  # a reader splitting quoted lines
        for piece in line.replace(";", ",").replace("\t", ",").split(","):
            assert not piece.lstrip('"').startswith(FORMULA_TRIGGERS), (piece, line)
    phones = {row["phone"] for row in csv.DictReader(io.StringIO(text, newline=""))}
    assert "'+6281234567811" in phones  # text in a spreadsheet, not the formula +6281...

    # Back into the same workspace: every row is recognised as unchanged (exact restore, no stray columns).
    same = _import(api, ws, raw, aws_resources.import_queue_url)
    assert same["status"] == "completed", same
    n = len(HOSTILE_CONTACTS)
    assert (same["created"], same["updated"], same["skipped"], same["failed"]) == (0, 0, n, 0), same
    assert _listed(api, ws) == originals

    # Into a new workspace: the same contacts (names, phones, emails, tags, attributes).
    other = api.create_workspace(OWNER, name="Toko Kedua")
    fresh = _import(api, other, raw, aws_resources.import_queue_url)
    assert (fresh["status"], fresh["created"], fresh["failed"]) == ("completed", n, 0), fresh
    assert _listed(api, other) == originals
    assert "-Budi-" in {c[1] for c in originals}
    assert "+62 shop" in {c[1] for c in originals}
