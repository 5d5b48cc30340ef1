"""Templates through the API against the sandbox: submit (PENDING, then APPROVED by the sandbox's
webhook), list, sync from Meta's list, delete; roles."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from relasify.whatsapp.graph import get_graph_client

from tests.integration.api.test_send_support import (
    AGENT,
    OWNER,
    TOKEN,
    WABA_ID,
    SendingEnv,
    sending_environment,
)
from tests.support.api import ApiClient

DEFINITION = {
    "name": "order_update",
    "language": "id",
    "category": "utility",
    "components": [{"type": "BODY", "text": "Halo {{1}}, pesanan Anda sudah dikirim."}],
}


@pytest.fixture
def env(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[SendingEnv]:
    yield from sending_environment(api, monkeypatch)


def _templates(env: SendingEnv, user: str = AGENT) -> list[dict[str, Any]]:
    response = env.api.get(f"/v1/workspaces/{env.ws}/templates", as_user=user)
    assert response.status == 200, response.body
    return response.json["items"]


def test_submit_then_the_webhook_approves(env: SendingEnv) -> None:
    created = env.api.post(f"/v1/workspaces/{env.ws}/templates", DEFINITION, as_user=OWNER)
    assert created.status == 201, created.body
    assert created.json["status"] == "PENDING"
    assert created.json["category"] == "UTILITY"
    [at_meta] = env.sandbox.templates
    assert at_meta["name"] == "order_update"
    assert at_meta["waba_id"] == WABA_ID
    deadline = time.monotonic() + 10
    while _templates(env)[0]["status"] != "APPROVED":
        assert time.monotonic() < deadline, _templates(env)
        time.sleep(0.05)
    assert _templates(env)[0]["meta_template_id"] == at_meta["id"]


def test_agents_read_admins_manage(env: SendingEnv) -> None:
    assert env.api.post(f"/v1/workspaces/{env.ws}/templates", DEFINITION, as_user=AGENT).status == 403
    assert env.api.post(f"/v1/workspaces/{env.ws}/templates/sync", {}, as_user=AGENT).status == 403
    assert env.api.delete(f"/v1/workspaces/{env.ws}/templates/order_update", as_user=AGENT).status == 403
    assert _templates(env) == []
    assert env.sandbox.templates == []


def test_sync_pulls_templates_created_elsewhere_and_delete_removes_them(env: SendingEnv) -> None:
    graph = get_graph_client()
    for i in range(3):  # created in Meta's UI, say: unknown here until a sync
        graph.create_template(WABA_ID, TOKEN, {**DEFINITION, "name": f"promo_{i}", "category": "MARKETING"})
    synced = env.api.post(f"/v1/workspaces/{env.ws}/templates/sync", {}, as_user=OWNER)
    assert synced.status == 200, synced.body
    assert synced.json["synced"] == 3
    assert sorted(t["name"] for t in _templates(env)) == ["promo_0", "promo_1", "promo_2"]

    deleted = env.api.delete(f"/v1/workspaces/{env.ws}/templates/promo_1", as_user=OWNER)
    assert deleted.status == 200, deleted.body
    assert deleted.json == {"name": "promo_1", "deleted": 1}
    assert sorted(t["name"] for t in env.sandbox.templates) == ["promo_0", "promo_2"]
    assert sorted(t["name"] for t in _templates(env)) == ["promo_0", "promo_2"]
    missing = env.api.delete(f"/v1/workspaces/{env.ws}/templates/promo_1", as_user=OWNER)
    assert missing.status == 404


def test_invalid_definition_is_422(env: SendingEnv) -> None:
    bad = {**DEFINITION, "name": "Has Spaces"}
    assert env.api.post(f"/v1/workspaces/{env.ws}/templates", bad, as_user=OWNER).status == 422
    assert env.sandbox.templates == []
