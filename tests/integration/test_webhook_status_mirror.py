"""The processor mirrors statuses on their conversation's last message with as few reads as an SQS
batch allows (relasify.data.conversation_reads, relasify.services.webhook_batch): one consistent
BatchGetItem for a batch's conversations, none for a lone status. What it writes is what the
read-first path wrote: the highest status of the last message only, exactly once, across duplicates,
out-of-order statuses, changes made within the batch and a run that crashed half-way."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relasify.data import conversation_state, conversations, outbox, status_routes, webhook_inbox
from relasify.data import messages as message_store
from relasify.data import models as m
from relasify.data.contacts import contact_repository
from relasify.data.identity import identity_repository
from relasify.data.records import NewContact
from relasify.services import statuses

from tests.integration import test_webhook_ingestion as ingestion
from tests.integration.test_webhook_ingestion import WS, FakeContext, WebhookEnv, sqs_record
from tests.integration.test_webhook_statuses import messages_change

env = ingestion.env  # the receiver/processor environment fixture, connected to WS

BASE_TS = 1767225600  # 2026-01-01T00:00:00Z
OFFSET = {"sent": 1, "delivered": 2, "read": 3}
OTHER_WS = "ws_other"
_seq = itertools.count(1)


# --- helpers -------------------------------------------------------------------------------------


def customer(phone: str, ws: str = WS) -> str:
    contact, _ = contact_repository().create_or_get(ws, NewContact(phone=f"+{phone}", wa_id=phone))
    return contact.id


def send(contact_id: str, ws: str = WS) -> tuple[str, str, str]:
    """An outbound message as the send path leaves it (outbox item with its conversation, wamid
    pointer with its route): (message id, wamid, callback data)."""
    # Zero-padded: the env's clock is frozen, so sends tie on time and their ids order the thread.
    n = f"{next(_seq):06d}"
    message, created = outbox.put_accepted(
        outbox.NewOutbound(
            ws=ws, message_id=f"msg_mirror{n}", contact_id=contact_id, type="text", content={"body": f"pesan {n}"}
        )
    )
    assert created
    callback = message.biz_opaque_callback_data or ""
    route = status_routes.parse_status_callback(callback)
    assert route is not None  # the route callback: the statuses below take the batch path
    statuses.apply_pending_statuses(ws, message.id, f"wamid.MIRROR{n}", route=route)
    return message.id, f"wamid.MIRROR{n}", callback


def status_body(wamid: str, status: str, callback: str, recipient: str) -> str:
    status_item = {
        "id": wamid,
        "status": status,
        "timestamp": str(BASE_TS + OFFSET[status]),
        "recipient_id": recipient,
        "biz_opaque_callback_data": callback,
    }
    return _inline(messages_change(statuses=[status_item]))


def inbound_body(sender: str, text: str, *, wamid: str | None = None) -> str:
    message = {
        "from": sender,
        "id": wamid or f"wamid.IN{next(_seq)}",
        "timestamp": str(BASE_TS + 7260),  # after the sends (the clock says 02:00)
        "type": "text",
        "text": {"body": text},
    }
    return _inline(messages_change(contacts=[{"profile": {"name": "Budi"}, "wa_id": sender}], messages=[message]))


def _inline(payload: dict[str, Any]) -> str:
    message = webhook_inbox.inline_message(json.dumps(payload).encode())
    assert message is not None
    return message


def run(env: WebhookEnv, bodies: list[str]) -> dict[str, Any]:
    records = [sqs_record(f"rec-{next(_seq)}", body) for body in bodies]
    return env.processor.handler({"Records": records}, FakeContext())


def conversation(contact_id: str, ws: str = WS) -> conversation_state.Conversation:
    found = conversations.get(ws, contact_id, consistent=True)
    assert found is not None
    return found


def conversation_reads(made: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str, bool]]:
    """(operation, conversation key, consistent) of every read of a conversation item."""
    reads = []
    for operation, params in made:
        if operation == "GetItem":
            keys, consistent = [params["Key"]], bool(params.get("ConsistentRead"))
        elif operation == "BatchGetItem":
            tables = list(params["RequestItems"].values())
            keys = [k for t in tables for k in t["Keys"]]
            consistent = all(t.get("ConsistentRead") for t in tables)
        else:
            continue
        reads += [(operation, k["PK"]["S"], consistent) for k in keys if k["SK"]["S"] == m.ConversationModel.SK_VALUE]
    return reads


def conversation_updates(made: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [p["Key"]["PK"]["S"] for op, p in made if op == "UpdateItem" and p["Key"]["SK"]["S"] == "CONV"]


# --- a batch: one read for all its conversations ---------------------------------------------------


def test_a_batch_of_statuses_reads_its_conversations_in_one_consistent_request(
    env: WebhookEnv, requests: list[tuple[str, dict[str, Any]]]
) -> None:
    phones = ["6281200000001", "6281200000002", "6281200000003"]
    sent = {phone: send(customer(phone)) for phone in phones}
    requests.clear()
    bodies = [status_body(w, s, cb, phone) for s in OFFSET for phone, (_mid, w, cb) in sent.items()]
    assert run(env, bodies) == {"batchItemFailures": []}
    reads = conversation_reads(requests)
    assert {op for op, _key, _c in reads} == {"BatchGetItem"}
    assert len(reads) == len(phones)
    assert all(consistent for *_, consistent in reads)
    assert [op for op, _ in requests].count("BatchGetItem") == 1
    for phone, (message_id, _w, _cb) in sent.items():
        last = conversation(customer(phone)).last_message
        assert last is not None
        assert (last.id, last.status) == (message_id, "read")
        assert message_store.get_message(WS, message_id).status == "read"
    # Each status moved each conversation once: nothing refused, nothing written twice.
    assert len(conversation_updates(requests)) == len(phones) * len(OFFSET)


def test_two_statuses_of_one_message_in_a_batch_mirror_the_highest_once(
    env: WebhookEnv, requests: list[tuple[str, dict[str, Any]]]
) -> None:
    message_id, wamid, callback = send(customer("6281200000011"))
    other = send(customer("6281200000012"))  # a second conversation: the batch reads ahead
    requests.clear()
    bodies = [
        status_body(wamid, "read", callback, "6281200000011"),
        status_body(wamid, "delivered", callback, "6281200000011"),  # older, after the newer
        status_body(other[1], "sent", other[2], "6281200000012"),
        status_body(wamid, "read", callback, "6281200000011"),  # a duplicate
    ]
    assert run(env, bodies) == {"batchItemFailures": []}
    last = conversation(customer("6281200000011")).last_message
    assert last is not None
    assert (last.id, last.status) == (message_id, "read")
    key = m.conversation_pk(WS, customer("6281200000011"))
    assert conversation_updates(requests).count(key) == 1  # the older and duplicate statuses: no write


def test_a_status_of_a_message_no_longer_the_last_writes_nothing_to_the_conversation(
    env: WebhookEnv, requests: list[tuple[str, dict[str, Any]]]
) -> None:
    contact = customer("6281200000021")
    _first_id, first_wamid, first_callback = send(contact)
    newer_id, _w, _cb = send(contact)  # now the last message
    other = send(customer("6281200000022"))
    before = conversation(contact)
    requests.clear()
    bodies = [
        status_body(first_wamid, "delivered", first_callback, "6281200000021"),
        status_body(other[1], "delivered", other[2], "6281200000022"),
    ]
    assert run(env, bodies) == {"batchItemFailures": []}
    assert m.conversation_pk(WS, contact) not in conversation_updates(requests)  # not even a refused write
    after = conversation(contact)
    assert after.version == before.version
    assert after.last_message is not None
    assert (after.last_message.id, after.last_message.status) == (
        newer_id,
        before.last_message.status if before.last_message else None,
    )


def test_an_inbound_message_earlier_in_the_batch_is_seen_by_a_later_status(
    env: WebhookEnv, requests: list[tuple[str, dict[str, Any]]]
) -> None:
    phone = "6281200000031"
    message_id, wamid, callback = send(customer(phone))
    other = send(customer("6281200000032"))
    requests.clear()
    bodies = [
        inbound_body(phone, "sudah sampai"),  # the customer's reply: now the last message
        status_body(wamid, "read", callback, phone),
        status_body(other[1], "read", other[2], "6281200000032"),
    ]
    assert run(env, bodies) == {"batchItemFailures": []}
    last = conversation(customer(phone)).last_message
    assert last is not None
    assert (last.direction, last.status, last.preview) == ("in", "received", "sudah sampai")
    assert message_store.get_message(WS, message_id).status == "read"
    # The read ahead said the outbound message was last; the reply made it stale: read again, not written.
    assert m.conversation_pk(WS, customer(phone)) not in conversation_updates(requests)


def test_a_conversation_changed_after_the_read_ahead_keeps_its_newer_last_message(
    env: WebhookEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = "6281200000041"
    contact = customer(phone)
    message_id, wamid, callback = send(contact)
    other = send(customer("6281200000042"))
    newer: list[str] = []
    read_ahead = env.processor.invocation_reads

    def then_an_agent_replies(records: Any) -> Any:
        routes = read_ahead(records)
        newer.append(send(contact)[0])  # another container's send, after our read
        return routes

    monkeypatch.setattr(env.processor, "invocation_reads", then_an_agent_replies)
    bodies = [
        status_body(wamid, "delivered", callback, phone),
        status_body(other[1], "sent", other[2], "6281200000042"),
    ]
    assert run(env, bodies) == {"batchItemFailures": []}
    last = conversation(contact).last_message
    assert last is not None
    assert last.id == newer[0]
    assert last.status != "delivered"
    assert message_store.get_message(WS, message_id).status == "delivered"


# --- a lone status: no read, the conditional write decides -------------------------------------------


def test_a_lone_status_of_the_last_message_reads_its_conversation_once_and_mirrors(
    env: WebhookEnv, requests: list[tuple[str, dict[str, Any]]]
) -> None:
    phone = "6281200000051"
    contact = customer(phone)
    message_id, wamid, callback = send(contact)
    before = conversation(contact)
    requests.clear()
    assert run(env, [status_body(wamid, "delivered", callback, phone)]) == {"batchItemFailures": []}
    assert conversation_reads(requests) == [("GetItem", m.conversation_pk(WS, contact), True)]
    after = conversation(customer(phone))
    assert after.last_message is not None
    assert (after.last_message.id, after.last_message.status) == (
        message_id,
        "delivered",
    )
    assert after.version == before.version + 1


def test_a_lone_status_of_an_older_message_writes_nothing_to_the_conversation(
    env: WebhookEnv, requests: list[tuple[str, dict[str, Any]]]
) -> None:
    phone = "6281200000061"
    contact = customer(phone)
    _mid, wamid, callback = send(contact)
    send(contact)
    before = conversation(contact)
    requests.clear()
    assert run(env, [status_body(wamid, "read", callback, phone)]) == {"batchItemFailures": []}
    assert conversation(contact) == before
    assert conversation_updates(requests) == []  # not even a refused conditional write (it costs a WRU)


# --- exactly once: redeliveries and a crashed run ------------------------------------------------------


def test_a_redelivered_batch_changes_nothing_twice(env: WebhookEnv) -> None:
    phones = ["6281200000071", "6281200000072"]
    sent = {phone: send(customer(phone)) for phone in phones}
    bodies = [status_body(w, s, cb, phone) for s in ("sent", "delivered") for phone, (_m, w, cb) in sent.items()]
    assert run(env, bodies) == {"batchItemFailures": []}
    before = {phone: conversation(customer(phone)) for phone in phones}
    assert run(env, bodies) == {"batchItemFailures": []}
    assert run(env, bodies[:1]) == {"batchItemFailures": []}  # and alone (no read ahead)
    assert {phone: conversation(customer(phone)) for phone in phones} == before


def test_a_run_that_crashed_before_the_mirror_is_completed_by_the_redelivery(
    env: WebhookEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    phones = ["6281200000081", "6281200000082"]
    sent = {phone: send(customer(phone)) for phone in phones}
    bodies = [status_body(w, "delivered", cb, phone) for phone, (_m, w, cb) in sent.items()]
    real_mirror = conversations.mirror_message_status

    def crash(*args: Any) -> bool:
        raise RuntimeError("the container died")

    monkeypatch.setattr(conversations, "mirror_message_status", crash)
    assert len(run(env, bodies)["batchItemFailures"]) == len(bodies)
    for phone, (message_id, _w, _cb) in sent.items():  # the message moved, its conversation did not
        assert message_store.get_message(WS, message_id).status == "delivered"
        last = conversation(customer(phone)).last_message
        assert last is not None
        assert last.status != "delivered"
    monkeypatch.setattr(conversations, "mirror_message_status", real_mirror)
    assert run(env, bodies) == {"batchItemFailures": []}  # SQS redelivers the failed records
    assert run(env, bodies[:1]) == {"batchItemFailures": []}
    for phone, (message_id, _w, _cb) in sent.items():
        last = conversation(customer(phone)).last_message
        assert last is not None
        assert (last.id, last.status) == (message_id, "delivered")


# --- tenant isolation -----------------------------------------------------------------------------------


def test_a_callback_naming_another_workspace_never_reads_or_writes_its_conversation(
    env: WebhookEnv, requests: list[tuple[str, dict[str, Any]]]
) -> None:
    identity_repository().put_whatsapp_connection(
        OTHER_WS,
        waba_id="109999999999999",
        phone_number_id="108888888888888",
        encrypted_access_token="ciphertext",
        display_phone_number="6281299900000",
    )
    theirs = send(customer("6281200000091", OTHER_WS), OTHER_WS)
    ours = send(customer("6281200000092"))
    before = conversation(customer("6281200000091", OTHER_WS), OTHER_WS)
    requests.clear()
    bodies = [  # both to OUR number: the other workspace's callback is a claim our route refutes
        status_body(theirs[1], "read", theirs[2], "6281200000091"),
        status_body(ours[1], "read", ours[2], "6281200000092"),
        status_body(theirs[1], "delivered", theirs[2], "6281200000091"),
    ]
    assert run(env, bodies) == {"batchItemFailures": []}
    their_key = m.conversation_pk(OTHER_WS, customer("6281200000091", OTHER_WS))
    assert their_key not in [key for _op, key, _c in conversation_reads(requests)]
    assert their_key not in conversation_updates(requests)
    assert conversation(customer("6281200000091", OTHER_WS), OTHER_WS) == before
    assert message_store.get_message(OTHER_WS, theirs[0]).status == "accepted"


# --- any order, any batching: the same end state ------------------------------------------------------

_phones = itertools.count(6281300000000)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    deliveries=st.lists(st.tuples(st.sampled_from(list(OFFSET)), st.booleans()), min_size=1, max_size=8),
    batch_size=st.integers(min_value=1, max_value=4),
    read_ahead=st.booleans(),
)
def test_any_order_and_batching_mirror_only_the_last_messages_highest_status(
    env: WebhookEnv, deliveries: list[tuple[str, bool]], batch_size: int, read_ahead: bool
) -> None:
    phone, bystander = str(next(_phones)), str(next(_phones))
    contact = customer(phone)
    older, last = send(contact), send(contact)
    other = send(customer(bystander))
    bodies = [
        status_body(message[1], status, message[2], phone)
        for status, of_last in deliveries
        for message in [last if of_last else older]
    ]
    # One batch, or lone statuses, or anything between; with another conversation's status in each
    # batch, the batch reads its conversations ahead (else its statuses update without a read).
    extra = [status_body(other[1], "sent", other[2], bystander)] if read_ahead else []
    for start in range(0, len(bodies), batch_size):
        assert run(env, bodies[start : start + batch_size] + extra) == {"batchItemFailures": []}

    def highest(of_last: bool) -> str:
        reached = [status for status, about_last in deliveries if about_last == of_last]
        return max(reached, key=OFFSET.__getitem__) if reached else "accepted"

    conv = conversation(contact)
    assert conv.last_message is not None
    assert (conv.last_message.id, conv.last_message.status) == (last[0], highest(True))
    assert message_store.get_message(WS, last[0]).status == highest(True)
    assert message_store.get_message(WS, older[0]).status == highest(False)
