"""Change-feed seqs (SPEC 5b) read as times."""

from __future__ import annotations


def test_a_seq_from_beyond_the_calendar_is_later_than_any_event() -> None:
    """Found by the key fuzz run: `GET .../changes?since=zzz...` was a 500 (year out of range)."""
    from datetime import UTC, datetime

    from relasify.data import changes

    assert changes.seq_time("z" * 26) == datetime.max.replace(tzinfo=UTC)
    assert changes.seq_time(changes.seq_at(datetime(2026, 1, 1, tzinfo=UTC), last=False)).year == 2026
