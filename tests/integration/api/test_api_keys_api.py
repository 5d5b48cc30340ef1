"""Workspace API keys (SPEC section 5c), from the attacker's side over HTTP: the key is shown once and
stored as a hash only; it acts with its role in its one workspace only; revocation is at once (no
authorizer cache locally); keys are refused outside any workspace; nothing logs the key."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from relasify import clock
from relasify.observability import logger as app_logger
from relasify.settings import get_settings

from tests.support.api import ApiClient

OWNER = "owner@example.com"
ADMIN = "admin@example.com"
AGENT = "agent@example.com"
STRANGER = "stranger@example.com"


def _create_key(api: ApiClient, ws: str, role: str, *, as_user: str = OWNER, name: str = "Zapier") -> dict:
    response = api.post(f"/v1/workspaces/{ws}/api-keys", {"name": name, "role": role}, as_user=as_user)
    assert response.status == 201, response.body
    return response.json


def _table_items() -> list[dict]:
    table = get_settings().table_name
    return boto3.client("dynamodb").scan(TableName=table)["Items"]


def test_created_key_is_shown_once_and_stored_only_as_its_sha256(api: ApiClient) -> None:
    ws = api.create_workspace(OWNER)

    created = _create_key(api, ws, "agent", name="Zapier sync")

    assert set(created) == {"id", "name", "role", "key", "created_at"}
    assert created["name"] == "Zapier sync"
    assert created["role"] == "agent"
    key = created["key"]
    assert key.startswith("rk_")
    assert len(key) == 46  # rk_ + 43 base64url characters: 256 random bits
    assert created["key"] != _create_key(api, ws, "agent")["key"]
    stored = repr(_table_items())
    assert key not in stored
    assert key[3:] not in stored
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert f"APIKEY#{digest}" in stored  # the authorizer's lookup item, by hash

    listed = api.get(f"/v1/workspaces/{ws}/api-keys", as_user=OWNER)
    assert listed.status == 200, listed.body
    [first, _second] = listed.json["items"]
    assert first["id"] == created["id"]
    assert first["name"] == "Zapier sync"
    assert first["role"] == "agent"
    assert first["last_used_at"] is None
    assert "key" not in first
    assert key not in listed.body.decode()
    assert digest not in listed.body.decode()


def test_key_acts_with_its_role_in_its_workspace(api: ApiClient) -> None:
    ws = api.create_workspace(OWNER)
    contact = api.post(f"/v1/workspaces/{ws}/contacts", {"phone": "+6281234567801", "name": "Sari"}, as_user=OWNER)
    assert contact.status == 201, contact.body
    agent_key = _create_key(api, ws, "agent")["key"]
    admin_key = _create_key(api, ws, "admin")["key"]

    listed = api.get(f"/v1/workspaces/{ws}/contacts", token=agent_key)
    assert listed.status == 200, listed.body
    assert [c["id"] for c in listed.json["items"]] == [contact.json["id"]]

    # An agent key: no admin route (its own kind included), no deletion.
    for method, path in (
        ("GET", f"/v1/workspaces/{ws}/api-keys"),
        ("GET", f"/v1/workspaces/{ws}/audit"),
        ("DELETE", f"/v1/workspaces/{ws}/contacts/{contact.json['id']}"),
    ):
        refused = api.request(method, path, token=agent_key)
        assert refused.status == 403, (method, path, refused.body)
        assert refused.content_type == "application/problem+json"
    assert api.get(f"/v1/workspaces/{ws}/contacts/{contact.json['id']}", as_user=OWNER).status == 200

    # An admin key: admin routes yes, owner routes never.
    assert api.get(f"/v1/workspaces/{ws}/audit", token=admin_key).status == 200
    made = api.post(f"/v1/workspaces/{ws}/api-keys", {"name": "child", "role": "agent"}, token=admin_key)
    assert made.status == 201, made.body
    closed = api.post(f"/v1/workspaces/{ws}/close", token=admin_key)
    assert closed.status == 403, closed.body
    assert api.get(f"/v1/workspaces/{ws}", as_user=OWNER).json["status"] == "active"


def test_key_actions_are_attributed_to_the_key(api: ApiClient) -> None:
    ws = api.create_workspace(OWNER)
    created = _create_key(api, ws, "admin")
    actor = f"key:{created['id']}"

    reply = api.post(f"/v1/workspaces/{ws}/canned-replies", {"shortcut": "hi", "body": "Halo!"}, token=created["key"])
    assert reply.status == 201, reply.body
    assert reply.json["created_by"] == actor
    assert api.delete(f"/v1/workspaces/{ws}/api-keys/{created['id']}", token=created["key"]).status == 204

    entries = api.get(f"/v1/workspaces/{ws}/audit", as_user=OWNER).json["items"]
    by_action = {e["action"]: e for e in entries}
    owner_sub = api.get("/v1/me", as_user=OWNER).json["id"]
    assert by_action["api_key.created"]["actor_id"] == owner_sub
    assert by_action["api_key.created"]["target_ids"] == [created["id"]]
    assert by_action["api_key.created"]["details"] == {"role": "admin"}
    assert by_action["api_key.revoked"]["actor_id"] == actor  # the key revoked itself
    assert by_action["api_key.revoked"]["target_ids"] == [created["id"]]


def test_revoked_key_is_refused_at_once(api: ApiClient) -> None:
    ws = api.create_workspace(OWNER)
    created = _create_key(api, ws, "admin")
    assert api.get(f"/v1/workspaces/{ws}/contacts", token=created["key"]).status == 200

    revoked = api.delete(f"/v1/workspaces/{ws}/api-keys/{created['id']}", as_user=OWNER)
    assert revoked.status == 204, revoked.body

    refused = api.get(f"/v1/workspaces/{ws}/contacts", token=created["key"])
    assert refused.status == 401, refused.body
    assert api.get(f"/v1/workspaces/{ws}/api-keys", as_user=OWNER).json["items"] == []
    assert repr(_table_items()).count("APIKEY#") == 0  # both items are gone
    again = api.delete(f"/v1/workspaces/{ws}/api-keys/{created['id']}", as_user=OWNER)
    assert again.status == 404, again.body


def test_a_cached_authorization_of_a_revoked_key_is_refused_by_the_role_guard(api: ApiClient) -> None:
    """The cloud authorizer caches its yes for 300 s: the function itself must refuse the key (401)."""
    ws = api.create_workspace(OWNER)
    created = _create_key(api, ws, "admin")
    api.delete(f"/v1/workspaces/{ws}/api-keys/{created['id']}", as_user=OWNER)
    function = api.gateway.table.resolve("GET", f"/v1/workspaces/{ws}/contacts")[0].function
    stale_yes = {"lambda": {"caller": "api_key", "ws": ws, "key_id": created["id"]}}
    event = {
        "version": "2.0",
        "routeKey": "ANY /v1/workspaces/{proxy+}",
        "rawPath": f"/v1/workspaces/{ws}/contacts",
        "rawQueryString": "",
        "headers": {},
        "requestContext": {
            "http": {"method": "GET", "path": f"/v1/workspaces/{ws}/contacts", "sourceIp": "127.0.0.1"},
            "requestId": "r1",
            "routeKey": "ANY /v1/workspaces/{proxy+}",
            "stage": "$default",
            "authorizer": stale_yes,
        },
        "isBase64Encoded": False,
    }

    result = function.invoke(event)

    assert result["statusCode"] == 401, result
    body = json.loads(result["body"]) if isinstance(result["body"], str) else result["body"]
    assert body["type"].endswith("/api-key-revoked")


def test_key_of_one_workspace_gets_404_on_another(api: ApiClient) -> None:
    ws_a = api.create_workspace(OWNER)
    ws_b = api.create_workspace(STRANGER, "Toko Lain")
    key_a = _create_key(api, ws_a, "admin")["key"]

    for method, path in (
        ("GET", f"/v1/workspaces/{ws_b}"),
        ("GET", f"/v1/workspaces/{ws_b}/contacts"),
        ("GET", f"/v1/workspaces/{ws_b}/api-keys"),
        ("POST", f"/v1/workspaces/{ws_b}/api-keys"),
        ("GET", "/v1/workspaces/01NOSUCHWORKSPACE00000000/contacts"),
    ):
        response = api.request(method, path, token=key_a, json_body={"name": "x", "role": "admin"})
        assert response.status == 404, (method, path, response.body)
    assert api.get(f"/v1/workspaces/{ws_b}/api-keys", as_user=STRANGER).json["items"] == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/me"),
        ("DELETE", "/v1/me"),
        ("GET", "/v1/me/export"),
        ("GET", "/v1/workspaces"),
        ("POST", "/v1/workspaces"),
        ("POST", "/v1/realtime/tickets"),
    ],
)
def test_keys_are_refused_outside_a_workspace(api: ApiClient, method: str, path: str) -> None:
    ws = api.create_workspace(OWNER)
    key = _create_key(api, ws, "admin")["key"]

    response = api.request(method, path, token=key, json_body={"name": "Toko Kunci"})

    assert response.status == 403, response.body
    assert response.content_type == "application/problem+json"
    assert response.json["type"].endswith("/api-key-not-allowed")
    # Nothing was done: the owner's account and workspaces are as they were.
    assert [w["id"] for w in api.get("/v1/workspaces", as_user=OWNER).json["items"]] == [ws]
    assert api.get("/v1/me", as_user=OWNER).status == 200


def test_only_admins_manage_keys_and_a_key_is_never_an_owner(api: ApiClient) -> None:
    ws = api.create_workspace(OWNER)
    api.add_member(ws, OWNER, AGENT, "agent")
    api.add_member(ws, OWNER, ADMIN, "admin")
    created = _create_key(api, ws, "agent", as_user=ADMIN)

    assert api.post(f"/v1/workspaces/{ws}/api-keys", {"name": "x", "role": "agent"}, as_user=AGENT).status == 403
    assert api.get(f"/v1/workspaces/{ws}/api-keys", as_user=AGENT).status == 403
    assert api.delete(f"/v1/workspaces/{ws}/api-keys/{created['id']}", as_user=AGENT).status == 403
    for body in ({"name": "x", "role": "owner"}, {"name": "", "role": "agent"}, {"name": "x"}, {"role": "admin"}):
        refused = api.post(f"/v1/workspaces/{ws}/api-keys", body, as_user=OWNER)
        assert refused.status == 422, (body, refused.body)
    assert [k["id"] for k in api.get(f"/v1/workspaces/{ws}/api-keys", as_user=ADMIN).json["items"]] == [created["id"]]


@pytest.mark.parametrize(
    "token",
    [
        "rk_",
        "rk_short",
        "rk_" + "A" * 43,  # well formed, never issued
        "rk_" + "A" * 500,
    ],
)
def test_unknown_or_malformed_keys_get_401(api: ApiClient, token: str) -> None:
    ws = api.create_workspace(OWNER)
    _create_key(api, ws, "admin")

    assert api.get(f"/v1/workspaces/{ws}/contacts", token=token).status == 401


def test_last_used_at_is_written_at_most_once_a_minute(api: ApiClient) -> None:
    ws = api.create_workspace(OWNER)
    created = _create_key(api, ws, "agent")
    start = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    now = [start]
    clock.set_clock(lambda: now[0])
    try:

        def last_used() -> str | None:
            [item] = api.get(f"/v1/workspaces/{ws}/api-keys", as_user=OWNER).json["items"]
            return item["last_used_at"]

        assert api.get(f"/v1/workspaces/{ws}/contacts", token=created["key"]).status == 200
        assert last_used() == start.isoformat().replace("+00:00", "Z") or last_used().startswith("2026-03-01T09:00:00")
        first = last_used()
        now[0] = start + timedelta(seconds=59)
        assert api.get(f"/v1/workspaces/{ws}/contacts", token=created["key"]).status == 200
        assert last_used() == first  # not rewritten within the minute
        now[0] = start + timedelta(seconds=61)
        assert api.get(f"/v1/workspaces/{ws}/contacts", token=created["key"]).status == 200
        assert last_used().startswith("2026-03-01T09:01:01")
    finally:
        clock.set_clock(None)


def test_keys_have_their_own_budget_and_spend_their_workspace_s(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_USER_BURST", "3")
    monkeypatch.setenv("API_USER_RATE_PER_SECOND", "0.001")
    get_settings.cache_clear()
    ws = api.create_workspace(OWNER)
    key = _create_key(api, ws, "agent")["key"]  # the owner's 2nd request (1st: creating the workspace)

    statuses = [api.get(f"/v1/workspaces/{ws}/contacts", token=key).status for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
    limited = api.get(f"/v1/workspaces/{ws}/contacts", token=key)
    assert limited.json["budget"] == "api key"
    assert "retry-after" in limited.headers
    # The owner's own budget is untouched by the key's requests (one request left of three).
    assert api.get(f"/v1/workspaces/{ws}/contacts", as_user=OWNER).status == 200


def test_no_key_text_in_any_log_line(
    api: ApiClient, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app_logger.setLevel("DEBUG")
    # The application's JSON lines as Lambda would ship them (extras included).
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(app_logger.registered_formatter)
    app_logger.addHandler(handler)
    try:
        ws = api.create_workspace(OWNER)
        created = _create_key(api, ws, "agent")
        key = created["key"]
        assert api.get(f"/v1/workspaces/{ws}/contacts", token=key).status == 200
        assert api.get(f"/v1/workspaces/{ws}/audit", token=key).status == 403
        assert api.get("/v1/me", token=key).status == 403
        assert api.get(f"/v1/workspaces/{ws}/contacts", token=key[:-1] + "x").status == 401
        api.delete(f"/v1/workspaces/{ws}/api-keys/{created['id']}", as_user=OWNER)
        assert api.get(f"/v1/workspaces/{ws}/contacts", token=key).status == 401
    finally:
        app_logger.removeHandler(handler)
        app_logger.setLevel("INFO")
    captured = capfd.readouterr()
    logged = captured.out + captured.err + caplog.text + lines.getvalue()
    assert "authorization denied" in lines.getvalue()  # the capture works: the agent key's 403
    assert key[3:] not in logged
    assert key[3:20] not in logged
    assert key[-20:] not in logged


def test_log_lines_mask_key_text_whatever_carries_it() -> None:
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(app_logger.registered_formatter)
    app_logger.addHandler(handler)
    key = "rk_" + "Ab3_-" * 8 + "xyz"
    try:
        app_logger.info(f"message with {key}", extra={"authorization": f"Bearer {key}"})
        try:
            raise ValueError(key)
        except ValueError:
            app_logger.exception("failed")
    finally:
        app_logger.removeHandler(handler)
    text = lines.getvalue()
    assert text.count("rk_[redacted]") >= 3, text
    assert key[3:] not in text


def test_a_message_sent_with_a_key_is_sent_by_the_key(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.integration.api.test_send_support import OWNER as SEND_OWNER
    from tests.integration.api.test_send_support import sending_environment

    for env in sending_environment(api, monkeypatch):
        created = _create_key(api, env.ws, "agent", as_user=SEND_OWNER)
        contact = env.contact()
        sent = api.post(
            f"/v1/workspaces/{env.ws}/messages",
            {"contact_id": contact.id, "type": "text", "text": {"body": "Halo dari integrasi"}},
            token=created["key"],
            headers={"idempotency-key": "key-send-1"},
        )
        assert sent.status in (200, 201, 202), sent.body
        thread = api.get(f"/v1/workspaces/{env.ws}/contacts/{contact.id}/messages", as_user=SEND_OWNER)
        assert thread.status == 200, thread.body
        [item] = [m for m in thread.json["items"] if m["id"] == sent.json["id"]]
        assert item["sender"] == {"type": "api_key", "id": f"key:{created['id']}"}, item
