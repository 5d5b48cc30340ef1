"""A broadcast end to end on the local stack: the API queues it, the BroadcastWorker (fed by the
stack's SQS poller with the template's batch settings) expands the tag and sends through the
sandbox, the sandbox's status webhooks come back through the receiver and processor, and the
broadcast's counts show every message delivered and read, the opted-out contact skipped."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.polling import wait_for

pytestmark = pytest.mark.e2e

OWNER = "broadcast-e2e@example.com"
AUDIENCE = 12


def test_a_broadcast_is_sent_once_to_each_contact_and_counted_from_the_webhooks(local_stack: Any) -> None:
    with local_stack.client(headers=local_stack.auth_headers(OWNER)) as http:
        ws = http.post("/v1/workspaces", json={"name": "Toko Siaran"}).json()["id"]
        local_stack.connect_whatsapp(http, ws)
        template = http.post(
            f"/v1/workspaces/{ws}/templates",
            json={
                "name": "promo_akhir_tahun",
                "language": "id",
                "category": "MARKETING",
                "components": [{"type": "BODY", "text": "Halo {{1}}, diskon akhir tahun sudah mulai."}],
            },
        )
        assert template.status_code == 201, template.text
        approved = wait_for(
            lambda: http.get(f"/v1/workspaces/{ws}/templates").json()["items"],
            lambda items: items and items[0]["status"] == "APPROVED",
            timeout=60.0,
        )
        assert approved[0]["status"] == "APPROVED", local_stack.log_tail()

        contact_ids = []
        for n in range(AUDIENCE):
            body: dict[str, Any] = {"phone": f"+62813555{n:05d}", "name": f"Pelanggan {n}", "tags": ["vip"]}
            if n == 0:
                body["consent"] = {"status": "opted_out", "source": "whatsapp"}
            created = http.post(f"/v1/workspaces/{ws}/contacts", json=body)
            assert created.status_code == 201, created.text
            contact_ids.append(created.json()["id"])

        queued = http.post(
            f"/v1/workspaces/{ws}/broadcasts",
            json={
                "template": "promo_akhir_tahun",
                "language": "id",
                "audience": {"tags": ["vip"]},
                "parameters": [{"field": "name"}],
            },
        )
        assert queued.status_code == 202, queued.text
        broadcast_url = f"/v1/workspaces/{ws}/broadcasts/{queued.json()['id']}"

        view = wait_for(
            lambda: http.get(broadcast_url).json(),
            lambda v: v["status"] == "completed" and v["counts"]["read"] == AUDIENCE - 1,
            timeout=60.0,
        )
        assert view["status"] == "completed", (view, local_stack.log_tail())
        counts = view["counts"]
        assert view["total"] == AUDIENCE
        assert (counts["queued"], counts["sent"], counts["failed"]) == (0, AUDIENCE - 1, 0)
        assert (counts["delivered"], counts["read"]) == (AUDIENCE - 1, AUDIENCE - 1), counts
        assert counts["skipped_reasons"] == {"contact-opted-out": 1}

        assert http.get(f"/v1/workspaces/{ws}/contacts/{contact_ids[0]}/messages").json()["items"] == []
        for contact_id in contact_ids[1:]:
            messages = http.get(f"/v1/workspaces/{ws}/contacts/{contact_id}/messages").json()["items"]
            assert [m["status"] for m in messages] == ["read"]  # one message each, read
