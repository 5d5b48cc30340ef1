"""Every documented webhook fixture through the local stack over HTTP (issue 5 acceptance):
signed correctly -> 200 and the effects are visible through the API; delivered three times ->
exactly one effect; wrong or missing signature -> 401 and nothing stored."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from relasify_local.cfn import REPO_ROOT

pytestmark = pytest.mark.e2e

FIXTURES_DIR = REPO_ROOT.parent / "shared" / "fixtures" / "whatsapp"
FIXTURES = sorted(FIXTURES_DIR.glob("*.json"))
APP_SECRET = "dev-app-secret"
WABA_ID = "102345678901234"
PHONE_NUMBER_ID = "109876543210987"
CUSTOMER_WA_ID = "6281234567890"
INBOUND_TYPES = {"text", "image", "document", "audio", "location", "interactive", "button"}


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def wait_for(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    value = fetch()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.25)
        value = fetch()
    return value


def raw_webhook_keys(local_stack: Any) -> set[str]:
    """The sha256 digests of the raw payloads currently stored."""
    return {key.rsplit("/", 1)[-1].removesuffix(".json") for key in _raw_keys(local_stack)}


def raw_webhook_objects(local_stack: Any) -> int:
    return len(_raw_keys(local_stack))


def _raw_keys(local_stack: Any) -> list[str]:
    s3 = boto3.client(
        "s3",
        endpoint_url=local_stack.moto_url,
        region_name="ap-southeast-3",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    bucket = local_stack.environment["MEDIA_BUCKET"]
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="raw-webhooks/")
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def post_fixture(local_stack: Any, path: Path, signature: str | None) -> httpx.Response:
    body = path.read_bytes()  # the file's bytes, never a re-serialisation
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["x-hub-signature-256"] = signature
    return httpx.post(f"{local_stack.base_url}/webhooks/whatsapp", content=body, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def connected_workspace(local_stack: Any) -> tuple[str, httpx.Client]:
    http = local_stack.client(headers=local_stack.auth_headers("webhook-owner@example.com"))
    created = http.post("/v1/workspaces", json={"name": "Webhook E2E"})
    assert created.status_code == 201, created.text
    ws = created.json()["id"]
    connect = http.put(
        f"/v1/workspaces/{ws}/whatsapp",
        json={
            "waba_id": WABA_ID,
            "phone_number_id": PHONE_NUMBER_ID,
            "display_phone_number": "6281234500000",
            "access_token": "EAAG-local-e2e-token",
        },
    )
    assert connect.status_code == 200, connect.text
    return ws, http


def test_fixtures_exist() -> None:
    assert len(FIXTURES) >= 12, FIXTURES_DIR


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "sha256=deadbeef", sign(b"other body")])
def test_wrong_or_missing_signature_is_401_and_nothing_is_stored(local_stack: Any, signature: str | None) -> None:
    before = raw_webhook_objects(local_stack)
    for path in FIXTURES:
        response = post_fixture(local_stack, path, signature)
        assert response.status_code == 401, (path.name, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert raw_webhook_objects(local_stack) == before


def test_every_fixture_is_accepted_once_and_has_one_effect(local_stack: Any, connected_workspace: Any) -> None:
    ws, http = connected_workspace
    for _ in range(3):  # every delivery three times: one effect
        for path in FIXTURES:
            response = post_fixture(local_stack, path, sign(path.read_bytes()))
            assert response.status_code == 200, (path.name, response.text)

    # The inbound messages created the contact (by wa_id) ...
    def contact_list() -> list[dict[str, Any]]:
        return http.get(f"/v1/workspaces/{ws}/contacts", params={"limit": 100}).json().get("items", [])

    contacts = wait_for(contact_list, lambda items: any(c.get("wa_id") == CUSTOMER_WA_ID for c in items))
    matching = [c for c in contacts if c.get("wa_id") == CUSTOMER_WA_ID]
    assert len(matching) == 1, (contacts, local_stack.log_tail())
    contact = matching[0]

    # ... joined the conversation once each, whatever the number of deliveries ...
    def conversation() -> list[dict[str, Any]]:
        response = http.get(f"/v1/workspaces/{ws}/contacts/{contact['id']}/messages", params={"limit": 100})
        return response.json().get("items", [])

    messages = wait_for(conversation, lambda items: {m.get("type") for m in items} >= INBOUND_TYPES)
    inbound = [m for m in messages if m.get("direction") == "in"]
    assert {m["type"] for m in inbound} >= INBOUND_TYPES, (messages, local_stack.log_tail())
    assert len(inbound) == len({m["id"] for m in inbound}) == len(INBOUND_TYPES), inbound

    # ... moved the service window, and the template opt-out button opted the contact out.
    refreshed = wait_for(
        lambda: http.get(f"/v1/workspaces/{ws}/contacts/{contact['id']}").json(),
        lambda c: (c.get("consent") or {}).get("status") == "opted_out",
    )
    assert refreshed["last_inbound_at"] is not None
    assert refreshed["consent"]["status"] == "opted_out", refreshed
    history = refreshed["consent"].get("history", [])
    assert len([h for h in history if h.get("status") == "opted_out"]) == 1, history

    # The template status webhook is visible through the templates API.
    templates = wait_for(
        lambda: http.get(f"/v1/workspaces/{ws}/templates").json().get("items", []),
        lambda items: any(t.get("name") == "konfirmasi_pesanan" for t in items),
    )
    approved = [t for t in templates if t.get("name") == "konfirmasi_pesanan"]
    assert len(approved) == 1, templates
    assert approved[0]["status"] == "APPROVED"

    # No raw copy is left (personal data now lives only in items that erasure and the retention sweep
    # reach): each fixture fit its queue message, so none was written (v2 inline, issue 19).
    digests = {hashlib.sha256(path.read_bytes()).hexdigest() for path in FIXTURES}
    leftover = wait_for(lambda: raw_webhook_keys(local_stack) & digests, lambda found: not found)
    assert leftover == set()


EMOJI = "\U0001f600"  # 4 bytes raw, 12 escaped in a JSON queue message


def test_150_kb_of_emoji_is_accepted_stored_once_and_leaves_no_raw_copy(
    local_stack: Any, connected_workspace: Any
) -> None:
    """Issue 19 through the stack: the local moto refuses SQS messages over 262,144 bytes as SQS does,
    so the receiver must enqueue this body (~450 KB once escaped) by pointer, not answer 500."""
    import json

    ws, http = connected_workspace
    wa_id, text = "6281299990019", EMOJI * (150_000 // 4)
    payload = json.loads((FIXTURES_DIR / "01_inbound_text.json").read_bytes())
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = value["messages"][0]["from"] = wa_id
    value["messages"][0]["id"] = "wamid.E2E-EMOJI-150KB"
    value["messages"][0]["text"] = {"body": text}
    body = json.dumps(payload, ensure_ascii=False).encode()
    for _ in range(2):  # Meta's redelivery: still one message
        response = httpx.post(
            f"{local_stack.base_url}/webhooks/whatsapp",
            content=body,
            headers={"content-type": "application/json", "x-hub-signature-256": sign(body)},
            timeout=30,
        )
        assert response.status_code == 200, (response.text, local_stack.log_tail())
    found = wait_for(
        lambda: http.get(f"/v1/workspaces/{ws}/contacts", params={"q": wa_id}).json().get("items", []),
        lambda items: len(items) == 1,
    )
    assert len(found) == 1, local_stack.log_tail()

    def conversation() -> list[dict[str, Any]]:
        return http.get(f"/v1/workspaces/{ws}/contacts/{found[0]['id']}/messages").json().get("items", [])

    messages = wait_for(conversation, lambda items: len(items) >= 1)
    assert [m["content"]["body"] for m in messages] == [text]
    digest = hashlib.sha256(body).hexdigest()
    assert wait_for(lambda: raw_webhook_keys(local_stack) & {digest}, lambda left: not left) == set()
