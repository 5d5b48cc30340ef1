"""`relasify import` against a scripted API (httpx MockTransport): inline and presigned-upload flows,
progress polling, the summary and the exit status."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from relasify_local import import_cli
from relasify_local.cli import build_parser


class FakeApi:
    def __init__(self, total: int) -> None:
        self.total = total
        self.calls: list[tuple[str, str, dict[str, str], bytes]] = []
        self.polls = 0
        self.uploaded = b""

    def job(self, status: str, processed: int) -> dict:
        return {
            "id": "imp1",
            "status": status,
            "total": self.total,
            "processed": processed,
            "created": processed - 1 if processed else 0,
            "updated": 0,
            "skipped": 0,
            "failed": 1 if processed else 0,
            "errors": [{"row": 3, "column": "phone", "reason": "Phone number is too short"}] if processed else [],
            "upload_url": "https://s3.example/imports/ws1/imp1.csv?X-Amz-Signature=x"
            if status == "awaiting_upload"
            else None,
        }

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.calls.append((request.method, str(request.url), dict(request.headers), body))
        path = request.url.path
        if request.url.host == "s3.example":
            assert "authorization" not in request.headers
            self.uploaded = body
            return httpx.Response(200)
        assert request.headers["authorization"].startswith("Bearer ")
        if request.method == "POST" and path.endswith("/contacts/imports"):
            if request.headers["content-type"] == "text/csv":
                return httpx.Response(202, json=self.job("queued", 0))
            assert json.loads(body) == {"filename": "contacts.csv"}
            return httpx.Response(202, json=self.job("awaiting_upload", 0))
        if request.method == "POST" and path.endswith("/start"):
            return httpx.Response(202, json=self.job("queued", 0))
        if request.method == "GET":
            self.polls += 1
            done = self.polls >= 3
            return httpx.Response(200, json=self.job("completed" if done else "running", self.total if done else 2))
        return httpx.Response(404, json={"detail": "no route"})


def _args(tmp_path: Path, csv_file: Path) -> object:
    return build_parser().parse_args(
        [
            "import",
            "--ws",
            "ws1",
            "--file",
            str(csv_file),
            "--email",
            "you@example.com",
            "--state-dir",
            str(tmp_path / "state"),
            "--poll-interval",
            "0",
            "--quiet",
        ]
    )


def test_small_file_goes_inline_and_progress_is_polled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text("phone,name\n081234567801,Budi\n0812,Bad\n081234567802,Sari\n")
    api = FakeApi(total=3)
    assert import_cli.run(_args(tmp_path, csv_file), transport=httpx.MockTransport(api)) == 0
    first = api.calls[0]
    assert first[0] == "POST"
    assert first[2]["content-type"] == "text/csv"
    assert first[3] == csv_file.read_bytes()
    assert api.polls == 3
    out = capsys.readouterr().out
    assert "completed" in out
    assert "created 2" in out
    assert "row 3 phone: Phone number is too short" in out


def test_large_file_goes_through_the_presigned_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(import_cli, "INLINE_LIMIT_BYTES", 10)
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text("phone,name\n" + "".join(f"0812{10_000_000 + i},P{i}\n" for i in range(50)))
    api = FakeApi(total=50)
    assert import_cli.run(_args(tmp_path, csv_file), transport=httpx.MockTransport(api)) == 0
    methods = [(m, httpx.URL(u).host, httpx.URL(u).path.rsplit("/", 1)[-1]) for m, u, _, _ in api.calls]
    assert methods[:3] == [
        ("POST", "127.0.0.1", "imports"),
        ("PUT", "s3.example", "imp1.csv"),
        ("POST", "127.0.0.1", "start"),
    ]
    assert api.uploaded == csv_file.read_bytes()
    assert "rows 50 of 50" in capsys.readouterr().out


def test_failed_import_exits_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text("name\nBudi\n")

    def api(request: httpx.Request) -> httpx.Response:
        job = {"id": "imp1", "processed": 0, "total": None, "created": 0, "updated": 0, "skipped": 0, "failed": 0}
        if request.method == "POST":
            return httpx.Response(202, json=job | {"status": "queued"})
        return httpx.Response(200, json=job | {"status": "failed", "failure_reason": "The file has no phone column"})

    assert import_cli.run(_args(tmp_path, csv_file), transport=httpx.MockTransport(api)) == 1
    assert "no phone column" in capsys.readouterr().out
    missing = _args(tmp_path, tmp_path / "nope.csv")
    assert import_cli.run(missing, transport=httpx.MockTransport(api)) == 2
