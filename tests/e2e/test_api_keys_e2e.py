"""API keys on the running local stack (SPEC 5c): an admin creates a key; the key lists contacts; an
agent-role key is refused an admin route (403); a key of one workspace gets 404 on another; a revoked
key gets 401 at once (the local gateway invokes the template's authorizer on every request: no cache);
keys are refused outside a workspace; and the stack's log never holds a key."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e


def test_api_key_acceptance(local_stack: Any) -> None:
    run = uuid.uuid4().hex[:8]
    owner, other_owner = f"keys-owner-{run}@example.com", f"keys-other-{run}@example.com"
    as_owner = local_stack.auth_headers(owner)

    with httpx.Client(base_url=local_stack.base_url, timeout=30) as http:
        ws = http.post("/v1/workspaces", json={"name": "Toko Kunci"}, headers=as_owner).json()["id"]
        other_ws = http.post(
            "/v1/workspaces", json={"name": "Toko Lain"}, headers=local_stack.auth_headers(other_owner)
        ).json()["id"]
        contact = http.post(
            f"/v1/workspaces/{ws}/contacts", json={"phone": "+6281234598765", "name": "Rina"}, headers=as_owner
        )
        assert contact.status_code == 201, contact.text

        created = http.post(
            f"/v1/workspaces/{ws}/api-keys", json={"name": "CRM sync", "role": "admin"}, headers=as_owner
        )
        assert created.status_code == 201, created.text
        admin_key = created.json()["key"]
        assert admin_key.startswith("rk_")
        agent = http.post(f"/v1/workspaces/{ws}/api-keys", json={"name": "Reader", "role": "agent"}, headers=as_owner)
        assert agent.status_code == 201, agent.text
        as_admin_key = {"authorization": f"Bearer {admin_key}"}
        as_agent_key = {"authorization": f"Bearer {agent.json()['key']}"}

        listed = http.get(f"/v1/workspaces/{ws}/contacts", headers=as_admin_key)
        assert listed.status_code == 200, listed.text
        assert [c["id"] for c in listed.json()["items"]] == [contact.json()["id"]]
        assert http.get(f"/v1/workspaces/{ws}/contacts", headers=as_agent_key).status_code == 200

        refused = http.get(f"/v1/workspaces/{ws}/api-keys", headers=as_agent_key)
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")

        elsewhere = http.get(f"/v1/workspaces/{other_ws}/contacts", headers=as_admin_key)
        assert elsewhere.status_code == 404, elsewhere.text
        assert http.get("/v1/me", headers=as_admin_key).status_code == 403

        keys = http.get(f"/v1/workspaces/{ws}/api-keys", headers=as_owner).json()["items"]
        assert {k["name"] for k in keys} == {"CRM sync", "Reader"}
        assert all("key" not in k for k in keys)
        assert next(k for k in keys if k["name"] == "CRM sync")["last_used_at"] is not None

        revoked = http.delete(f"/v1/workspaces/{ws}/api-keys/{created.json()['id']}", headers=as_owner)
        assert revoked.status_code == 204, revoked.text
        after = http.get(f"/v1/workspaces/{ws}/contacts", headers=as_admin_key)
        assert after.status_code == 401, after.text
        assert http.get(f"/v1/workspaces/{ws}/contacts", headers=as_agent_key).status_code == 200

    log = local_stack.log_path.read_text(errors="replace")
    assert admin_key[3:] not in log
    assert agent.json()["key"][3:] not in log
