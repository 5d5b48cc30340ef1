"""A large CSV import end to end on the local stack: `relasify import` uploads the file through the
presigned URL, the ImportQueue poller runs the worker, and the counts are exact; the JSON export then
shows one contact per phone.

The file has RELASIFY_E2E_IMPORT_ROWS rows: 80% new phones, 8% repeats of a phone
in another format with the same data (skipped), 6% repeats that rename the contact (updated), 6% bad
rows (invalid phone, invalid e-mail, empty phone: failed).

The acceptance size is 100,000 rows (`RELASIFY_E2E_IMPORT_ROWS=100000`): passed on 2026-11-25 on the 2-core
development machine (import 516.6 s, whole test incl. the asynchronous export 894 s, with the full suite running
beside it for part of the time). The suite's default is 5,000 rows, to keep CI well under 20 minutes: moto parses
and serialises every request in Python (a marker PutItem per new row plus its share of batched writes).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from relasify_local import import_cli
from relasify_local.cli import build_parser

ROWS = int(os.environ.get("RELASIFY_E2E_IMPORT_ROWS", "5000"))
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180 + ROWS * 0.06)]

OWNER = "import-e2e@example.com"
BLOCK = 50  # each block of 50 rows: 40 new, 4 skipped repeats, 3 updating repeats, 3 bad


def _phone(n: int, style: int) -> str:
    digits = f"812{10_000_000 + n}"
    return (f"0{digits}", f"+62 {digits[:3]}-{digits[3:7]}-{digits[7:]}", f"62{digits}")[style % 3]


def generate(path: Path, rows: int) -> dict[str, int]:
    """Write the file; returns the exact expected counts."""
    assert rows % BLOCK == 0
    expected = {"created": 0, "updated": 0, "skipped": 0, "failed": 0}
    with path.open("w", newline="") as out:
        out.write("phone,name,email,tags,opt_in,segment\r\n")
        for block in range(rows // BLOCK):
            first = block * 40
            for slot in range(BLOCK):
                if slot < 40:
                    n = first + slot
                    out.write(f"{_phone(n, 0)},Person {n},p{n}@example.com,t{n % 5},yes,s{n % 7}\r\n")
                    expected["created"] += 1
                elif slot < 44:  # the same data again, phone in another format
                    n = first + 10 + slot - 40
                    out.write(f"{_phone(n, slot)},Person {n},p{n}@example.com,t{n % 5},yes,s{n % 7}\r\n")
                    expected["skipped"] += 1
                elif slot < 47:  # renamed
                    n = first + slot - 44
                    out.write(f"{_phone(n, slot)},Person {n} Updated,,,,\r\n")
                    expected["updated"] += 1
                elif slot == 47:
                    out.write(f"0812{block % 100},Short {block},,,,\r\n")
                    expected["failed"] += 1
                elif slot == 48:
                    out.write(f"0813{10_000_000 + block},Mail {block},not-an-email,,,\r\n")
                    expected["failed"] += 1
                else:
                    out.write(f",No phone {block},,,,\r\n")
                    expected["failed"] += 1
    return expected


def test_large_csv_import_on_the_local_stack(
    local_stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_file = tmp_path / "contacts.csv"
    expected = generate(csv_file, ROWS)
    with local_stack.client(headers=local_stack.auth_headers(OWNER)) as http:
        created = http.post("/v1/workspaces", json={"name": "Import E2E"})
        assert created.status_code == 201, created.text
        ws = created.json()["id"]

        args = build_parser().parse_args(
            [
                "import",
                "--ws",
                ws,
                "--file",
                str(csv_file),
                "--email",
                OWNER,
                "--base-url",
                local_stack.base_url,
                "--state-dir",
                str(local_stack.state_dir),
                "--poll-interval",
                "2",
                "--quiet",
            ]
        )
        started = time.monotonic()
        assert import_cli.run(args) == 0, local_stack.log_tail()
        elapsed = time.monotonic() - started
        summary = capsys.readouterr().out
        print(f"imported {ROWS} rows in {elapsed:.1f}s")

        imports = http.get(f"/v1/workspaces/{ws}/contacts?limit=1").json()
        assert imports["items"], summary
        import_id = summary.split()[1].rstrip(":")
        job = http.get(f"/v1/workspaces/{ws}/contacts/imports/{import_id}").json()
        assert job["status"] == "completed"
        assert job["total"] == job["processed"] == ROWS
        counts = {k: job[k] for k in ("created", "updated", "skipped", "failed")}
        assert counts == expected
        assert len(job["errors"]) == min(1000, expected["failed"])
        assert {e["column"] for e in job["errors"]} == {"phone", "email"}

        requested = http.get(f"/v1/workspaces/{ws}/contacts/export?format=json")
        assert requested.status_code == 202, requested.text  # the export runs in the worker, not the request
        deadline = time.monotonic() + max(120.0, ROWS / 100)
        while (export := http.get(requested.headers["location"]).json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, (export, local_stack.log_tail())
            time.sleep(1.0)
        assert export["status"] == "completed", export
        assert export["count"] == expected["created"]
        documents = httpx.get(export["url"], timeout=120).json()
        phones = [d["phone"] for d in documents]
        assert len(phones) == len(set(phones)) == expected["created"]
        renamed = [d for d in documents if d["name"].endswith(" Updated")]
        assert len(renamed) == expected["updated"]
        assert all(d["consent"]["status"] == "opted_in" for d in documents)
