"""The sweep's logic without AWS: key classification, and the walk over expiry buckets with its
checkpoint, grace period and time budget (the data-access module replaced by an in-memory fake)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from relasify import clock, retention
from relasify.data import sweep as sweep_store
from relasify.retention import DataClass
from relasify.services import sweep
from relasify.settings import get_settings

T = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
GRACE = timedelta(days=3)  # Settings.retention_sweep_grace_days default
CUTOFF = T - GRACE  # the sweep deletes what expired at or before this moment


@pytest.mark.parametrize(
    ("pk", "sk", "expected"),
    [
        ("WS#w1#MSG#m1", "MSG", DataClass.MESSAGE_CONTENT),
        ("WAMID#wamid.x", "WAMID", DataClass.MESSAGE_CONTENT),
        ("WAMID#wamid.x", "PENDING#sent", DataClass.OPERATIONAL),
        ("WAMID#wamid.x", "PENDING", DataClass.OPERATIONAL),
        ("DEDUPE#abc", "DEDUPE", DataClass.OPERATIONAL),
        ("DELETED_USER#abc", "DELETED", DataClass.OPERATIONAL),
        ("USAGE#w1#2026-01-01", "2026...#r", DataClass.USAGE),
        ("SECURITY#2026-01-01", "2026...#e", DataClass.SECURITY),
        ("WS#w1#AUDIT", "2026...#e", DataClass.SECURITY),
        ("WS#w1#BILLING#2026-01", "wamid.x", DataClass.BILLING),
        ("WS#w1#BCAST#b1", "RCPT#c1", DataClass.MESSAGE_CONTENT),
        ("WS#w1#BCAST#b1", "META", DataClass.ACCOUNT),
        ("WS#w1", "CONTACT#c1", DataClass.ACCOUNT),
        ("WS#w1", "META", DataClass.ACCOUNT),
        ("WS#w1#UNIQ#phone#+62812", "UNIQ", DataClass.ACCOUNT),
        ("WS#w1#TAG#vip", "CONTACT#c1", DataClass.ACCOUNT),
        ("PHONEID#123", "ROUTE", DataClass.ACCOUNT),
        ("USER#sub", "PROFILE", DataClass.ACCOUNT),
    ],
)
def test_classify_by_key(pk: str, sk: str, expected: DataClass) -> None:
    assert sweep_store.classify(pk, sk) is expected


def test_media_and_workspace_locations_from_keys() -> None:
    assert sweep_store.message_location("WS#w1#MSG#m1", "MSG") == ("w1", "m1")
    assert sweep_store.message_location("WS#w1", "MSG") is None
    assert sweep_store.message_location("WAMID#x", "WAMID") is None
    assert sweep_store.workspace_of_meta("WS#w1", "META") == "w1"
    assert sweep_store.workspace_of_meta("WS#w1#BCAST#b1", "META") is None
    assert sweep_store.workspace_of_meta("WS#w1", "CONTACT#c") is None


class FakeStore:
    """In-memory stand-in for `relasify.data.sweep`: buckets of expired keys and a checkpoint."""

    def __init__(self, buckets: dict[tuple[date, int], list[sweep_store.Key]]) -> None:
        self.buckets = buckets
        self.checkpoint: sweep_store.Checkpoint | None = None
        self.queried: list[tuple[date, int]] = []
        self.cutoffs: set[int] = set()
        self.deleted: list[sweep_store.Key] = []

    def get_checkpoint(self) -> sweep_store.Checkpoint | None:
        return self.checkpoint

    def set_checkpoint(self, day: date, shard: int = 0) -> None:
        self.checkpoint = sweep_store.Checkpoint(day, shard)

    def expired_key_pages(self, day: date, shard: int, cutoff: int) -> Iterator[list[sweep_store.Key]]:
        self.queried.append((day, shard))
        self.cutoffs.add(cutoff)
        keys = [k for k in self.buckets.get((day, shard), []) if k not in self.deleted]
        if keys:
            yield keys

    def still_expired(self, keys: list[sweep_store.Key], cutoff: int) -> list[sweep_store.Key]:
        return keys

    def delete_keys(self, keys: list[sweep_store.Key]) -> int:
        self.deleted += keys
        return len(keys)

    def pending_closures(self) -> list[sweep_store.PendingClosure]:
        return []


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStore]:
    store = FakeStore(
        {
            (CUTOFF.date() - timedelta(days=2), 3): [("DEDUPE#a", "DEDUPE")],
            (CUTOFF.date() - timedelta(days=1), 0): [("USAGE#w#d", "1#r"), ("USAGE#w#d", "2#r")],
            (CUTOFF.date(), 7): [("WAMID#x", "PENDING#sent")],
            # Expired within the grace period: left to DynamoDB's TTL, never queried.
            (T.date(), 1): [("WAMID#y", "PENDING#read")],
        }
    )
    for name in (
        "get_checkpoint",
        "set_checkpoint",
        "expired_key_pages",
        "still_expired",
        "delete_keys",
        "pending_closures",
    ):
        monkeypatch.setattr(sweep_store, name, getattr(store, name))
    monkeypatch.setattr(sweep, "_publish", lambda report: None)
    clock.set_clock(lambda: T)
    yield store
    clock.set_clock(None)


def test_walk_from_checkpoint_to_the_cutoff_day_advancing_past_final_days_only(fake: FakeStore) -> None:
    fake.checkpoint = sweep_store.Checkpoint(CUTOFF.date() - timedelta(days=2), 0)
    report = sweep.run()
    assert report.complete
    # Two final days and the cutoff's day, every shard; nothing after the cutoff's day.
    assert len(fake.queried) == 3 * retention.EXPIRY_SHARDS
    assert max(day for day, _ in fake.queried) == CUTOFF.date()
    assert fake.cutoffs == {int(CUTOFF.timestamp())}  # only keys expired at or before now - grace
    assert report.deleted == {"operational": 2, "usage": 2}
    assert ("WAMID#y", "PENDING#read") not in fake.deleted
    assert report.days_swept == 2
    # The cutoff's day still holds items expiring after the cutoff: the checkpoint stops there.
    assert fake.checkpoint == sweep_store.Checkpoint(CUTOFF.date(), 0)

    again = sweep.run()
    assert fake.queried[-retention.EXPIRY_SHARDS :] == [(CUTOFF.date(), s) for s in range(retention.EXPIRY_SHARDS)]
    assert sum(again.deleted.values()) == 0


def test_next_day_walks_on_from_the_last_cutoff_day_without_a_gap(fake: FakeStore) -> None:
    fake.checkpoint = sweep_store.Checkpoint(CUTOFF.date(), 0)
    clock.set_clock(lambda: T + timedelta(days=1))  # the next daily run
    sweep.run()
    # Yesterday's cutoff day again (it was not final), then the new cutoff's day: two days, no more.
    assert sorted({day for day, _ in fake.queried}) == [CUTOFF.date(), CUTOFF.date() + timedelta(days=1)]
    assert fake.checkpoint == sweep_store.Checkpoint(CUTOFF.date() + timedelta(days=1), 0)


def test_a_checkpoint_past_the_cutoff_day_waits_for_it(fake: FakeStore) -> None:
    """A checkpoint the sweep left before the grace period existed (at today) is kept: its earlier
    buckets were swept then, and the cutoff reaches it in a few days. Nothing is re-walked."""
    fake.checkpoint = sweep_store.Checkpoint(T.date(), 0)
    report = sweep.run()
    assert report.complete
    assert fake.queried == []
    assert fake.checkpoint == sweep_store.Checkpoint(T.date(), 0)
    assert report.next_day == T.date().isoformat()


def test_grace_period_is_configuration(fake: FakeStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETENTION_SWEEP_GRACE_DAYS", "0")
    get_settings.cache_clear()
    try:
        fake.checkpoint = sweep_store.Checkpoint(T.date(), 0)
        sweep.run()
    finally:
        get_settings.cache_clear()
    assert fake.cutoffs == {int(T.timestamp())}
    assert ("WAMID#y", "PENDING#read") in fake.deleted


def test_first_run_looks_back_a_bounded_number_of_days(fake: FakeStore) -> None:
    sweep.run()
    first_day = fake.queried[0][0]
    assert first_day == CUTOFF.date() - timedelta(days=sweep.FIRST_RUN_LOOKBACK_DAYS)


def test_out_of_time_stops_and_the_checkpoint_resumes_mid_day(fake: FakeStore) -> None:
    fake.checkpoint = sweep_store.Checkpoint(CUTOFF.date() - timedelta(days=2), 0)
    budget = iter([10**6] * 5)
    report = sweep.run(lambda: next(budget, 0), reserve_ms=1000)
    assert not report.complete
    assert fake.checkpoint is not None
    assert fake.checkpoint.day == CUTOFF.date() - timedelta(days=2)
    assert 0 < fake.checkpoint.shard < retention.EXPIRY_SHARDS
    resumed_from = fake.checkpoint
    queried_before = len(fake.queried)
    done = sweep.run()
    assert done.complete
    assert fake.queried[queried_before] == (resumed_from.day, resumed_from.shard)  # resumes, not restarts
    assert sorted(fake.deleted) == sorted(
        [("DEDUPE#a", "DEDUPE"), ("USAGE#w#d", "1#r"), ("USAGE#w#d", "2#r"), ("WAMID#x", "PENDING#sent")]
    )


def test_report_lists_every_class() -> None:
    report = sweep.SweepReport()
    report.deleted["usage"] += 3
    out = report.as_dict()
    assert out["deleted"] == {cls.value: (3 if cls is DataClass.USAGE else 0) for cls in DataClass}
    assert out["deleted_total"] == 3
    assert out["complete"] is True
