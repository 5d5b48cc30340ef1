"""Status webhooks routed by their callback data (relasify.data.status_writes), against moto: no
read of the message and no transaction; exactly-once events and billing across duplicates,
out-of-order statuses and a crash between the writes; a callback that names the wrong contact,
broadcast or workspace writes nothing there."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from relasify import clock
from relasify.data import changes, outbound_messages, status_changes, status_routes, status_writes
from relasify.data import messages as message_store
from relasify.data import models as m
from relasify.data.contacts import contact_repository
from relasify.data.identity import identity_repository
from relasify.data.records import NewContact
from relasify.services import statuses, webhook

from tests.integration.test_webhook_statuses import (
    CUSTOMER,
    DISPLAY,
    NOW,
    PHONE_ID,
    WABA,
    WS,
    billing_records,
    customer,
    messages_change,
    status_item,
)

OTHER_CUSTOMER = "6281299999999"


@pytest.fixture
def connected(ddb_tables: Any) -> None:
    clock.set_clock(lambda: NOW)
    identity_repository().put_whatsapp_connection(
        WS, waba_id=WABA, phone_number_id=PHONE_ID, encrypted_access_token="ciphertext", display_phone_number=DISPLAY
    )


def sent_message(*, wamid: str) -> message_store.Message:
    """An outbound message as the send path leaves it: its wamid pointer written with its route."""
    message = outbound_messages.record_outbound(WS, customer().id, "template", {"name": "promo"})
    statuses.apply_pending_statuses(
        WS, message.id, wamid, route=status_routes.parse_status_callback(message.biz_opaque_callback_data)
    )
    return message


def deliver(wamid: str, status: str, callback: str | None, *, billable: bool = False) -> webhook.ProcessSummary:
    return webhook.process_payload(
        messages_change(statuses=[status_item(wamid, status, callback=callback, billable=billable)])
    )


def events_of(message_id: str) -> list[changes.ChangeEventModel]:
    return [e for e in changes.ChangeEventModel.query(changes.change_pk(WS)) if e.message_id == message_id]


def _message_keys_read(made: list[tuple[str, dict[str, Any]]]) -> list[str]:
    keys: list[str] = []
    for operation, params in made:
        if operation == "GetItem":
            keys.append(params["Key"]["PK"]["S"])
        elif operation == "BatchGetItem":
            keys += [k["PK"]["S"] for table in params["RequestItems"].values() for k in table["Keys"]]
    return [k for k in keys if "#MSG#" in k]


def test_a_routed_status_is_one_conditional_update_and_puts_beside_it(
    connected: None,
    requests: list[tuple[str, dict[str, Any]]],
) -> None:
    message = sent_message(wamid="wamid.r1")
    requests.clear()
    assert deliver("wamid.r1", "sent", message.biz_opaque_callback_data, billable=True).counts == {"status:applied": 1}
    operations = [op for op, _ in requests]
    assert "TransactWriteItems" not in operations
    assert _message_keys_read(requests) == []  # the message is not read, nor its wamid pointer
    assert not [p for op, p in requests if op == "GetItem" and p["Key"]["PK"]["S"].startswith("WAMID#")]
    assert operations.count("UpdateItem") >= 1
    stored = m.MessageModel.get(m.message_pk(WS, message.id), "MSG")
    assert (stored.status, stored.wamid) == ("sent", "wamid.r1")
    [event] = events_of(message.id)
    assert (event.seq, event.event_type, event.conversation_id) == (
        stored.event_seq,
        "message.updated",
        message.contact_id,
    )
    assert len(billing_records()) == 1


def test_a_status_without_callback_data_takes_its_route_from_the_wamid_pointer(
    connected: None,
    requests: list[tuple[str, dict[str, Any]]],
) -> None:
    message = sent_message(wamid="wamid.nocb")
    requests.clear()
    assert deliver("wamid.nocb", "read", None, billable=True).counts == {"status:applied": 1}
    assert "TransactWriteItems" not in [op for op, _ in requests]
    assert _message_keys_read(requests) == []  # the pointer is read, the message is not
    assert message_store.get_message(WS, message.id).status == "read"
    assert len(events_of(message.id)) == 1
    assert len(billing_records()) == 1


def test_duplicates_and_out_of_order_statuses_write_no_second_event_or_bill(connected: None) -> None:
    message = sent_message(wamid="wamid.r2")
    callback = message.biz_opaque_callback_data
    deliver("wamid.r2", "read", callback, billable=True)
    assert deliver("wamid.r2", "read", callback, billable=True).counts == {"status:unchanged": 1}
    assert deliver("wamid.r2", "delivered", callback, billable=True).counts == {"status:unchanged": 1}
    assert deliver("wamid.r2", "sent", callback).counts == {"status:unchanged": 1}
    assert message_store.get_message(WS, message.id).status == "read"
    assert len(events_of(message.id)) == 1
    assert len(billing_records()) == 1


def test_a_late_billable_status_bills_a_message_moved_on_without_pricing(connected: None) -> None:
    message = sent_message(wamid="wamid.r3")
    deliver("wamid.r3", "read", message.biz_opaque_callback_data)
    assert billing_records() == []
    assert deliver("wamid.r3", "sent", message.biz_opaque_callback_data, billable=True).counts == {"status:applied": 1}
    deliver("wamid.r3", "delivered", message.biz_opaque_callback_data, billable=True)
    assert len(billing_records()) == 1
    assert len(events_of(message.id)) == 1  # billing alone is no change of the message's status


def _crash_after_writing(*kept_kinds: type) -> Any:
    """A `_put_once` that writes the items of `kept_kinds` and dies at the first other one."""
    real = status_writes._put_once

    def crash(item: Any) -> None:
        if not isinstance(item, kept_kinds):
            raise RuntimeError("the container died")
        real(item)

    return crash


@pytest.mark.parametrize("kept", [(), (changes.ChangeEventModel,)], ids=["nothing", "the event only"])
def test_a_crash_between_the_writes_is_completed_by_the_redelivery(
    connected: None,
    monkeypatch: pytest.MonkeyPatch,
    kept: tuple[type, ...],
) -> None:
    message = sent_message(wamid="wamid.crash")
    callback = message.biz_opaque_callback_data
    monkeypatch.setattr(status_writes, "_put_once", _crash_after_writing(*kept))
    with pytest.raises(RuntimeError):
        deliver("wamid.crash", "sent", callback, billable=True)
    assert message_store.get_message(WS, message.id).status == "sent"  # the first write happened
    assert len(events_of(message.id)) == len(kept)
    assert billing_records() == []
    monkeypatch.undo()

    deliver("wamid.crash", "sent", callback, billable=True)  # the queue redelivers it
    deliver("wamid.crash", "sent", callback, billable=True)  # and once more
    stored = m.MessageModel.get(m.message_pk(WS, message.id), "MSG")
    [event] = events_of(message.id)
    assert event.seq == stored.event_seq
    assert len(billing_records()) == 1


def test_a_crash_before_the_event_of_a_status_without_billing_is_completed(
    connected: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = sent_message(wamid="wamid.crash1")

    def crash(*_: Any) -> None:
        raise RuntimeError("the container died")

    monkeypatch.setattr(status_writes, "_put_once", crash)
    with pytest.raises(RuntimeError):
        deliver("wamid.crash1", "delivered", message.biz_opaque_callback_data)
    monkeypatch.undo()
    assert events_of(message.id) == []
    deliver("wamid.crash1", "delivered", message.biz_opaque_callback_data)
    [event] = events_of(message.id)
    assert event.seq == m.MessageModel.get(m.message_pk(WS, message.id), "MSG").event_seq
    assert billing_records() == []


def test_a_crash_before_the_bill_then_a_later_status_still_bills_once(
    connected: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = sent_message(wamid="wamid.crash2")
    callback = message.biz_opaque_callback_data
    monkeypatch.setattr(status_writes, "_put_once", _crash_after_writing(changes.ChangeEventModel))
    with pytest.raises(RuntimeError):
        deliver("wamid.crash2", "sent", callback, billable=True)
    monkeypatch.undo()
    deliver("wamid.crash2", "read", callback, billable=True)  # overtakes the redelivery: billing was claimed
    assert billing_records() == []
    deliver("wamid.crash2", "sent", callback, billable=True)  # the redelivery completes it
    assert len(billing_records()) == 1
    assert message_store.get_message(WS, message.id).status == "read"


def _route_of(message: message_store.Message) -> status_routes.StatusRoute:
    route = status_routes.parse_status_callback(message.biz_opaque_callback_data)
    assert route is not None
    return route


def _callback(route: status_routes.StatusRoute, **changed: Any) -> str:
    """The callback data of `route` with some of its fields changed."""
    r = replace(route, **changed)
    broadcast = r.broadcast_id or "-"
    return f"{status_routes.CALLBACK_PREFIX}:{r.ws}:{r.message_id}:{r.contact_id}:{broadcast}:{r.month}"


def test_a_callback_naming_the_wrong_contact_writes_nothing_there_and_the_pointer_decides(
    connected: None,
) -> None:
    mine = sent_message(wamid="wamid.mine")
    other_contact, _ = contact_repository().create_or_get(
        WS, NewContact(phone=f"+{OTHER_CUSTOMER}", wa_id=OTHER_CUSTOMER)
    )
    # The callback names my message but another contact: the route does not hold.
    wrong = _callback(_route_of(mine), contact_id=other_contact.id)
    item = status_item("wamid.mine", "failed", callback=wrong, code=131026)  # undeliverable: marks unreachable
    assert webhook.process_payload(messages_change(statuses=[item])).counts == {"status:applied": 1}
    assert message_store.get_message(WS, mine.id).status == "failed"  # applied through the wamid pointer
    assert contact_repository().get(WS, mine.contact_id).unreachable is True  # to the contact the message names
    assert contact_repository().get(WS, other_contact.id).unreachable is False


def test_a_callback_naming_another_message_of_the_workspace_does_not_move_it(connected: None) -> None:
    victim = sent_message(wamid="wamid.victim")
    mine = sent_message(wamid="wamid.real")
    # The route of `victim` on a status of `mine`'s wamid: the wamid condition refuses it.
    deliver("wamid.real", "read", victim.biz_opaque_callback_data)
    assert message_store.get_message(WS, victim.id).status == "accepted"
    assert message_store.get_message(WS, mine.id).status == "read"


def test_a_callback_naming_another_workspace_is_never_written_there(connected: None) -> None:
    foreign = outbound_messages.record_outbound("ws_other", "c_other", "template", {"name": "promo"})
    outbound_messages.attach_wamid("ws_other", foreign.id, "wamid.foreign")
    # A status routed (by its phone number id) to WS that carries the other workspace's route.
    result = deliver("wamid.foreign", "read", foreign.biz_opaque_callback_data)
    assert result.counts == {"status:foreign": 1}
    assert message_store.get_message("ws_other", foreign.id).status == "accepted"
    assert [e for e in changes.ChangeEventModel.query(changes.change_pk("ws_other"))] == []


def test_a_callback_naming_a_broadcast_the_message_is_not_in_is_refused(connected: None) -> None:
    message = sent_message(wamid="wamid.bc")
    forged = _callback(_route_of(message), broadcast_id="bc_forged")
    route = status_routes.parse_status_callback(forged)
    assert route is not None
    assert route.broadcast_id == "bc_forged"
    change = status_changes.StatusChange(wamid="wamid.bc", status="read", at=NOW)
    assert status_writes.apply_routed_status(route, change) is None
    assert message_store.get_message(WS, message.id).status == "accepted"


def test_failed_by_route_opts_out_the_contact(connected: None) -> None:
    message = sent_message(wamid="wamid.optout")
    item = status_item("wamid.optout", "failed", callback=message.biz_opaque_callback_data, code=131050)
    webhook.process_payload(messages_change(statuses=[item]))
    contact = contact_repository().find_by_wa_id(WS, CUSTOMER)
    assert (contact.consent.status, contact.consent.source) == ("opted_out", "send_error_131050")
    assert message_store.get_message(WS, message.id).error_code == 131050
