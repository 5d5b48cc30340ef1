"""An erased contact stays erased when Meta redelivers an OLD webhook about them (Meta retries for up
to 7 days): the erasure leaves tombstones (keyed hashes of the person's WhatsApp ids, no personal
data), and the webhook processor drops inbound messages and statuses about that person that happened
before the erasure. A message sent after the erasure creates a new contact, as it should.

The tombstone is read only when the sender is unknown (the create path), so the events of known
contacts cost exactly the requests they cost before (docs/PERFORMANCE.md)."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import boto3
import pytest
from relasify import clock, retention
from relasify.data import messages as message_store
from relasify.data import outbound_messages, tombstones
from relasify.data.contacts import contact_repository
from relasify.data.identity import identity_repository
from relasify.services import webhook
from relasify.settings import get_settings

from bench.aws_counter import count_aws
from tests.support.api import ApiClient

OWNER = "owner@example.com"
PHONE_NUMBER_ID = "109876543210987"
WABA_ID = "102345678901234"
WA_ID = "6281299887766"
NAME = "Dewi Lestari Kusuma"
OLD_TEXT = "Halo kak, pesanan saya nomor 4471 belum sampai"
OLD_WAMID = "wamid.old-inbound-before-erasure"
OUT_WAMID = "wamid.old-outbound-before-erasure"


def _envelope(value: dict[str, Any]) -> dict[str, Any]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "6281234500000", "phone_number_id": PHONE_NUMBER_ID},
        **value,
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "changes": [{"field": "messages", "value": value}]}],
    }


def inbound(wamid: str, text: str, at: int, wa_id: str = WA_ID) -> dict[str, Any]:
    return _envelope(
        {
            "contacts": [{"profile": {"name": NAME}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": wamid, "timestamp": str(at), "type": "text", "text": {"body": text}}],
        }
    )


def status(wamid: str, name: str, at: int, callback: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": wamid, "status": name, "timestamp": str(at), "recipient_id": WA_ID}
    if callback:
        entry["biz_opaque_callback_data"] = callback
    return _envelope({"statuses": [entry]})


def process(payload: dict[str, Any]) -> dict[str, int]:
    return webhook.process_payload(json.dumps(payload)).counts


def table_items() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in boto3.client("dynamodb").get_paginator("scan").paginate(TableName=get_settings().table_name):
        items += page["Items"]
    return items


@pytest.fixture
def ws(api: ApiClient) -> str:
    ws = api.create_workspace(OWNER)
    identity_repository().put_whatsapp_connection(
        ws, waba_id=WABA_ID, phone_number_id=PHONE_NUMBER_ID, encrypted_access_token="Y3Q="
    )
    return ws


def _erase(api: ApiClient, ws: str, contact_id: str) -> None:
    response = api.post(f"/v1/workspaces/{ws}/contacts/{contact_id}/erase", as_user=OWNER)
    assert response.status == 200, response.body


def test_old_redelivered_webhooks_do_not_recreate_an_erased_contact_but_a_new_message_does(
    api: ApiClient, ws: str
) -> None:
    before = clock.epoch() - 3600  # the customer wrote an hour ago
    assert process(inbound(OLD_WAMID, OLD_TEXT, before)) == {"inbound_message:recorded": 1}
    contact = contact_repository().find_by(ws, "wa_id", WA_ID)
    assert contact is not None
    outbound = outbound_messages.record_outbound(ws, contact.id, "text", {"body": "Pesanan dikirim hari ini"})
    outbound_messages.attach_wamid(ws, outbound.id, OUT_WAMID)

    _erase(api, ws, contact.id)

    # Meta redelivers the old inbound message and sends an old status of the erased outbound
    # message (with and without callback data): all dropped.
    assert process(inbound(OLD_WAMID, OLD_TEXT, before)) == {"inbound_message:erased": 1}
    callback = message_store.callback_data(ws, outbound.id)
    assert process(status(OUT_WAMID, "delivered", before + 60, callback)) == {"status:erased": 1}
    assert process(status(OUT_WAMID, "read", before + 120, None)) == {"status:erased": 1}
    # ... and with the route every send now carries (issue 19: applied without reading the message):
    # the conditional update finds no item and creates none.
    assert outbound.biz_opaque_callback_data is not None
    assert process(status(OUT_WAMID, "sent", before + 30, outbound.biz_opaque_callback_data)) == {"status:erased": 1}

    assert contact_repository().find_by(ws, "wa_id", WA_ID) is None
    assert message_store.get_inbound(ws, OLD_WAMID) is None
    needles = [WA_ID, NAME, OLD_TEXT, OLD_WAMID, OUT_WAMID, contact.id]
    for item in table_items():
        text = json.dumps(item)
        for needle in needles:
            if needle == contact.id and item["PK"]["S"].startswith(f"WS#{ws}#AUDIT"):
                continue  # the erasure's own audit entry names the id it erased
            assert needle not in text, (needle, item["PK"]["S"], item["SK"]["S"])
    # What stays: tombstones with a hash and a time only, expiring after the redelivery window.
    stones = [i for i in table_items() if i["PK"]["S"].startswith(f"WS#{ws}#ERASED#")]
    assert len(stones) == 3  # the wa_id (the phone's wa_id is the same id here) and the two messages' wamids
    for stone in stones:
        assert set(stone) == {"PK", "SK", "erased_at", "expires_at", "expiry_bucket", "created_at", "updated_at"}
    erased_at = int(stones[0]["erased_at"]["N"])
    for stone in stones:
        assert int(stone["expires_at"]["N"]) == erased_at + int(retention.ERASURE_TOMBSTONE_WINDOW.total_seconds())
    assert timedelta(days=7) < retention.ERASURE_TOMBSTONE_WINDOW  # longer than Meta's retry window

    # The person writes again after the erasure: a new contact, with only the new message.
    after = erased_at + 5
    assert process(inbound("wamid.new-after-erasure", "Saya mau pesan lagi", after)) == {"inbound_message:recorded": 1}
    again = contact_repository().find_by(ws, "wa_id", WA_ID)
    assert again is not None
    assert again.id != contact.id
    assert message_store.get_inbound(ws, "wamid.new-after-erasure") is not None
    assert message_store.get_inbound(ws, OLD_WAMID) is None


def test_a_status_of_an_erased_message_dated_after_the_erasure_is_dropped(api: ApiClient, ws: str) -> None:
    """The customer reads a message a day after its erasure: the read status (its time after the
    erasure, so not an old redelivery) still leaves nothing, not even an early-status item keyed
    by the wamid."""
    process(inbound(OLD_WAMID, OLD_TEXT, clock.epoch() - 60))
    contact = contact_repository().find_by(ws, "wa_id", WA_ID)
    assert contact is not None
    outbound = outbound_messages.record_outbound(ws, contact.id, "text", {"body": "Pesanan dikirim hari ini"})
    outbound_messages.attach_wamid(ws, outbound.id, OUT_WAMID)
    _erase(api, ws, contact.id)

    later = clock.epoch() + 86_400
    assert process(status(OUT_WAMID, "read", later, None)) == {"status:erased": 1}
    assert not [i for i in table_items() if OUT_WAMID in json.dumps(i)]
    # Another message's early status (its send not recorded yet) is still kept until it is.
    assert process(status("wamid.sent-after-erasure", "sent", later, None)) == {"status:pending": 1}


def test_a_user_preferences_stop_sent_before_the_erasure_does_not_recreate_the_contact(api: ApiClient, ws: str) -> None:
    before = clock.epoch() - 60
    process(inbound(OLD_WAMID, OLD_TEXT, before))
    contact = contact_repository().find_by(ws, "wa_id", WA_ID)
    assert contact is not None
    _erase(api, ws, contact.id)

    preference = _envelope(
        {
            "user_preferences": [
                {
                    "wa_id": WA_ID,
                    "detail": "stop",
                    "category": "marketing_messages",
                    "value": "stop",
                    "timestamp": before,
                }
            ]
        }
    )
    preference["entry"][0]["changes"][0]["field"] = "user_preferences"
    assert process(preference) == {"user_preference:erased": 1}
    assert contact_repository().find_by(ws, "wa_id", WA_ID) is None


def test_tombstones_hold_no_personal_data_and_are_keyed_per_workspace(api: ApiClient, ws: str) -> None:
    digest = tombstones.sender_digest(ws, "wa_id", WA_ID)
    assert WA_ID not in digest
    assert digest != tombstones.sender_digest("ws_other", "wa_id", WA_ID)
    assert len(digest) == 64  # HMAC-SHA256, hex


def test_known_contact_events_make_no_extra_request_and_never_read_a_tombstone(
    api: ApiClient, ws: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/PERFORMANCE.md: inbound message from a known contact GetItem 2 (route, wa_id marker),
    PutItem 1, UpdateItem 1; a status of a known message without pricing GetItem 1 (route), UpdateItem 1."""
    now = int(time.time())
    process(inbound("wamid.first", "Halo", now - 10))
    contact = contact_repository().find_by(ws, "wa_id", WA_ID)
    assert contact is not None
    outbound = outbound_messages.record_outbound(ws, contact.id, "text", {"body": "Baik kak"})
    outbound_messages.attach_wamid(ws, outbound.id, OUT_WAMID)

    lookups: list[Any] = []
    original = tombstones.erased_at
    monkeypatch.setattr(tombstones, "erased_at", lambda *a, **kw: lookups.append(a) or original(*a, **kw))

    def counted(payload: dict[str, Any]) -> dict[str, int]:
        with count_aws() as counter:
            assert "erased" not in json.dumps(process(payload))
        return {k.removeprefix("dynamodb:"): v for k, v in counter.requests.items() if "dynamodb:" in k}

    # The message and its conversation are one transaction (docs/INBOX.md): one more GetItem (the
    # conversation's version), the PutItem became a TransactWriteItems.
    expected_inbound = {"GetItem": 3, "TransactWriteItems": 1, "UpdateItem": 1}
    assert counted(inbound("wamid.second", "Masih ada?", now)) == expected_inbound
    callback = message_store.callback_data(ws, outbound.id)
    # A status reads the message (its conversation names the change-feed event) and the conversation
    # (is this its last message? here not), then writes the message and its event in one transaction.
    assert counted(status(OUT_WAMID, "delivered", now, callback)) == {"GetItem": 3, "TransactWriteItems": 1}
    # With the route every send now carries (issue 19): no message read, no transaction; the message
    # update, then its event (and nothing about erasures either).
    routed = status(OUT_WAMID, "read", now, outbound.biz_opaque_callback_data)
    assert counted(routed) == {"GetItem": 2, "UpdateItem": 1, "PutItem": 1}
    assert lookups == []

    # The create path (a sender never seen) pays one BatchGetItem for the tombstones, nothing else more.
    with count_aws() as counter:
        process(inbound("wamid.stranger", "Halo", now, wa_id="6281311112222"))
    assert counter.requests["dynamodb:BatchGetItem"] == 1
    assert len(lookups) == 1
