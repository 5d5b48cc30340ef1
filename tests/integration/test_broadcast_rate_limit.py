"""The per-number limiter against DynamoDB (moto): several "containers" (limiter instances) with
several threads each never exceed a slot's budget, and together they run at the cap; a container's
waiting threads share one claim of several tokens."""

from __future__ import annotations

import threading
import time
from collections import Counter

from relasify.data.rate_limit import RateSlotModel, SlotRateLimiter
from relasify.settings import Settings


def test_concurrent_limiters_share_one_budget(ddb_tables: Settings) -> None:
    rate, tokens_per_thread, threads_per_container = 40.0, 5, 6
    containers = [SlotRateLimiter("109876543210987", rate) for _ in range(2)]
    granted: Counter[int] = Counter()
    claims: list[int] = []
    lock = threading.Lock()

    for limiter in containers:
        original = limiter._take_in_shard

        def recording(slot: int, shard: int, wanted: int, _original=original) -> tuple[int, bool]:  # type: ignore[no-untyped-def]
            got, full = _original(slot, shard, wanted)
            with lock:
                granted[slot] += got
                claims.append(wanted)
            return got, full

        limiter._take_in_shard = recording  # type: ignore[method-assign]

    def worker(limiter: SlotRateLimiter) -> None:
        for _ in range(tokens_per_thread):
            limiter.acquire(timeout_seconds=30)

    threads = [threading.Thread(target=worker, args=(c,)) for c in containers for _ in range(threads_per_container)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started

    total = len(threads) * tokens_per_thread
    budget = containers[0].budget
    # Every acquire() got a token; a few more may have been handed out and lapsed unused (a claim that
    # returned as its slot ended): budget spent, never budget exceeded.
    assert total <= sum(granted.values()) <= total + budget
    assert max(granted.values()) <= budget  # no slot over its budget, across both containers
    # 60 tokens at 40/s need at least 1.5 s less one slot (the first slot may start mid-way).
    assert elapsed >= total / rate - containers[0].slot_seconds * 2
    for slot, count in granted.items():
        item = RateSlotModel.get(f"RATE#109876543210987#{slot}#0", "SLOT")
        # `used` counts tokens asked; the ones below the budget were handed out, and only those.
        assert min(int(item.used), budget) == count
        assert item.expires_at is not None
    assert len(claims) < total  # waiting threads of a container share a claim
