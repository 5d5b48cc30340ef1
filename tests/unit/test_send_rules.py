"""Sending rules without AWS: request shapes, template parameter counting, the slot limiter's pacing."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from pydantic import ValidationError
from relasify.data import outbox
from relasify.data.rate_limit import SlotRateLimiter
from relasify.data.templates import Template
from relasify.schemas.broadcasts import BroadcastCreate
from relasify.schemas.messages import SendMessage
from relasify.services import sending


def test_send_message_content_is_the_cloud_api_object() -> None:
    body = SendMessage.model_validate(
        {"contact_id": "c1", "type": "image", "image": {"link": "https://e.com/a.jpg", "caption": "x"}}
    )
    assert body.content() == {"link": "https://e.com/a.jpg", "caption": "x"}


@pytest.mark.parametrize(
    "body",
    [
        {"type": "text", "text": {"body": "x"}},  # no recipient
        {"contact_id": "c1", "to": "+62812", "type": "text", "text": {"body": "x"}},  # two recipients
        {"contact_id": "c1", "type": "text"},  # no content
        {"contact_id": "c1", "type": "text", "text": {"body": "x"}, "image": {"id": "1"}},  # two contents
        {"contact_id": "c1", "type": "image", "image": {"id": "1", "link": "https://e.com/a"}},  # two sources
        {"contact_id": "c1", "type": "text", "text": {"body": ""}},
        {"contact_id": "c1", "type": "sticker", "image": {"id": "1"}},  # content named by another type
        {
            "contact_id": "c1",
            "type": "interactive",
            "interactive": {"type": "list", "body": {"text": "x"}, "action": {"sections": []}},
        },
    ],
)
def test_invalid_send_bodies(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SendMessage.model_validate(body)


def test_broadcast_needs_one_audience_kind_and_an_aware_schedule() -> None:
    base = {"template": "promo", "language": "id"}
    with pytest.raises(ValidationError):
        BroadcastCreate.model_validate({**base, "audience": {"tags": ["a"], "contact_ids": ["c"]}})
    with pytest.raises(ValidationError):
        BroadcastCreate.model_validate({**base, "audience": {"tags": []}})
    with pytest.raises(ValidationError):
        BroadcastCreate.model_validate({**base, "audience": {"tags": ["a"]}, "scheduled_at": "2030-01-01T09:00:00"})
    ok = BroadcastCreate.model_validate(
        {**base, "audience": {"tags": ["a"]}, "parameters": [{"field": "name"}, {"attribute": "city"}, {"text": "x"}]}
    )
    assert len(ok.parameters) == 3


def test_template_parameter_counting() -> None:
    template = Template(
        ws="w",
        name="t",
        language="id",
        components=[
            {"type": "HEADER", "format": "TEXT", "text": "Halo {{1}}"},
            {"type": "BODY", "text": "Pesanan {{1}} tiba {{2}}, {{1}}"},
            {"type": "FOOTER", "text": "no {{9}} here counts"},
        ],
    )
    assert sending.expected_parameters(template) == {"header": 1, "body": 2}
    given = [
        {"type": "header", "parameters": [{"type": "text", "text": "a"}]},
        {"type": "body", "parameters": [{"type": "text", "text": "b"}, {"type": "text", "text": "c"}]},
    ]
    assert sending.given_parameters(given) == {"header": 1, "body": 2}
    media = Template(ws="w", name="t", language="id", components=[{"type": "HEADER", "format": "IMAGE"}])
    assert sending.expected_parameters(media) == {"header": 1}


def test_derived_message_ids_are_stable_and_distinct() -> None:
    assert outbox.derived_message_id("w", "api", "k") == outbox.derived_message_id("w", "api", "k")
    assert outbox.derived_message_id("w", "api", "k") != outbox.derived_message_id("w2", "api", "k")
    assert outbox.derived_message_id("w", "api", "k").startswith("msg_")


class _FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_slot_limiter_budget_and_shards() -> None:
    assert (SlotRateLimiter("n", 80).budget, SlotRateLimiter("n", 80).slot_seconds) == (16, 0.2)
    slow = SlotRateLimiter("n", 2)
    assert slow.budget == 1
    assert slow.slot_seconds == 0.5
    fast = SlotRateLimiter("n", 1000)
    assert fast.shards == 4
    assert sum(fast.shard_budget(s) for s in range(fast.shards)) == fast.budget


def test_slot_limiter_paces_to_the_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeClock()
    limiter = SlotRateLimiter("n", 80, clock=fake.time, sleep=fake.sleep)
    asked: dict[tuple[int, int], int] = {}

    def take(slot: int, shard: int, wanted: int) -> tuple[int, bool]:  # DynamoDB's ADD ... IF used < budget
        used, budget = asked.get((slot, shard), 0), limiter.shard_budget(shard)
        if used >= budget:
            return 0, True
        asked[(slot, shard)] = used + wanted
        return wanted - max(0, used + wanted - budget), used + wanted >= budget

    monkeypatch.setattr(limiter, "_take_in_shard", take)
    start = fake.now
    for _ in range(400):
        limiter.acquire()
    elapsed = fake.now - start
    assert 4.5 <= elapsed <= 5.1  # 400 tokens at 80/s, 16 per 200 ms slot
    assert max(asked.values()) == 16


def test_slot_limiter_claims_the_next_slot_before_it_begins_and_uses_it_only_once_begun(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once this slot is full the next one is claimed at once (its tokens are in hand when it begins,
    not one DynamoDB round trip into it), yet no token is used before its slot has begun."""
    fake = _FakeClock()
    limiter = SlotRateLimiter("n", 80, clock=fake.time, sleep=fake.sleep)
    used: dict[int, int] = {}
    claimed_at: list[tuple[int, float]] = []

    def take(slot: int, shard: int, wanted: int) -> tuple[int, bool]:
        claimed_at.append((slot, fake.now))
        fake.now += 0.005  # the claim's round trip
        granted = min(wanted, limiter.shard_budget(shard) - used.get(slot, 0))
        used[slot] = used.get(slot, 0) + max(granted, 0)
        return max(granted, 0), used[slot] >= limiter.shard_budget(shard)

    monkeypatch.setattr(limiter, "_take_in_shard", take)
    tokens: list[tuple[int, float]] = []
    for _ in range(64):
        limiter.acquire()
        tokens.append((int(fake.now // limiter.slot_seconds), fake.now))

    assert max(used.values()) <= limiter.budget
    assert all(Counter(slot for slot, _ in tokens)[slot] <= limiter.budget for slot in used)
    early_claims = [(slot, at) for slot, at in claimed_at if at < slot * limiter.slot_seconds]
    assert early_claims  # the next slot was claimed while the previous one ran
    first_slot = claimed_at[0][0]
    assert all(at >= slot * limiter.slot_seconds for slot, at in tokens)  # used only once begun
    # Every later slot's tokens were in hand when it began: its first token goes at its very start.
    starts = {slot: at for slot, at in reversed(tokens)}
    assert all(at - slot * limiter.slot_seconds < 0.02 for slot, at in starts.items() if slot > first_slot)


def test_slot_limiter_hands_a_claims_tokens_to_the_waiting_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads waiting together share one claim: a crowd of 12 needs far fewer than 12 updates, and a
    claim that crosses the budget keeps only the tokens below it."""
    limiter = SlotRateLimiter("n", 40)  # 8 tokens per 200 ms slot
    claims: list[tuple[int, int]] = []
    asked: dict[int, int] = {}
    lock = threading.Lock()
    gate = threading.Barrier(12)

    def take(slot: int, shard: int, wanted: int) -> tuple[int, bool]:
        time.sleep(0.01)  # a DynamoDB round trip: the other threads queue up behind it meanwhile
        with lock:
            claims.append((slot, wanted))
            used = asked.get(slot, 0)
            if used >= limiter.budget:
                return 0, True
            asked[slot] = used + wanted
            return wanted - max(0, used + wanted - limiter.budget), used + wanted >= limiter.budget

    monkeypatch.setattr(limiter, "_take_in_shard", take)

    def worker() -> None:
        gate.wait()
        limiter.acquire(timeout_seconds=10)

    threads = [threading.Thread(target=worker) for _ in range(12)]
    # Start just after a slot boundary: a claim made at a slot's very end hands its tokens to a slot
    # that is over (tokens wasted, not a cap broken), which would blur the counts below.
    while time.time() % limiter.slot_seconds > 0.02:
        time.sleep(0.002)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    granted = {slot: min(used, limiter.budget) for slot, used in asked.items()}
    assert sum(granted.values()) == 12
    assert max(granted.values()) <= limiter.budget
    assert len(claims) <= 6  # 12 tokens, at most 8 a slot: a few claims, not one per thread
    assert max(wanted for _, wanted in claims) > 1


def _recording_take(limiter: SlotRateLimiter, fake: _FakeClock, claims: list[tuple[int, int]]) -> Any:
    used: dict[int, int] = {}

    def take(slot: int, shard: int, wanted: int) -> tuple[int, bool]:
        claims.append((slot, wanted))
        fake.now += 0.005  # the claim's round trip
        granted = max(0, min(wanted, limiter.shard_budget(shard) - used.get(slot, 0)))
        used[slot] = used.get(slot, 0) + granted
        return granted, used[slot] >= limiter.shard_budget(shard)

    return take


def test_slot_limiter_claims_for_the_whole_announced_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads reach the limiter one by one (each after its outbox write); with the batch announced, a
    claim asks for the batch's share at once and the later threads use those tokens without claims of
    their own. Unannounced, the first thread claims for itself alone."""
    fake = _FakeClock()
    fake.now += 0.05  # well inside a slot
    limiter = SlotRateLimiter("n", 80, clock=fake.time, sleep=fake.sleep)
    claims: list[tuple[int, int]] = []
    monkeypatch.setattr(limiter, "_take_in_shard", _recording_take(limiter, fake, claims))

    limiter.acquire()
    assert [wanted for _, wanted in claims] == [1]
    fake.now += limiter.slot_seconds
    claims.clear()
    with limiter.expecting(20):
        for _ in range(16):
            limiter.acquire()
        assert limiter._expected() == 4
    assert [wanted for _, wanted in claims] == [16]  # one claim for the whole slot
    assert limiter._expected() == 0  # the announcement ends with the block


def test_a_claim_that_fills_its_slot_spares_the_refused_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """A claim whose answer shows the slot at its budget marks it full: the next claim goes to the next
    slot directly instead of first being refused by this one."""
    fake = _FakeClock()
    fake.now += 0.05  # well inside a slot
    limiter = SlotRateLimiter("n", 80, clock=fake.time, sleep=fake.sleep)
    claims: list[tuple[int, int]] = []
    monkeypatch.setattr(limiter, "_take_in_shard", _recording_take(limiter, fake, claims))
    with limiter.expecting(48):
        for _ in range(48):
            limiter.acquire()
    slots = [slot for slot, _ in claims]
    assert len(slots) == len(set(slots)) == 3  # one claim per slot, none refused


def test_sticker_is_a_media_type_sent_by_id() -> None:
    body = SendMessage.model_validate({"contact_id": "c1", "type": "sticker", "sticker": {"id": "01UPLOADID"}})
    assert body.content() == {"id": "01UPLOADID"}
