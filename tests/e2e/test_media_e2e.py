"""Media end to end on the local stack (SPEC section 5a): an inbound image goes through the webhook,
the processor and the media worker (the sandbox serves its bytes), and its media link downloads
exactly those bytes from moto's S3; an outbound document is uploaded with the presigned POST to moto,
sent, and the sandbox received the same bytes through Graph's media upload."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.polling import wait_for

pytestmark = pytest.mark.e2e

OWNER = "media-e2e@example.com"
WABA_ID = "102345678901234"
APP_SECRET = "dev-app-secret"
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8  # binary, not text
PDF = b"%PDF-1.7\n" + uuid.uuid4().bytes * 64 + b"\n%%EOF"


def _connected_workspace(stack: Any, http: httpx.Client) -> tuple[str, str]:
    ws = http.post("/v1/workspaces", json={"name": "Toko Media"}).json()["id"]
    phone_number_id = str(100000000000000 + uuid.uuid4().int % 10**14)
    # The sandbox knows the number under the WABA with this token: connecting proves ownership.
    stack.register_whatsapp_account(WABA_ID, phone_number_id, "EAAG-media-e2e-token")
    connect = {
        "waba_id": WABA_ID,
        "phone_number_id": phone_number_id,
        "display_phone_number": "6281234500000",
        "access_token": "EAAG-media-e2e-token",
    }
    response = http.put(f"/v1/workspaces/{ws}/whatsapp", json=connect)
    assert response.status_code == 200, response.text
    return ws, phone_number_id


def _post_inbound(stack: Any, phone_number_id: str, wa_id: str, message: dict[str, Any]) -> None:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "6281234500000", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": "Pelanggan"}, "wa_id": wa_id}],
        "messages": [
            {"from": wa_id, "id": f"wamid.media{uuid.uuid4().hex}", "timestamp": str(int(time.time())), **message}
        ],
    }
    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": WABA_ID, "changes": [{"field": "messages", "value": value}]}],
        }
    ).encode()
    signature = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    posted = httpx.post(
        f"{stack.base_url}/webhooks/whatsapp",
        content=body,
        headers={"content-type": "application/json", "x-hub-signature-256": signature},
    )
    assert posted.status_code == 200, posted.text


def test_inbound_image_link_downloads_the_bytes_the_sandbox_served(local_stack: Any) -> None:
    with local_stack.client(headers=local_stack.auth_headers(OWNER)) as http:
        ws, phone_number_id = _connected_workspace(local_stack, http)
        media_id = httpx.post(
            f"{local_stack.sandbox_url}/_sandbox/media", content=JPEG, headers={"content-type": "image/jpeg"}
        ).json()["id"]
        wa_id = "6281277776666"
        _post_inbound(
            local_stack, phone_number_id, wa_id, {"type": "image", "image": {"id": media_id, "mime_type": "image/jpeg"}}
        )
        contacts = wait_for(
            lambda: http.get(f"/v1/workspaces/{ws}/contacts", params={"q": wa_id}).json()["items"], bool
        )
        assert contacts, local_stack.log_tail()
        thread = wait_for(
            lambda: http.get(f"/v1/workspaces/{ws}/contacts/{contacts[0]['id']}/messages").json()["items"], bool
        )
        image = next(m for m in thread if m["type"] == "image")
        link = wait_for(
            lambda: http.get(f"/v1/workspaces/{ws}/messages/{image['id']}/media"), lambda r: r.status_code != 409
        )
        assert link.status_code == 200, (link.text, local_stack.log_tail())
        assert link.json()["mime_type"] == "image/jpeg"
        assert link.json()["size"] == len(JPEG)
        assert link.json()["url"].startswith(local_stack.moto_url)
        downloaded = httpx.get(link.json()["url"])
        assert downloaded.status_code == 200
        assert downloaded.content == JPEG
        # The link is signed: without its signature S3 refuses the object.
        assert httpx.get(link.json()["url"].split("?", 1)[0]).status_code in (400, 403)


def test_outbound_document_upload_send_and_the_sandbox_receives_the_bytes(local_stack: Any) -> None:
    with local_stack.client(headers=local_stack.auth_headers(OWNER)) as http:
        ws, phone_number_id = _connected_workspace(local_stack, http)
        wa_id = "6281277775555"
        _post_inbound(local_stack, phone_number_id, wa_id, {"type": "text", "text": {"body": "Minta invoice"}})
        contacts = wait_for(
            lambda: http.get(f"/v1/workspaces/{ws}/contacts", params={"q": wa_id}).json()["items"], bool
        )
        assert contacts, local_stack.log_tail()
        contact_id = contacts[0]["id"]

        created = http.post(
            f"/v1/workspaces/{ws}/media", json={"mime_type": "application/pdf", "size": len(PDF), "filename": "inv.pdf"}
        )
        assert created.status_code == 201, created.text
        upload = created.json()["upload"]
        posted = httpx.post(upload["url"], data=upload["fields"], files={"file": ("inv.pdf", PDF, "application/pdf")})
        assert posted.status_code in (200, 201, 204), posted.text

        sent = http.post(
            f"/v1/workspaces/{ws}/messages",
            json={
                "contact_id": contact_id,
                "type": "document",
                "document": {"id": created.json()["id"], "caption": "Invoice"},
            },
            headers={"idempotency-key": f"media-{uuid.uuid4().hex}"},
        )
        assert sent.status_code == 201, (sent.text, local_stack.log_tail())
        uploads = httpx.get(f"{local_stack.sandbox_url}/_sandbox/uploaded-media").json()["data"]
        mine = [u for u in uploads if u["phone_number_id"] == phone_number_id]
        assert len(mine) == 1
        assert base64.b64decode(mine[0]["content"]) == PDF
        assert (mine[0]["mime_type"], mine[0]["filename"]) == ("application/pdf", "inv.pdf")
        sends = httpx.get(f"{local_stack.sandbox_url}/_sandbox/sent-messages").json()["data"]
        document = [s for s in sends if s["phone_number_id"] == phone_number_id and s["type"] == "document"]
        assert [d["document"] for d in document] == [{"id": mine[0]["id"], "caption": "Invoice", "filename": "inv.pdf"}]
        # The sent message's link serves the uploaded file back.
        link = http.get(f"/v1/workspaces/{ws}/messages/{sent.json()['id']}/media")
        assert link.status_code == 200, link.text
        assert httpx.get(link.json()["url"]).content == PDF
