"""`relasify import`: import a contacts CSV into a workspace through the HTTP API, with a progress bar.

relasify import --ws <ws> --file contacts.csv --email you@example.com [--base-url http://127.0.0.1:3000]

Small files go inline (Content-Type text/csv); larger ones through the presigned upload URL the API
hands out, then `.../imports/{id}/start`. Progress is polled from `GET .../imports/{id}`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

INLINE_LIMIT_BYTES = 256 * 1024  # the API's request body bound
DEFAULT_BASE_URL = "http://127.0.0.1:3000"
FINAL_STATUSES = ("completed", "failed")
_CHUNK = 1024 * 1024


class ImportCommandError(Exception):
    pass


def _check(response: httpx.Response, expected: tuple[int, ...]) -> dict[str, Any]:
    if response.status_code not in expected:
        try:
            detail = response.json().get("detail") or response.text
        except ValueError:
            detail = response.text
        raise ImportCommandError(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {detail}"
        )
    return response.json() if response.content else {}


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            yield chunk


def upload(client: httpx.Client, ws: str, path: Path, *, inline_limit: int | None = None) -> dict[str, Any]:
    """Create the import (inline or through the presigned URL) and return the job as the API shows it."""
    base = f"/v1/workspaces/{ws}/contacts/imports"
    size = path.stat().st_size
    if size <= (INLINE_LIMIT_BYTES if inline_limit is None else inline_limit):
        response = client.post(base, content=path.read_bytes(), headers={"content-type": "text/csv"})
        return _check(response, (202,))
    job = _check(client.post(base, json={"filename": path.name[:200]}), (202,))
    # The presigned URL carries its own authorisation: the bearer token must not go to S3.
    request = client.build_request(
        "PUT",
        job["upload_url"],
        content=_chunks(path),
        headers={"content-type": "text/csv", "content-length": str(size)},
    )
    del request.headers["authorization"]
    put = client.send(request)
    if put.status_code not in (200, 204):
        raise ImportCommandError(f"upload failed: {put.status_code}")
    return _check(client.post(f"{base}/{job['id']}/start", json={}), (202,))


def follow(
    client: httpx.Client,
    ws: str,
    import_id: str,
    *,
    interval: float = 1.0,
    timeout: float = 3600.0,
    on_progress: Callable[[dict[str, Any]], None] = lambda _: None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll the import until it completes or fails; `on_progress` sees every state."""
    deadline = time.monotonic() + timeout
    while True:
        job = _check(client.get(f"/v1/workspaces/{ws}/contacts/imports/{import_id}"), (200,))
        on_progress(job)
        if job["status"] in FINAL_STATUSES:
            return job
        if time.monotonic() > deadline:
            raise ImportCommandError(f"import {import_id} still {job['status']} after {timeout:.0f}s")
        sleep(interval)


def summary(job: dict[str, Any], max_errors: int = 20) -> str:
    lines = [
        f"import {job['id']}: {job['status']}",
        f"  rows {job['processed']} of {job.get('total') if job.get('total') is not None else '?'}",
        f"  created {job['created']}  updated {job['updated']}  skipped {job['skipped']}  failed {job['failed']}",
    ]
    if job.get("failure_reason"):
        lines.append(f"  reason: {job['failure_reason']}")
    errors = job.get("errors") or []
    for error in errors[:max_errors]:
        lines.append(f"  row {error['row']} {error.get('column') or ''}: {error['reason']}")
    if len(errors) > max_errors or job.get("errors_truncated"):
        lines.append(f"  ... more row errors: GET /v1/workspaces/<ws>/contacts/imports/{job['id']}")
    return "\n".join(lines)


def run(args: argparse.Namespace, *, transport: httpx.BaseTransport | None = None) -> int:
    from tqdm import tqdm

    from relasify_local.jwt_local import mint_token

    path: Path = args.file
    if not path.is_file():
        print(f"no such file: {path}", file=sys.stderr)
        return 2
    token = mint_token(args.email, state_dir=args.state_dir)
    headers = {"authorization": f"Bearer {token}"}
    with httpx.Client(base_url=args.base_url, headers=headers, timeout=60.0, transport=transport) as client:
        try:
            job = upload(client, args.ws, path)
            with tqdm(total=job.get("total"), unit="rows", desc="importing", disable=args.quiet) as bar:

                def progress(state: dict[str, Any]) -> None:
                    if state.get("total") is not None and bar.total != state["total"]:
                        bar.total = state["total"]
                        bar.refresh()
                    bar.update(max(0, int(state["processed"]) - bar.n))

                final = follow(client, args.ws, job["id"], interval=args.poll_interval, on_progress=progress)
        except (ImportCommandError, httpx.HTTPError) as exc:
            print(f"import failed: {exc}", file=sys.stderr)
            return 1
    print(summary(final))
    return 0 if final["status"] == "completed" else 1


def add_import_command(commands: Any) -> None:
    """Register `relasify import` on the CLI's subcommands."""
    command = commands.add_parser("import", help="import a contacts CSV into a workspace (through the HTTP API)")
    command.add_argument("--ws", required=True, help="workspace id")
    command.add_argument("--file", required=True, type=Path, help="CSV file (header row; a phone column)")
    command.add_argument("--email", required=True, help="whose token to mint (a member of the workspace)")
    command.add_argument("--base-url", default=os.environ.get("RELASIFY_BASE_URL", DEFAULT_BASE_URL))
    command.add_argument("--state-dir", type=Path, default=None, help="key directory (env RELASIFY_STATE_DIR)")
    command.add_argument("--poll-interval", type=float, default=1.0, help="seconds between progress checks")
    command.add_argument("--quiet", action="store_true", help="no progress bar")
    command.set_defaults(run=run)
