"""The conversation item kept exactly once by the write path (moto): duplicate and concurrent inbound
webhooks, out-of-order statuses, outbound and broadcast sends, notes, the unread recount, and the
write budget (one write request per inbound message, none for a status that changes no preview)."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from relasify import clock
from relasify.data import conversation_state, conversations, outbox
from relasify.data import messages as message_store
from relasify.data import models as m
from relasify.data.base import connection
from relasify.data.contacts import contact_repository
from relasify.data.identity import identity_repository
from relasify.services import statuses, webhook

WS = "ws_inbox"
WABA = "102345678901234"
PHONE_ID = "109876543210987"
DISPLAY = "6281234500000"
CUSTOMER = "6281234567890"
NOW = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
BASE_TS = 1767225600  # 2026-01-01T00:00:00Z
WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
_seq = itertools.count(1)


@pytest.fixture
def connected(ddb_tables: Any) -> None:
    clock.set_clock(lambda: NOW)
    identity_repository().put_whatsapp_connection(
        WS, waba_id=WABA, phone_number_id=PHONE_ID, encrypted_access_token="ciphertext", display_phone_number=DISPLAY
    )
    return


def change(**value: Any) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": DISPLAY, "phone_number_id": PHONE_ID},
                            **value,
                        },
                    }
                ],
            }
        ],
    }


def inbound(text: str, *, wamid: str | None = None, ts: int | None = None, sender: str = CUSTOMER) -> dict[str, Any]:
    wamid = wamid or f"wamid.IN{next(_seq)}"
    return change(
        contacts=[{"profile": {"name": "Budi"}, "wa_id": sender}],
        messages=[
            {
                "from": sender,
                "id": wamid,
                "timestamp": str(ts or BASE_TS + next(_seq)),
                "type": "text",
                "text": {"body": text},
            }
        ],
    )


def status(wamid: str, name: str, *, callback: str, ts: int) -> dict[str, Any]:
    return change(
        statuses=[
            {
                "id": wamid,
                "status": name,
                "timestamp": str(ts),
                "recipient_id": CUSTOMER,
                "biz_opaque_callback_data": callback,
            }
        ]
    )


def contact_id(sender: str = CUSTOMER) -> str:
    contact = contact_repository().find_by_phone(WS, f"+{sender}")
    assert contact is not None
    return contact.id


def conversation(sender: str = CUSTOMER) -> conversation_state.Conversation:
    found = conversations.get(WS, contact_id(sender), consistent=True)
    assert found is not None
    return found


@pytest.fixture
def write_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The DynamoDB write requests made (operation names), recorded at the pynamodb connection."""
    calls: list[str] = []
    conn = connection()
    original = conn.dispatch

    def dispatch(operation_name: str, operation_kwargs: dict[str, Any]) -> Any:
        if operation_name in WRITE_OPERATIONS:
            calls.append(operation_name)
        return original(operation_name, operation_kwargs)

    monkeypatch.setattr(conn, "dispatch", dispatch)
    return calls


def test_a_duplicate_inbound_webhook_counts_once(connected: None) -> None:
    payload = inbound("Halo kak, pesanan saya sudah dikirim?", wamid="wamid.DUP1")
    webhook.process_payload(payload)
    webhook.process_payload(payload)

    conv = conversation()
    assert conv.unread_count == 1
    assert conv.status == "open"
    assert conv.version == 1  # written once: the redelivery failed the message's condition and wrote nothing
    assert conv.last_message is not None
    assert conv.last_message.preview == "Halo kak, pesanan saya sudah dikirim?"
    assert conv.last_message.direction == "in"
    assert conv.last_message.id == message_store.inbound_message_id("wamid.DUP1")
    assert conv.last_inbound_at == datetime.fromtimestamp(conv.last_message.at.timestamp(), UTC)


def test_an_inbound_message_costs_one_write_request_and_a_duplicate_none(
    connected: None, write_calls: list[str]
) -> None:
    webhook.process_payload(inbound("pertama"))  # creates the contact (its own writes)
    write_calls.clear()
    payload = inbound("kedua", wamid="wamid.BUDGET")
    webhook.process_payload(payload)
    message_writes = [c for c in write_calls if c == "TransactWriteItems"]
    assert message_writes == ["TransactWriteItems"]  # message + conversation, one request (was one PutItem)
    write_calls.clear()
    webhook.process_payload(payload)
    assert "TransactWriteItems" not in write_calls[1:]  # the duplicate's one attempt was refused, no retry
    assert write_calls.count("TransactWriteItems") <= 1
    assert conversation().unread_count == 2


def test_out_of_order_inbound_keeps_the_newest_as_last_message(connected: None) -> None:
    webhook.process_payload(inbound("yang baru", wamid="wamid.NEW", ts=BASE_TS + 500))
    webhook.process_payload(inbound("yang lama", wamid="wamid.OLD", ts=BASE_TS + 100))
    conv = conversation()
    assert conv.last_message is not None
    assert conv.last_message.preview == "yang baru"
    assert conv.unread_count == 2
    assert conv.last_inbound_key is not None
    assert conv.last_inbound_key.endswith(message_store.inbound_message_id("wamid.NEW"))


def test_concurrent_inbound_messages_are_counted_exactly(connected: None) -> None:
    webhook.process_payload(inbound("pembuka", wamid="wamid.C0"))
    payloads = [inbound(f"pesan {i}", wamid=f"wamid.C{i}", ts=BASE_TS + 1000 + i) for i in range(1, 13)]
    # Every message twice, all at once: 24 deliveries, 12 new messages.
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(webhook.process_payload, payloads + payloads))
    conv = conversation()
    assert conv.unread_count == 13
    assert conversations.count_inbound_after(WS, conv.id, None) == 13
    assert conv.last_message is not None
    assert conv.last_message.preview == "pesan 12"


def _outbound(text: str, *, broadcast_id: str | None = None, sent_by: str | None = "user_agent") -> Any:
    message, created = outbox.put_accepted(
        outbox.NewOutbound(
            ws=WS,
            message_id=f"msg_out{next(_seq)}",
            contact_id=contact_id(),
            type="text",
            content={"body": text},
            sent_by=sent_by,
            broadcast_id=broadcast_id,
        )
    )
    assert created
    return message


def test_statuses_out_of_order_leave_the_highest_on_last_message(connected: None) -> None:
    webhook.process_payload(inbound("Ada stok?"))
    reply = _outbound("Ada kak")
    statuses.apply_pending_statuses(WS, reply.id, "wamid.REPLY")
    callback = message_store.callback_data(WS, reply.id)
    for name, offset in (("read", 30), ("sent", 10), ("delivered", 20), ("sent", 10)):
        webhook.process_payload(status("wamid.REPLY", name, callback=callback, ts=BASE_TS + offset))
    conv = conversation()
    assert conv.last_message is not None
    assert (conv.last_message.id, conv.last_message.direction, conv.last_message.status) == (reply.id, "out", "read")
    assert conv.unread_count == 1  # statuses never touch unread


def test_a_status_of_an_older_message_writes_nothing_to_the_conversation(
    connected: None, write_calls: list[str]
) -> None:
    webhook.process_payload(inbound("halo"))
    first = _outbound("satu")
    statuses.apply_pending_statuses(WS, first.id, "wamid.FIRST")
    _outbound("dua")  # now the last message
    before = conversation()
    write_calls.clear()
    webhook.process_payload(
        status("wamid.FIRST", "delivered", callback=message_store.callback_data(WS, first.id), ts=BASE_TS + 5)
    )
    # The message's own status with its change-feed event (one transaction), nothing more: the
    # conversation's version below proves it was not among the items.
    assert write_calls == ["TransactWriteItems"]
    after = conversation()
    assert after.version == before.version
    assert after.last_message == before.last_message


def test_outbound_and_broadcast_sends_keep_the_conversation_current(connected: None) -> None:
    webhook.process_payload(inbound("halo", sender="6281200000001"))
    user_conversation = conversation("6281200000001")
    assert user_conversation.status == "open"
    # A broadcast to a contact without a conversation: it starts resolved (not in the open queue).
    contact, _ = contact_repository().create_or_get(WS, _new_contact("+6281200000002"))
    outbox.put_accepted(
        outbox.NewOutbound(
            ws=WS,
            message_id="msg_bcast1",
            contact_id=contact.id,
            type="template",
            content={"name": "promo_lebaran"},
            broadcast_id="bc_1",
        )
    )
    broadcast_conversation = conversations.get(WS, contact.id, consistent=True)
    assert broadcast_conversation is not None
    assert broadcast_conversation.status == "resolved"
    assert broadcast_conversation.last_message is not None
    assert broadcast_conversation.last_message.preview == "promo_lebaran"
    assert broadcast_conversation.unread_count == 0
    # The same send retried (same message id) changes nothing.
    again, created = outbox.put_accepted(
        outbox.NewOutbound(
            ws=WS,
            message_id="msg_bcast1",
            contact_id=contact.id,
            type="template",
            content={"name": "promo_lebaran"},
            broadcast_id="bc_1",
        )
    )
    assert not created
    assert again.id == "msg_bcast1"
    assert conversations.get(WS, contact.id, consistent=True).version == broadcast_conversation.version  # type: ignore[union-attr]


def _new_contact(phone: str) -> Any:
    from relasify.data.records import NewContact

    return NewContact(phone=phone, wa_id=phone.lstrip("+"))


def test_inbound_reopens_a_resolved_or_snoozed_conversation(connected: None) -> None:
    webhook.process_payload(inbound("halo"))
    cid = contact_id()
    conversations.update(WS, cid, lambda c: c.model_copy(update={"status": "resolved"}))  # type: ignore[union-attr]
    webhook.process_payload(inbound("lagi"))
    assert conversation().status == "open"
    until = NOW + timedelta(hours=3)
    conversations.update(WS, cid, lambda c: c.model_copy(update={"status": "snoozed", "snoozed_until": until}))  # type: ignore[union-attr]
    webhook.process_payload(inbound("dan lagi"))
    conv = conversation()
    assert (conv.status, conv.snoozed_until, conv.unread_count) == ("open", None, 3)


def test_notes_are_activity_not_unread_and_not_the_preview(connected: None) -> None:
    webhook.process_payload(inbound("halo"))
    before = conversation()
    clock.set_clock(lambda: NOW + timedelta(minutes=5))
    note = conversations.add_note(WS, before.id, "user_agent", "Pelanggan VIP, prioritaskan")
    after = conversation()
    assert after.unread_count == 1
    assert after.last_message == before.last_message
    assert after.last_activity_at == NOW + timedelta(minutes=5)
    stored = message_store.get_message(WS, note.id)
    assert stored is not None
    assert (stored.direction, stored.sent_by) == ("note", "user_agent")


def test_mark_read_recounts_and_heals_drift(connected: None) -> None:
    for i in range(3):
        webhook.process_payload(inbound(f"m{i}", wamid=f"wamid.R{i}", ts=BASE_TS + 10 * (i + 1)))
    cid = contact_id()
    # Drift (e.g. a hand edit): the recount on read puts it right.
    conversations.update(WS, cid, lambda c: c.model_copy(update={"unread_count": 42}))  # type: ignore[union-attr]
    first = message_store.get_inbound(WS, "wamid.R0")
    assert first is not None
    assert first.message_at is not None
    marked = conversations.mark_read(WS, cid, message_store.conversation_sort_key(first.message_at, first.id))
    assert marked is not None
    assert marked.unread_count == 2
    assert conversations.mark_read(WS, cid, None).unread_count == 0  # type: ignore[union-attr]
    webhook.process_payload(inbound("baru", wamid="wamid.R9", ts=BASE_TS + 100))
    assert conversation().unread_count == 1


def test_a_preview_is_at_most_100_characters(connected: None) -> None:
    webhook.process_payload(inbound("x" * 300))
    preview = conversation().last_message.preview  # type: ignore[union-attr]
    assert preview is not None
    assert len(preview) == 100
    assert preview.endswith("…")


def test_the_conversation_is_message_content_with_a_ttl(connected: None) -> None:
    webhook.process_payload(inbound("halo"))
    item = m.ConversationModel.get(m.conversation_pk(WS, contact_id()), "CONV")
    assert item.data_class.value == "message_content"
    # 90 days after the content, rounded down to a day boundary (UTC): never later than promised
    # (at most a day earlier), and the same for every write of that day.
    promised = int((NOW + timedelta(days=90)).timestamp())
    assert promised - 86_400 < item.expires_at <= promised
    assert item.expires_at % 86_400 == 0
    assert item.expiry_bucket is not None


def test_a_days_writes_keep_the_ttl_and_the_conversation_is_in_the_inbox_index_only(connected: None) -> None:
    """The TTL moves once a day at most (rounded to the day): a day's writes do not rewrite the
    conversation's ByExpiry entry nor its inbox entry (which projects the TTL)."""
    webhook.process_payload(inbound("halo"))
    key = (m.conversation_pk(WS, contact_id()), "CONV")
    first = m.ConversationModel.get(*key)
    clock.set_clock(lambda: NOW + timedelta(hours=20))
    webhook.process_payload(inbound("lagi"))
    later = m.ConversationModel.get(*key)
    assert later.unread_count == 2
    assert (later.expires_at, later.expiry_bucket) == (first.expires_at, first.expiry_bucket)
    clock.set_clock(lambda: NOW + timedelta(days=1))
    webhook.process_payload(inbound("besok"))
    assert m.ConversationModel.get(*key).expires_at == first.expires_at + 86_400
    stored = connection().dispatch(
        "GetItem", {"TableName": m.ConversationModel.Meta.table_name, "Key": {"PK": {"S": key[0]}, "SK": {"S": key[1]}}}
    )["Item"]
    assert stored["InboxPK"]["S"] == m.inbox_pk(WS, "open")
    assert not {"GSI1PK", "GSI2PK"} & set(stored)
