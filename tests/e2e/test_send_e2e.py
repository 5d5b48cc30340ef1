"""Sending end to end on the local stack: connect the sandbox number, submit a template (approved by
the sandbox's template webhook), send it to a contact, watch the status webhooks move the message to
`read`, and find it in the contact's conversation."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.e2e.polling import wait_for

pytestmark = pytest.mark.e2e

OWNER = "sender-e2e@example.com"


def test_template_send_reaches_read_and_shows_in_the_conversation(local_stack: Any) -> None:
    headers = local_stack.auth_headers(OWNER)
    with local_stack.client(headers=headers) as http:
        created = http.post("/v1/workspaces", json={"name": "Toko E2E"})
        assert created.status_code == 201, created.text
        ws = created.json()["id"]
        phone_number_id = local_stack.connect_whatsapp(http, ws)

        contact = http.post(f"/v1/workspaces/{ws}/contacts", json={"phone": "+6281234567890", "name": "Budi"})
        assert contact.status_code == 201, contact.text
        contact_id = contact.json()["id"]

        template = http.post(
            f"/v1/workspaces/{ws}/templates",
            json={
                "name": "order_update",
                "language": "id",
                "category": "UTILITY",
                "components": [{"type": "BODY", "text": "Halo {{1}}, pesanan Anda sudah dikirim."}],
            },
        )
        assert template.status_code == 201, template.text
        assert template.json()["status"] == "PENDING"
        listed = wait_for(
            lambda: http.get(f"/v1/workspaces/{ws}/templates").json()["items"],
            lambda items: items and items[0]["status"] == "APPROVED",
        )
        assert listed[0]["status"] == "APPROVED", (listed, local_stack.log_tail())

        body = {
            "contact_id": contact_id,
            "type": "template",
            "template": {
                "name": "order_update",
                "language": {"code": "id"},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "Budi"}]}],
            },
        }
        sent = http.post(f"/v1/workspaces/{ws}/messages", json=body, headers={"Idempotency-Key": "e2e-1"})
        assert sent.status_code == 201, sent.text
        message_id = sent.json()["id"]
        assert sent.json()["wamid"]
        repeat = http.post(f"/v1/workspaces/{ws}/messages", json=body, headers={"Idempotency-Key": "e2e-1"})
        assert repeat.json()["id"] == message_id

        # The same key five times at once: one send reaches the sandbox, all five answers carry it.
        def post_once(_: int) -> httpx.Response:
            return http.post(f"/v1/workspaces/{ws}/messages", json=body, headers={"Idempotency-Key": "e2e-5x"})

        with ThreadPoolExecutor(5) as pool:
            answers = list(pool.map(post_once, range(5)))
        assert [a.status_code for a in answers] == [201] * 5, [a.text for a in answers]
        assert len({a.json()["id"] for a in answers}) == 1
        concurrent_wamid = answers[0].json()["wamid"]
        assert {a.json()["wamid"] for a in answers} == {concurrent_wamid}
        accepted = httpx.get(f"{local_stack.sandbox_url}/_sandbox/sent-messages").json()["data"]
        ours = [m["wamid"] for m in accepted if m["phone_number_id"] == phone_number_id]
        assert sorted(ours) == sorted([sent.json()["wamid"], concurrent_wamid])  # one send per key, no more

        final = wait_for(
            lambda: http.get(f"/v1/workspaces/{ws}/messages/{message_id}").json(),
            lambda message: message["status"] == "read",
        )
        assert final["status"] == "read", (final, local_stack.log_tail())

        conversation = http.get(f"/v1/workspaces/{ws}/contacts/{contact_id}/messages")
        assert conversation.status_code == 200, conversation.text
        assert [m["id"] for m in conversation.json()["items"]] == [answers[0].json()["id"], message_id]  # newest first
        assert conversation.json()["items"][1]["status"] == "read"


def test_send_without_idempotency_key_is_refused(local_stack: Any) -> None:
    """A member's valid send to a connected number, refused for the missing header alone: 400
    `idempotency-key-required`, nothing sent to Meta, nothing stored; the same request with the
    header then goes through."""
    headers = local_stack.auth_headers("no-key-e2e@example.com")
    with local_stack.client(headers=headers) as http:
        created = http.post("/v1/workspaces", json={"name": "Toko Tanpa Kunci"})
        assert created.status_code == 201, created.text
        ws = created.json()["id"]
        phone_number_id = local_stack.connect_whatsapp(http, ws)
        contact = http.post(f"/v1/workspaces/{ws}/contacts", json={"phone": "+6281234567891", "name": "Sari"})
        assert contact.status_code == 201, contact.text
        contact_id = contact.json()["id"]
        template = http.post(
            f"/v1/workspaces/{ws}/templates",
            json={
                "name": "no_key_update",  # the sandbox keeps template names unique across WABAs
                "language": "id",
                "category": "UTILITY",
                "components": [{"type": "BODY", "text": "Halo {{1}}, pesanan Anda sudah dikirim."}],
            },
        )
        assert template.status_code == 201, template.text
        listed = wait_for(
            lambda: http.get(f"/v1/workspaces/{ws}/templates").json()["items"],
            lambda items: items and items[0]["status"] == "APPROVED",
        )
        assert listed[0]["status"] == "APPROVED", (listed, local_stack.log_tail())
        body = {
            "contact_id": contact_id,
            "type": "template",
            "template": {
                "name": "no_key_update",
                "language": {"code": "id"},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "Sari"}]}],
            },
        }

        refused = http.post(f"/v1/workspaces/{ws}/messages", json=body)

        assert refused.status_code == 400, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        problem = refused.json()
        assert problem["type"] == "https://relasify.id/problems/idempotency-key-required"
        assert problem["status"] == 400
        sent = httpx.get(f"{local_stack.sandbox_url}/_sandbox/sent-messages").json()["data"]
        assert [m for m in sent if m["phone_number_id"] == phone_number_id] == []
        assert http.get(f"/v1/workspaces/{ws}/contacts/{contact_id}/messages").json()["items"] == []
        # The same request with the header is accepted: the body was valid, the header was all it lacked.
        accepted = http.post(f"/v1/workspaces/{ws}/messages", json=body, headers={"Idempotency-Key": "no-key-1"})
        assert accepted.status_code == 201, (accepted.text, local_stack.log_tail())
