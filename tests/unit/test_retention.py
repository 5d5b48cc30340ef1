"""The retention policy table (privacy policy section 7) as code: windows, TTLs, expiry buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from relasify import clock, retention
from relasify.retention import EXPIRY_SHARDS, DataClass
from relasify.settings import Settings

START = datetime(2026, 1, 31, 23, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("data_class", "days"),
    [
        (DataClass.MESSAGE_CONTENT, 90),
        (DataClass.USAGE, 365),
        (DataClass.SECURITY, 730),
        (DataClass.BILLING, 7 * 365),
        (DataClass.OPERATIONAL, 8),
    ],
)
def test_policy_default_windows(data_class: DataClass, days: int) -> None:
    settings = Settings()
    assert retention.window(data_class, settings) == timedelta(days=days)
    assert retention.expires_at_for(data_class, start=START, settings=settings) == int(
        (START + timedelta(days=days)).timestamp()
    )


def test_account_data_has_no_ttl_until_closure() -> None:
    assert retention.window(DataClass.ACCOUNT, Settings()) is None
    assert retention.expires_at_for(DataClass.ACCOUNT, start=START) is None
    assert retention.closure_expires_at(START, Settings()) == int((START + timedelta(days=90)).timestamp())


def test_windows_are_configuration() -> None:
    settings = Settings(retention_message_days=30, retention_billing_days=3650, retention_account_after_closure_days=7)
    assert retention.expires_at_for(DataClass.MESSAGE_CONTENT, start=START, settings=settings) == int(
        (START + timedelta(days=30)).timestamp()
    )
    assert retention.window(DataClass.BILLING, settings) == timedelta(days=3650)
    assert retention.closure_expires_at(START, settings) == int((START + timedelta(days=7)).timestamp())


def test_expires_at_defaults_to_the_injected_clock() -> None:
    clock.set_clock(lambda: START)
    try:
        assert retention.expires_at_for(DataClass.USAGE) == int((START + timedelta(days=365)).timestamp())
    finally:
        clock.set_clock(None)


def test_expiry_bucket_is_the_utc_day_and_a_stable_shard() -> None:
    expires = int(datetime(2026, 5, 1, 23, 59, tzinfo=UTC).timestamp())
    bucket = retention.expiry_bucket(expires, "WS#w1#MSG#m1#MSG")
    assert bucket.startswith("EXP#2026-05-01#")
    assert 0 <= int(bucket.rsplit("#", 1)[1]) < EXPIRY_SHARDS
    assert retention.expiry_bucket(expires, "WS#w1#MSG#m1#MSG") == bucket
    shards = {retention.expiry_bucket(expires, f"WS#w1#MSG#m{i}#MSG").rsplit("#", 1)[1] for i in range(200)}
    assert len(shards) == EXPIRY_SHARDS  # keys spread over every shard


def test_is_expired_boundary() -> None:
    assert retention.is_expired(None, at=10**10) is False
    assert retention.is_expired(100, at=99) is False
    assert retention.is_expired(100, at=100) is True
    assert retention.is_expired(100, at=101) is True


def test_sweep_cutoff_is_now_minus_the_grace_period() -> None:
    assert retention.sweep_grace(Settings()) == timedelta(days=3)  # the default
    now = int(START.timestamp())
    assert retention.sweep_cutoff(now, Settings()) == now - 3 * 86_400
    assert retention.sweep_cutoff(now, Settings(retention_sweep_grace_days=0)) == now
    with pytest.raises(ValueError, match="retention_sweep_grace_days"):
        Settings(retention_sweep_grace_days=-1)
