"""The per-number limiter against DynamoDB (moto): several "containers" (limiter instances) with
several threads each never exceed a slot's budget, and together they run at the cap."""

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
    lock = threading.Lock()

    for limiter in containers:
        original = limiter._take_in_shard

        def recording(slot: int, shard: int, _original=original) -> bool:  # type: ignore[no-untyped-def]
            ok = _original(slot, shard)
            if ok:
                with lock:
                    granted[slot] += 1
            return ok

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
    assert sum(granted.values()) == total
    assert max(granted.values()) <= budget  # no slot over its budget, across both containers
    # 60 tokens at 40/s need at least 1.5 s less one slot (the first slot may start mid-way).
    assert elapsed >= total / rate - containers[0].slot_seconds * 2
    for slot, count in granted.items():
        item = RateSlotModel.get(f"RATE#109876543210987#{slot}#0", "SLOT")
        assert int(item.used) == count
        assert item.expires_at is not None
