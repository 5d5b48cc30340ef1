"""Outgoing webhooks end to end on the local stack (SPEC 5c): an admin subscribes a receiver on
127.0.0.1 (the local stack's setting) to `message.created`; a customer writes in (sandbox, signed
webhook, receiver, queue, processor, the table's stream, the publisher's fan-out, the delivery queue,
the WebhookDelivery worker) and the receiver gets the event, signed with the secret shown once. It
answers 500 the first time: the same event id comes again after the retry delay (5 s locally), and
the delivery log shows both attempts. The event id is the change-feed item's, as on the socket."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from relasify.services.webhook_signing import HEADER, verify

from tests.e2e.polling import wait_for
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.e2e

OWNER = "webhooks-owner-e2e@example.com"
CUSTOMER = "6281277770001"


def test_inbound_message_is_delivered_signed_and_retried_with_the_same_id(local_stack: Any) -> None:
    with (
        WebhookReceiver(statuses=[500]) as receiver,
        local_stack.client(headers=local_stack.auth_headers(OWNER)) as http,
    ):
        ws = http.post("/v1/workspaces", json={"name": "Toko Webhook"}).json()["id"]
        phone_number_id = local_stack.connect_whatsapp(http, ws, "EAAG-e2e-webhooks")
        created = http.post(f"/v1/workspaces/{ws}/webhooks", json={"url": receiver.url, "events": ["message.created"]})
        assert created.status_code == 201, created.text
        hook = created.json()

        posted = httpx.post(
            f"{local_stack.sandbox_url}/_sandbox/inbound",
            json={"phone_number_id": phone_number_id, "from": CUSTOMER, "text": "Halo, webhook?"},
        )
        assert posted.status_code == 200, posted.text

        first = receiver.wait_for(1, timeout=30)
        assert first, local_stack.log_tail()
        event = json.loads(first[0].body)
        assert verify(hook["secret"], first[0].headers[HEADER.lower()], first[0].body, now=int(time.time()))
        assert event["type"] == "message.created"
        assert event["workspace_id"] == ws
        assert "Halo, webhook?" in json.dumps(event["data"], ensure_ascii=False)  # data: the thread item
        message = http.get(f"/v1/workspaces/{ws}/messages/{event['data']['id']}")
        assert message.status_code == 200, message.text

        both = receiver.wait_for(2, timeout=30)
        assert len(both) == 2, local_stack.log_tail()
        again = json.loads(both[1].body)
        assert again["id"] == event["id"]
        assert verify(hook["secret"], both[1].headers[HEADER.lower()], both[1].body, now=int(time.time()))

        # The change feed's event for the same change carries the seq the webhook id is made of.
        changes = wait_for(
            lambda: http.get(f"/v1/workspaces/{ws}/changes").json()["items"],
            lambda items: any(i["type"] == "message.created" for i in items),
        )
        seq = next(i["seq"] for i in changes if i["type"] == "message.created")
        assert event["id"] == f"evt_{seq}"

        log = wait_for(
            lambda: http.get(f"/v1/workspaces/{ws}/webhooks/{hook['id']}/deliveries").json()["items"],
            lambda items: len(items) == 2,
        )
        assert [(a["attempt"], a["outcome"], a["status_code"]) for a in log] == [
            (2, "delivered", 200),
            (1, "retrying", 500),
        ]
        assert "Halo" not in json.dumps(log)
    assert receiver._server is None  # stopped by the test
