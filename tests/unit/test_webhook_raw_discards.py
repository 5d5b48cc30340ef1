"""The processor's batched discard of raw webhook copies (`relasify.services.webhook.RawDiscards`):
which copies one DeleteObjects request is asked to delete, and which records are then not done."""

from __future__ import annotations

import json
from collections.abc import Iterable

import pytest
from relasify.data import webhook_inbox
from relasify.services import webhook


def _body(key: str, bucket: str = "media") -> str:
    return json.dumps({"v": 1, "bucket": bucket, "key": key, "sha256": "x", "body": "{}"})


@pytest.fixture
def deleted(monkeypatch: pytest.MonkeyPatch) -> list[list[tuple[str, str]]]:
    """Every call to `discard_raw_objects`; the key `raw/undeletable` is reported not deleted."""
    calls: list[list[tuple[str, str]]] = []

    def fake(locations: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        calls.append(list(locations))
        return {loc for loc in calls[-1] if loc[1] == "raw/undeletable"}

    monkeypatch.setattr(webhook_inbox, "discard_raw_objects", fake)
    return calls


def test_processed_records_are_discarded_in_one_call(deleted: list[list[tuple[str, str]]]) -> None:
    discards = webhook.RawDiscards()
    for n in range(3):
        discards.deferrer(f"r{n}")(_body(f"raw/{n}"))
    assert discards.flush() == []
    assert deleted == [[("media", "raw/0"), ("media", "raw/1"), ("media", "raw/2")]]
    assert discards.flush() == []  # flushed once: nothing left for a second call
    assert len(deleted) == 1


def test_a_record_whose_copy_was_not_deleted_is_returned(deleted: list[list[tuple[str, str]]]) -> None:
    discards = webhook.RawDiscards()
    discards.deferrer("ok")(_body("raw/ok"))
    discards.deferrer("stuck")(_body("raw/undeletable"))
    assert discards.flush() == ["stuck"]


def test_a_copy_a_failed_record_also_refers_to_is_kept(deleted: list[list[tuple[str, str]]]) -> None:
    # The same bytes delivered twice share one content-addressed key; the failed delivery's retry
    # may need to read it from S3.
    discards = webhook.RawDiscards()
    discards.deferrer("first")(_body("raw/shared"))
    discards.deferrer("other")(_body("raw/other"))
    assert discards.flush({"second": _body("raw/shared"), "broken": "not json"}) == []
    assert deleted == [[("media", "raw/other")]]


def test_a_record_reported_failed_after_deferring_keeps_its_copy(deleted: list[list[tuple[str, str]]]) -> None:
    discards = webhook.RawDiscards()
    discards.deferrer("late-failure")(_body("raw/late"))
    assert discards.flush({"late-failure": _body("raw/late")}) == []
    assert deleted == []


def test_nothing_processed_sends_no_request(deleted: list[list[tuple[str, str]]]) -> None:
    assert webhook.RawDiscards().flush() == []
    assert deleted == []


def test_inline_records_have_no_copy_to_delete(deleted: list[list[tuple[str, str]]]) -> None:
    """A v2 inline message is the delivery's only copy: nothing to delete, done at once (0 S3 requests)."""
    discards = webhook.RawDiscards()
    inline = json.dumps({"v": 2, "body": "{}"})
    discards.deferrer("inline")(inline)
    discards.deferrer("pointer")(_body("raw/a"))
    assert discards.flush({"failed-inline": inline}) == []
    assert deleted == [[("media", "raw/a")]]
    assert webhook.RawDiscards().flush({"only-inline": inline}) == []
    assert deleted == [[("media", "raw/a")]]  # no request for a batch of inline records


def test_inline_message_is_v2_ascii_and_refuses_what_cannot_be_inlined() -> None:
    text = 'Halo 😀 "kak" \\ é'
    message = webhook_inbox.inline_message(text.encode())
    assert message is not None
    assert message.isascii()  # its length is its size in bytes
    assert json.loads(message) == {"v": 2, "body": text}
    assert webhook_inbox.read_queued(message).raw == text.encode()
    assert webhook_inbox.read_queued(message).s3_key is None
    assert webhook_inbox.raw_location(message) is None
    assert webhook_inbox.inline_message(b"\xff\xfe binary") is None  # not UTF-8: S3 by pointer
    emoji = "😀".encode() * (webhook_inbox.INLINE_MESSAGE_LIMIT_BYTES // 12 + 1)
    assert len(emoji) < webhook_inbox.INLINE_MESSAGE_LIMIT_BYTES  # small raw, too big escaped
    assert webhook_inbox.inline_message(emoji) is None
