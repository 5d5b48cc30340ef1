"""The reads a processor invocation makes ahead for its SQS batch (relasify.services.webhook_batch):
its inbound senders' contact ids (one BatchGetItem of their markers) and their conversations (with
the statuses', one consistent BatchGetItem), which the inbound transaction starts from. The same
messages, unread counts and contacts as reading per event: a stale item is refused by the version
condition and read again; a body the read ahead cannot parse, or a read ahead that fails, changes
no record's outcome."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from relasify.data import conversations
from relasify.data import messages as message_store
from relasify.data import models as m
from relasify.data.contacts import contact_repository

from tests.integration import test_webhook_status_mirror as mirror
from tests.integration.test_webhook_ingestion import WS, FakeContext, WebhookEnv, sqs_record
from tests.integration.test_webhook_status_mirror import (
    conversation,
    conversation_reads,
    customer,
    inbound_body,
    run,
    send,
    status_body,
)

env = mirror.env  # the receiver/processor environment fixture, connected to WS
_records = itertools.count(1)


# --- inbound messages: senders and conversations read ahead ----------------------------------------------


def marker_gets(made: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [p["Key"]["PK"]["S"] for op, p in made if op == "GetItem" and "#UNIQ#" in p["Key"]["PK"]["S"]]


def test_a_batch_of_inbound_messages_reads_senders_and_conversations_in_two_requests(
    env: WebhookEnv, requests: list[tuple[str, dict[str, Any]]]
) -> None:
    phones = ["6281200000101", "6281200000102", "6281200000103"]
    contacts = {phone: customer(phone) for phone in phones}
    for contact in contacts.values():
        send(contact)  # known contacts with a conversation
    requests.clear()
    assert run(env, [inbound_body(phone, f"halo {phone}") for phone in phones]) == {"batchItemFailures": []}
    assert marker_gets(requests) == []
    assert sorted(conversation_reads(requests)) == sorted(
        ("BatchGetItem", m.conversation_pk(WS, contact), True) for contact in contacts.values()
    )
    assert [op for op, _ in requests].count("BatchGetItem") == 2  # the markers, then the conversations
    assert [op for op, _ in requests].count("TransactWriteItems") == len(phones)  # none refused
    for phone in phones:
        after = conversation(contacts[phone])
        assert after.unread_count == 1
        assert after.last_message is not None
        assert (after.last_message.direction, after.last_message.preview) == ("in", f"halo {phone}")


def test_messages_of_one_sender_in_a_batch_each_count_once_without_a_refused_write(
    env: WebhookEnv, requests: list[tuple[str, dict[str, Any]]]
) -> None:
    phone, other = "6281200000111", "6281200000112"
    contact = customer(phone)
    message_id, wamid, callback = send(contact)
    send(customer(other))
    requests.clear()
    bodies = [
        status_body(wamid, "delivered", callback, phone),  # mirrored first: the version moves
        inbound_body(phone, "satu"),
        inbound_body(phone, "dua"),
        inbound_body(other, "tiga"),
    ]
    assert run(env, bodies) == {"batchItemFailures": []}
    assert [op for op, _ in requests].count("TransactWriteItems") == 3  # the version read was never stale
    conv = conversation(contact)
    assert conv.unread_count == 2
    assert conv.last_message is not None
    assert conv.last_message.preview == "dua"
    assert message_store.get_message(WS, message_id).status == "delivered"


def test_a_new_sender_writing_twice_in_a_batch_is_one_contact(env: WebhookEnv) -> None:
    phone, other = "6281200000121", "6281200000122"
    send(customer(other))
    bodies = [inbound_body(phone, "pertama"), inbound_body(phone, "kedua"), inbound_body(other, "hai")]
    assert run(env, bodies) == {"batchItemFailures": []}
    found = contact_repository().find_by_phone(WS, f"+{phone}")
    assert found is not None
    conv = conversation(found.id)
    assert conv.unread_count == 2
    assert conversations.count_inbound_after(WS, found.id, None) == 2


def test_an_inbound_message_after_a_change_made_since_the_read_ahead_keeps_both(
    env: WebhookEnv, monkeypatch: pytest.MonkeyPatch, requests: list[tuple[str, dict[str, Any]]]
) -> None:
    phone, other = "6281200000131", "6281200000132"
    contact = customer(phone)
    send(contact)
    send(customer(other))
    read_ahead = env.processor.invocation_reads
    newer: list[str] = []

    def then_an_agent_replies(records: Any) -> Any:
        routes = read_ahead(records)
        newer.append(send(contact)[0])  # another container's send: the version read is stale
        return routes

    monkeypatch.setattr(env.processor, "invocation_reads", then_an_agent_replies)
    requests.clear()
    assert run(env, [inbound_body(phone, "masih ada?"), inbound_body(other, "ok")]) == {"batchItemFailures": []}
    conv = conversation(contact)
    assert conv.unread_count == 1
    assert conv.last_message is not None
    assert (conv.last_message.direction, conv.last_message.preview) == ("in", "masih ada?")
    assert conversations.count_inbound_after(WS, contact, None) == 1
    assert message_store.get_message(WS, newer[0]) is not None


def test_a_redelivered_batch_of_inbound_messages_counts_nothing_twice(env: WebhookEnv) -> None:
    phones = ["6281200000141", "6281200000142"]
    for phone in phones:
        send(customer(phone))
    bodies = [inbound_body(phone, "sekali", wamid=f"wamid.ONCE{phone}") for phone in phones]
    assert run(env, bodies) == {"batchItemFailures": []}
    before = {phone: conversation(customer(phone)) for phone in phones}
    assert run(env, bodies) == {"batchItemFailures": []}
    assert {phone: conversation(customer(phone)) for phone in phones} == before


# --- what the read ahead does not look at, or cannot read ------------------------------------------------


def test_a_body_the_read_ahead_cannot_parse_fails_only_its_record(env: WebhookEnv) -> None:
    phones = ["6281200000151", "6281200000152"]
    sent = {phone: send(customer(phone)) for phone in phones}
    records = [sqs_record(f"rec-{next(_records)}", status_body(w, "read", cb, p)) for p, (_m, w, cb) in sent.items()]
    garbage = sqs_record("rec-garbage", "{not json")
    result = env.processor.handler({"Records": [records[0], garbage, records[1]]}, FakeContext())
    assert result == {"batchItemFailures": [{"itemIdentifier": "rec-garbage"}]}
    for phone, (message_id, _w, _cb) in sent.items():
        last = conversation(customer(phone)).last_message
        assert last is not None
        assert (last.id, last.status) == (message_id, "read")


def test_a_read_ahead_that_fails_leaves_each_record_to_read_what_it_needs(
    env: WebhookEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pynamodb.exceptions import GetError
    from relasify.data.conversation_reads import ConversationReads

    phones = ["6281200000161", "6281200000162"]
    sent = {phone: send(customer(phone)) for phone in phones}

    def throttled(self: ConversationReads, keys: Any) -> None:
        raise GetError("throttled")

    monkeypatch.setattr(ConversationReads, "prefetch", throttled)
    bodies = [status_body(w, "delivered", cb, p) for p, (_m, w, cb) in sent.items()]
    bodies.append(inbound_body(phones[0], "balas"))
    assert run(env, bodies) == {"batchItemFailures": []}
    last = conversation(customer(phones[1])).last_message
    assert last is not None
    assert (last.id, last.status) == (sent[phones[1]][0], "delivered")
    assert conversation(customer(phones[0])).unread_count == 1
