"""Status webhooks, consent and account-level fields applied by the processor service (moto):
order-independence (property test), early statuses, one write per status at 1000-status scale."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relasify import clock
from relasify.data import message_statuses, outbound_messages, status_changes, status_routes
from relasify.data import messages as message_store
from relasify.data import models as m
from relasify.data.base import connection
from relasify.data.contacts import contact_repository
from relasify.data.identity import identity_repository
from relasify.data.records import NewContact
from relasify.services import statuses, webhook

WS = "ws_status"
WABA = "102345678901234"
PHONE_ID = "109876543210987"
DISPLAY = "6281234500000"
CUSTOMER = "6281234567890"
NOW = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
BASE_TS = 1767225600  # 2026-01-01T00:00:00Z
STATUS_OFFSET = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}
WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
_counter = itertools.count()
BULK = 1000  # statuses in the scale test: a full Meta batch


@pytest.fixture
def connected(ddb_tables: Any) -> Iterator[None]:
    clock.set_clock(lambda: NOW)
    identity_repository().put_whatsapp_connection(
        WS, waba_id=WABA, phone_number_id=PHONE_ID, encrypted_access_token="ciphertext", display_phone_number=DISPLAY
    )
    return


@pytest.fixture
def cheap_transaction_snapshots(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto deep-copies every table for each item of a TransactWriteItems (its rollback snapshot),
    which is quadratic at the scale of these tests. These tests expect no transaction to be
    cancelled half-way, so the snapshot shares the live table; their assertions on exact item
    counts would expose any partial write."""
    import copy

    import moto.dynamodb.models as moto_dynamodb
    from moto.dynamodb.models.table import Table

    class _SnapshotFreeCopy:
        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    monkeypatch.setattr(moto_dynamodb, "copy", _SnapshotFreeCopy())


def envelope(field: str, value: dict[str, Any], *, time: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": WABA, "changes": [{"field": field, "value": value}]}
    if time is not None:
        entry["time"] = time
    return {"object": "whatsapp_business_account", "entry": [entry]}


def messages_change(**parts: Any) -> dict[str, Any]:
    return envelope(
        "messages",
        {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": DISPLAY, "phone_number_id": PHONE_ID},
            **parts,
        },
    )


def status_item(
    wamid: str, status: str, *, callback: str | None = None, billable: bool = False, code: int = 131000
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(BASE_TS + STATUS_OFFSET[status]),
        "recipient_id": CUSTOMER,
    }
    if callback:
        item["biz_opaque_callback_data"] = callback
    if billable:
        item["pricing"] = {"billable": True, "pricing_model": "PMP", "type": "regular", "category": "marketing"}
    if status == "failed":
        item["errors"] = [{"code": code, "title": f"Error {code}", "error_data": {"details": "details"}}]
    return item


def customer() -> Any:
    contact, _ = contact_repository().create_or_get(WS, NewContact(phone=f"+{CUSTOMER}", wa_id=CUSTOMER))
    return contact


def new_outbound(*, wamid: str | None = None) -> message_store.Message:
    return outbound_messages.record_outbound(WS, customer().id, "template", {"name": "promo"}, wamid=wamid)


def billing_records(ws: str = WS) -> list[m.BillingRecordModel]:
    return list(m.BillingRecordModel.query(m.billing_pk(ws, NOW.strftime("%Y-%m"))))


# --- order independence ---------------------------------------------------------------------------


deliveries = st.lists(
    st.tuples(st.sampled_from(["sent", "delivered", "read", "failed"]), st.booleans(), st.booleans()),
    min_size=1,
    max_size=8,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=deliveries, send_position=st.integers(min_value=0, max_value=8))
def test_any_order_and_duplication_ends_in_the_right_state(
    connected: None, cheap_transaction_snapshots: None, sequence: list[tuple[str, bool, bool]], send_position: int
) -> None:
    """Statuses arrive in any order, duplicated, some naming the message by callback data, some only
    by a wamid the send path records at an arbitrary point (`send_position`). The final state is the
    highest rank received (failed terminal), with exactly one billing record if any was billable."""
    wamid = f"wamid.prop{next(_counter)}"
    message = new_outbound()
    route = status_routes.parse_status_callback(message.biz_opaque_callback_data)  # the send path's pointer
    send_position = min(send_position, len(sequence))
    for index, (status, with_callback, billable) in enumerate(sequence):
        if index == send_position:
            statuses.apply_pending_statuses(WS, message.id, wamid, route=route)
        callback = message.biz_opaque_callback_data if with_callback else None
        webhook.process_payload(
            messages_change(statuses=[status_item(wamid, status, callback=callback, billable=billable)])
        )
    if send_position == len(sequence):
        statuses.apply_pending_statuses(WS, message.id, wamid, route=route)

    final = message_store.get_message(WS, message.id)
    expected = max((s for s, _, _ in sequence), key=status_changes.STATUS_RANK.__getitem__)
    assert final.status == expected
    assert final.status_rank == status_changes.STATUS_RANK[expected]
    assert final.wamid == wamid
    assert getattr(final, f"{expected}_at") == datetime.fromtimestamp(BASE_TS + STATUS_OFFSET[expected], UTC)
    if expected == "failed":
        assert (final.error_code, final.error_title) == (131000, "Error 131000")
    else:
        assert final.error_code is None
    mine = [b for b in billing_records() if b.sk == m.billing_sk(wamid)]
    assert len(mine) == (1 if any(b for _, _, b in sequence) else 0)
    assert message_statuses.pending_statuses(wamid) == []


# --- scale: one write per status -------------------------------------------------------------------


def test_a_1000_status_batch_takes_at_most_one_write_per_status(
    connected: None, cheap_transaction_snapshots: None
) -> None:
    contact = customer()
    created = []
    with m.MessageModel.batch_write() as batch:
        for i in range(BULK):
            mid = f"msg_bulk{i:04d}"
            wamid = f"wamid.bulk{i:04d}"
            batch.save(
                m.MessageModel(
                    m.message_pk(WS, mid),
                    m.MessageModel.SK_VALUE,
                    ws_id=WS,
                    message_id=mid,
                    contact_id=contact.id,
                    direction="out",
                    message_type="template",
                    wamid=wamid,
                    status="accepted",
                    status_rank=0,
                    message_at=NOW,
                )
            )
            batch.save(m.WamidPointerModel(m.wamid_pk(wamid), "WAMID", wamid=wamid, ws_id=WS, message_id=mid))
            created.append((mid, wamid))
    statuses = [
        status_item(
            wamid,
            "delivered",
            billable=True,
            callback=message_store.callback_data(WS, mid) if i % 2 else None,  # half by callback, half by wamid
        )
        for i, (mid, wamid) in enumerate(created)
    ]
    payload = messages_change(statuses=statuses)

    calls: list[str] = []

    def count(model: Any, **_: Any) -> None:
        calls.append(model.name)

    client = connection().client
    client.meta.events.register("before-call.dynamodb", count)
    try:
        summary = webhook.process_payload(payload)
        first_writes = sum(1 for c in calls if c in WRITE_OPERATIONS)
        calls.clear()
        webhook.process_payload(payload)  # Meta redelivers the whole batch
        second_writes = sum(1 for c in calls if c in WRITE_OPERATIONS)
    finally:
        client.meta.events.unregister("before-call.dynamodb", count)

    assert summary.counts == {"status:applied": BULK}
    assert first_writes <= BULK
    assert second_writes == 0
    assert len(billing_records()) == BULK
    assert {message_store.get_message(WS, mid).status for mid, _ in created[::97]} == {"delivered"}


# --- early statuses and correlation ----------------------------------------------------------------


def test_status_before_the_send_response_is_applied_when_the_wamid_arrives(connected: None) -> None:
    message = new_outbound()
    webhook.process_payload(messages_change(statuses=[status_item("wamid.early", "delivered", billable=True)]))
    assert message_store.get_message(WS, message.id).status == "accepted"
    assert [p.change.status for p in message_statuses.pending_statuses("wamid.early")] == ["delivered"]
    assert statuses.apply_pending_statuses(WS, message.id, "wamid.early") == 1
    stored = message_store.get_message(WS, message.id)
    assert (stored.status, stored.wamid) == ("delivered", "wamid.early")
    assert message_statuses.pending_statuses("wamid.early") == []
    assert len(billing_records()) == 1
    # the send path calling again changes nothing
    assert statuses.apply_pending_statuses(WS, message.id, "wamid.early") == 0


def test_a_send_that_dies_between_the_pointer_and_the_message_write_still_gets_its_statuses(
    connected: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wamid is recorded as two writes, the pointer first: a send path that dies after the
    pointer (the message still without its wamid) leaves a status without callback data resolvable
    by the pointer, and the status sets the wamid; the send path's retry then changes nothing."""
    message = new_outbound()
    original_update = m.MessageModel.update

    def die(self: m.MessageModel, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("Lambda timed out")

    monkeypatch.setattr(m.MessageModel, "update", die)
    with pytest.raises(RuntimeError):
        statuses.apply_pending_statuses(WS, message.id, "wamid.halfway")
    monkeypatch.setattr(m.MessageModel, "update", original_update)
    assert message_store.get_message(WS, message.id).wamid is None
    assert message_store.locate_wamid("wamid.halfway") == message_store.MessageLocation(WS, message.id)

    summary = webhook.process_payload(messages_change(statuses=[status_item("wamid.halfway", "delivered")]))
    assert summary.counts == {"status:applied": 1}
    stored = message_store.get_message(WS, message.id)
    assert (stored.status, stored.wamid) == ("delivered", "wamid.halfway")
    assert message_statuses.pending_statuses("wamid.halfway") == []
    assert statuses.apply_pending_statuses(WS, message.id, "wamid.halfway") == 0
    assert message_store.get_message(WS, message.id).status == "delivered"


def test_a_wamid_recorded_for_an_erased_message_leaves_no_pointer(connected: None) -> None:
    assert outbound_messages.attach_wamid(WS, "msg_erased_meanwhile", "wamid.orphan") is False
    assert message_store.locate_wamid("wamid.orphan") is None


def test_callback_data_finds_the_message_before_its_wamid_is_known(connected: None) -> None:
    message = new_outbound()
    callback = message.biz_opaque_callback_data
    route = status_routes.parse_status_callback(callback)
    assert route == status_routes.StatusRoute(WS, message.id, message.contact_id, None, NOW.strftime("%Y-%m"))
    webhook.process_payload(messages_change(statuses=[status_item("wamid.cb", "read", callback=callback)]))
    stored = message_store.get_message(WS, message.id)
    assert (stored.status, stored.wamid) == ("read", "wamid.cb")


def test_callback_data_naming_another_workspace_is_not_trusted(connected: None) -> None:
    message = new_outbound()
    forged = message_store.callback_data("ws_other", message.id)
    webhook.process_payload(messages_change(statuses=[status_item("wamid.forged", "read", callback=forged)]))
    assert message_store.get_message(WS, message.id).status == "accepted"


def test_status_of_another_workspaces_message_is_ignored(connected: None) -> None:
    other = outbound_messages.record_outbound("ws_other", "c1", "text", {"body": "x"}, wamid="wamid.other")
    result = webhook.process_payload(messages_change(statuses=[status_item("wamid.other", "read")]))
    assert result.counts == {"status:foreign": 1}
    assert message_store.get_message("ws_other", other.id).status == "accepted"


def test_failed_131050_opts_out_and_131026_marks_unreachable(connected: None) -> None:
    first = new_outbound(wamid="wamid.f1")
    webhook.process_payload(messages_change(statuses=[status_item("wamid.f1", "failed", code=131050)]))
    contact = contact_repository().get(WS, first.contact_id)
    assert (contact.consent.status, contact.consent.source) == ("opted_out", "send_error_131050")
    assert contact.unreachable is False
    new_outbound(wamid="wamid.f2")
    webhook.process_payload(messages_change(statuses=[status_item("wamid.f2", "failed", code=131026)]))
    assert contact_repository().get(WS, first.contact_id).unreachable is True


# --- inbound details -----------------------------------------------------------------------------------


def inbound_text(wamid: str, body: str, *, ts: int = BASE_TS, wa_id: str = CUSTOMER) -> dict[str, Any]:
    return messages_change(
        contacts=[{"wa_id": wa_id, "profile": {"name": "N"}}],
        messages=[{"from": wa_id, "id": wamid, "timestamp": str(ts), "type": "text", "text": {"body": body}}],
    )


@pytest.mark.parametrize(
    "body",
    [
        "STOP",
        " stop ",
        "Berhenti",
        "UNSUBSCRIBE",
        "stop promo",
        "Stop_Promo",
        "STOP.",
        "Stop!",
        "Berhenti.",
        "stop \U0001f64f",
        "BERHENTI ya",
        "s\u200btop",
        "\uff33\uff34\uff2f\uff30",
    ],
)
def test_opt_out_keywords(connected: None, body: str) -> None:
    webhook.process_payload(inbound_text("wamid.kw", body))
    consent = contact_repository().find_by_wa_id(WS, CUSTOMER).consent
    assert (consent.status, consent.source) == ("opted_out", "inbound_keyword")


@pytest.mark.parametrize(
    "body",
    ["stop it please", "STOPS", "halo", "jangan berhenti kirim promo", "stop by the shop tomorrow", "STOPKONTAK"],
)
def test_other_texts_do_not_opt_out(connected: None, body: str) -> None:
    webhook.process_payload(inbound_text("wamid.nokw", body))
    assert contact_repository().find_by_wa_id(WS, CUSTOMER).consent.status == "unknown"


def test_backlog_older_than_seven_days_is_stored_but_flagged(connected: None) -> None:
    old = int((NOW - timedelta(days=8)).timestamp())
    webhook.process_payload(inbound_text("wamid.old", "halo", ts=old))
    assert message_store.get_inbound(WS, "wamid.old").flags == [message_store.STALE_BACKLOG_FLAG]
    webhook.process_payload(inbound_text("wamid.new", "halo"))
    assert message_store.get_inbound(WS, "wamid.new").flags == []
    contact = contact_repository().find_by_wa_id(WS, CUSTOMER)
    assert contact.last_inbound_at == datetime.fromtimestamp(BASE_TS, UTC)


def test_last_inbound_at_only_moves_forward(connected: None) -> None:
    webhook.process_payload(inbound_text("wamid.later", "b", ts=BASE_TS + 60))
    webhook.process_payload(inbound_text("wamid.earlier", "a", ts=BASE_TS))
    contact = contact_repository().find_by_wa_id(WS, CUSTOMER)
    assert contact.last_inbound_at == datetime.fromtimestamp(BASE_TS + 60, UTC)
    conversation = message_store.list_conversation(WS, contact.id)
    assert [x.wamid for x in conversation] == ["wamid.later", "wamid.earlier"]


def test_user_id_only_sender_creates_a_contact_without_phone(connected: None) -> None:
    payload = messages_change(
        contacts=[{"user_id": "US.1349", "profile": {"name": "U"}}],
        messages=[{"from_user_id": "US.1349", "id": "wamid.bsuid", "type": "text", "text": {"body": "hi"}}],
    )
    webhook.process_payload(payload)
    contact = contact_repository().find_by_user_id(WS, "US.1349")
    assert contact is not None
    assert contact.phone is None
    assert message_store.get_inbound(WS, "wamid.bsuid").contact_id == contact.id


# --- user preferences, templates, account -----------------------------------------------------------


def preference(value: str, ts: int) -> dict[str, Any]:
    return envelope(
        "user_preferences",
        {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": DISPLAY, "phone_number_id": PHONE_ID},
            "contacts": [{"wa_id": CUSTOMER, "profile": {"name": "N"}}],
            "user_preferences": [
                {"wa_id": CUSTOMER, "detail": "d", "category": "marketing_messages", "value": value, "timestamp": ts}
            ],
        },
    )


def test_user_preferences_stop_and_resume_in_any_order(connected: None) -> None:
    webhook.process_payload(preference("stop", BASE_TS))
    assert contact_repository().find_by_wa_id(WS, CUSTOMER).consent.status == "opted_out"
    webhook.process_payload(preference("resume", BASE_TS + 10))
    webhook.process_payload(preference("stop", BASE_TS))  # Meta redelivers the older stop
    consent = contact_repository().find_by_wa_id(WS, CUSTOMER).consent
    assert (consent.status, consent.source) == ("opted_in", "user_preferences")
    assert [e.status for e in consent.history] == ["opted_out", "opted_in"]


def template_update(field: str, value: dict[str, Any], time: int) -> dict[str, Any]:
    base = {"message_template_id": 77, "message_template_name": "promo", "message_template_language": "id"}
    return envelope(field, {**base, **value}, time=time)


def test_template_updates_never_go_backwards(connected: None) -> None:
    webhook.process_payload(
        template_update("message_template_status_update", {"event": "APPROVED", "reason": "NONE"}, BASE_TS)
    )
    webhook.process_payload(
        template_update("message_template_status_update", {"event": "PAUSED", "reason": "LOW_QUALITY"}, BASE_TS + 100)
    )
    webhook.process_payload(
        template_update("message_template_status_update", {"event": "APPROVED"}, BASE_TS)
    )  # late retry
    webhook.process_payload(
        template_update(
            "template_category_update", {"previous_category": "UTILITY", "new_category": "MARKETING"}, BASE_TS + 50
        )
    )
    webhook.process_payload(
        template_update(
            "message_template_quality_update",
            {"previous_quality_score": "GREEN", "new_quality_score": "RED"},
            BASE_TS + 60,
        )
    )
    template = m.TemplateModel.get(m.ws_pk(WS), "TEMPLATE#promo#id")
    assert (template.status, template.reason, template.category, template.quality_score) == (
        "PAUSED",
        "LOW_QUALITY",
        "MARKETING",
        "RED",
    )
    assert template.meta_template_id == "77"


def test_phone_quality_and_account_updates_change_the_connection(connected: None) -> None:
    webhook.process_payload(
        envelope(
            "phone_number_quality_update",
            {"display_phone_number": DISPLAY, "event": "FLAGGED", "current_limit": "TIER_2K"},
            time=BASE_TS,
        )
    )
    webhook.process_payload(
        envelope(
            "account_update",
            {
                "phone_number": DISPLAY,
                "event": "ACCOUNT_RESTRICTION",
                "restriction_info": [
                    {"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": 1767312500}
                ],
            },
            time=BASE_TS,
        )
    )
    connection = identity_repository().get_whatsapp_connection(WS)
    assert (connection.quality_rating, connection.messaging_limit) == ("RED", "TIER_2K")
    assert connection.account_status == "ACCOUNT_RESTRICTION"
    assert connection.restrictions == [
        {"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": 1767312500}
    ]


WS2 = "ws_status_2"
PHONE_ID2 = "109876543210988"
DISPLAY2_TYPED = "0812-3450-0001"  # as an admin may type it; Meta writes 6281234500001
UNCONNECTED_DISPLAY = "6281234509999"


def _health(ws: str) -> tuple[Any, ...]:
    connection = identity_repository().get_whatsapp_connection(ws)
    assert connection is not None
    return (connection.quality_rating, connection.messaging_limit, connection.account_status, connection.restrictions)


def _number_updates(display: str | None) -> list[dict[str, Any]]:
    quality: dict[str, Any] = {"event": "FLAGGED", "current_limit": "TIER_250"}
    account: dict[str, Any] = {
        "event": "ACCOUNT_RESTRICTION",
        "restriction_info": [{"restriction_type": "RESTRICTED_ADD_PHONE_NUMBER_ACTION", "expiration": 1767312500}],
    }
    if display is not None:
        quality["display_phone_number"] = display
        account["phone_number"] = display
    return [envelope("phone_number_quality_update", quality), envelope("account_update", account)]


@pytest.fixture
def two_numbers_on_one_waba(connected: None) -> None:
    identity_repository().put_whatsapp_connection(
        WS2,
        waba_id=WABA,
        phone_number_id=PHONE_ID2,
        encrypted_access_token="ciphertext",
        display_phone_number=DISPLAY2_TYPED,
    )


def test_a_number_level_update_for_an_unconnected_number_changes_no_workspace(
    two_numbers_on_one_waba: None, caplog: pytest.LogCaptureFixture
) -> None:
    before = (_health(WS), _health(WS2))
    counts: dict[str, int] = {}
    for payload in _number_updates(UNCONNECTED_DISPLAY):
        for key, count in webhook.process_payload(payload).counts.items():
            counts[key] = counts.get(key, 0) + count
    assert counts == {"phone_quality:unknown_number": 1, "account_update:unknown_number": 1}
    assert (_health(WS), _health(WS2)) == before
    warnings = [r for r in caplog.records if r.getMessage() == "number-level webhook for a number not connected"]
    assert len(warnings) == 2
    assert all(UNCONNECTED_DISPLAY not in str(r.__dict__) for r in caplog.records)  # no phone number logged


def test_a_number_level_update_reaches_only_the_workspace_of_that_number(two_numbers_on_one_waba: None) -> None:
    untouched = _health(WS)
    for payload in _number_updates("6281234500001"):  # DISPLAY2_TYPED in Meta's format
        assert "applied" in next(iter(webhook.process_payload(payload).counts))
    assert _health(WS2)[:3] == ("RED", "TIER_250", "ACCOUNT_RESTRICTION")
    assert _health(WS) == untouched


def test_an_account_update_without_a_number_reaches_every_workspace_of_the_waba(two_numbers_on_one_waba: None) -> None:
    webhook.process_payload(_number_updates(None)[1])
    assert _health(WS)[2] == _health(WS2)[2] == "ACCOUNT_RESTRICTION"


def test_unknown_field_is_kept_without_error(connected: None) -> None:
    summary = webhook.process_payload(envelope("security", {"display_phone_number": DISPLAY, "event": "PIN_CHANGED"}))
    assert summary.counts == {"unknown_field:kept": 1}
