"""Data-layer pieces that need no AWS: id ordering, write stamping, the expiry filter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from relasify import clock, retention
from relasify.data import models as m
from relasify.data.ids import new_id

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_ids_are_time_ordered_and_unique_even_within_one_millisecond() -> None:
    clock.set_clock(lambda: NOW)
    try:
        same_ms = [new_id() for _ in range(500)]
    finally:
        clock.set_clock(None)
    assert same_ms == sorted(same_ms)
    assert len(set(same_ms)) == 500
    assert all(len(i) == 26 for i in same_ms)
    later = new_id("ws")
    assert later.startswith("ws_")
    assert later[3:] > same_ms[-1]


def test_ids_follow_the_clock_again_after_it_steps_back_more_than_a_second() -> None:
    from relasify.data.changes import seq_time

    ahead = clock.now() + timedelta(days=95)  # e.g. a test moved past a retention window
    clock.set_clock(lambda: ahead)
    try:
        future = new_id()
    finally:
        clock.set_clock(None)
    now = new_id()
    assert abs(seq_time(now) - clock.now()) < timedelta(seconds=5)  # not stuck after `future`
    assert seq_time(future) - seq_time(now) > timedelta(days=1)
    clock.set_clock(lambda: NOW)
    try:
        step_back = [new_id(), new_id()]  # within one millisecond: still increasing
    finally:
        clock.set_clock(None)
    assert step_back[0] < step_back[1]


def test_serialising_a_write_stamps_timestamps_and_ttl_by_class() -> None:
    clock.set_clock(lambda: NOW)
    try:
        message = m.MessageModel(
            m.message_pk("w", "m1"),
            "MSG",
            ws_id="w",
            message_id="m1",
            contact_id="c",
            direction="in",
            message_type="text",
        )
        raw = message.serialize()
        contact = m.ContactModel(m.ws_pk("w"), "CONTACT#c", ws_id="w", contact_id="c")
        contact_raw = contact.serialize()
    finally:
        clock.set_clock(None)
    expected = int((NOW + timedelta(days=90)).timestamp())
    assert raw["expires_at"] == {"N": str(expected)}
    assert raw["expiry_bucket"] == {"S": retention.expiry_bucket(expected, "WS#w#MSG#m1#MSG")}
    assert raw["created_at"] == raw["updated_at"]
    assert "expires_at" not in contact_raw  # account data: no TTL until closure
    assert "expiry_bucket" not in contact_raw


def test_expired_item_reads_as_expired() -> None:
    item = m.WebhookDedupeModel("DEDUPE#k", "DEDUPE", key="k", expires_at=int(NOW.timestamp()))
    clock.set_clock(lambda: NOW - timedelta(seconds=1))
    try:
        assert item.is_expired is False
        clock.set_clock(lambda: NOW)
        assert item.is_expired is True
    finally:
        clock.set_clock(None)


def test_every_model_declares_a_retention_class() -> None:
    assert all(isinstance(model.data_class, retention.DataClass) for model in m.ALL_MODELS)
