"""Invitations on the running local stack (SPEC §3): adding a member answers the same for a registered
and an unknown address, and a token minted by `relasify token --unverified` with the invited
address joins nothing, while the real, verified owner of the address joins with the invited role."""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e


def _cli_token(stack: Any, email: str, *extra: str) -> str:
    command = [sys.executable, "-m", "relasify_local.cli", "token", "--email", email]
    command += ["--state-dir", str(stack.state_dir), *extra]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=30).stdout.strip()


def test_invitations_need_a_verified_address_and_reveal_no_account(local_stack: Any) -> None:
    run = uuid.uuid4().hex[:8]
    owner, registered, unknown = (f"{who}-{run}@example.com" for who in ("owner", "registered", "unknown"))
    impostor = {"authorization": f"Bearer {_cli_token(local_stack, unknown, '--unverified', '--sub', f'imp-{run}')}"}

    with httpx.Client(base_url=local_stack.base_url, timeout=30) as http:
        ws = http.post("/v1/workspaces", json={"name": "Toko Undangan"}, headers=local_stack.auth_headers(owner))
        assert ws.status_code == 201, ws.text
        ws_id = ws.json()["id"]
        assert http.get("/v1/me", headers=local_stack.auth_headers(registered)).status_code == 200

        answers = {}
        for email in (registered, unknown):
            added = http.post(
                f"/v1/workspaces/{ws_id}/members",
                json={"email": email, "role": "admin"},
                headers=local_stack.auth_headers(owner),
            )
            assert added.status_code == 201, added.text
            answers[email] = {k: v for k, v in added.json().items() if k not in ("email", "created_at")}
        assert (
            answers[registered]
            == answers[unknown]
            == {
                "user_id": None,
                "name": None,
                "role": "admin",
                "status": "invited",
            }
        )

        assert http.get(f"/v1/workspaces/{ws_id}", headers=impostor).status_code == 404
        assert http.get("/v1/workspaces", headers=impostor).json()["items"] == []
        members = http.get(f"/v1/workspaces/{ws_id}/members", headers=local_stack.auth_headers(owner)).json()
        assert sorted((m["email"], m["status"]) for m in members["items"] if m["email"] != owner) == [
            (registered, "invited"),
            (unknown, "invited"),
        ]

        for email in (unknown, registered):
            joined = http.get(f"/v1/workspaces/{ws_id}", headers=local_stack.auth_headers(email))
            assert joined.status_code == 200, joined.text
            assert joined.json()["role"] == "admin"
        assert http.get(f"/v1/workspaces/{ws_id}", headers=impostor).status_code == 404
