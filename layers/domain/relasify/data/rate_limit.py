"""Per-number send rate limit shared by every concurrent Lambda invocation (docs/SENDING.md).

A token bucket refilled in fixed slots, kept in DynamoDB: time is cut into slots of
`budget / rate` seconds (80 msg/s -> 16 sends per 200 ms slot); each slot is a fresh item (its key
names the slot), and taking a token is one conditional `UpdateItem ... ADD used 1 IF used < budget`.
DynamoDB applies each update atomically, so the slot's budget holds however many workers race for
it; a refused condition means "slot full": wait for the next slot. Short slots keep bursts small
(Meta counts messages per second); fresh keys per slot mean no item is ever hot for long, and at
high rates the slot is split into shards (at most ~250 updates/s per item) so one partition never
takes more than its 1,000 writes/s. Slot items expire by TTL after a few minutes.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from typing import ClassVar

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import UpdateError

from relasify.data.base import TableModel
from relasify.data.tx import is_condition_failure
from relasify.retention import DataClass

TARGET_SLOT_SECONDS = 0.2
MAX_UPDATES_PER_ITEM_PER_SECOND = 250
SLOT_ITEM_TTL_SECONDS = 300


class RateSlotModel(TableModel):
    """PK `RATE#<phone_number_id>#<slot>#<shard>`, SK `SLOT`: tokens taken in one slot."""

    data_class: ClassVar[DataClass] = DataClass.OPERATIONAL
    SK_VALUE: ClassVar[str] = "SLOT"

    used = NumberAttribute(default=0)
    limiter = UnicodeAttribute(null=True)


class RateLimitTimeout(Exception):
    """No token could be taken before the caller's deadline."""


class SlotRateLimiter:
    """`acquire()` blocks until this number may send one more message."""

    def __init__(
        self,
        key: str,
        rate_per_second: float,
        *,
        target_slot_seconds: float = TARGET_SLOT_SECONDS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self.key = key
        self.rate = float(rate_per_second)
        self.budget = max(1, round(self.rate * target_slot_seconds))
        self.slot_seconds = self.budget / self.rate  # exact: budget tokens per slot == rate per second
        self.shards = max(1, math.ceil(self.rate / MAX_UPDATES_PER_ITEM_PER_SECOND))
        self._clock = clock
        self._sleep = sleep
        # Slots this container already saw full: wait without spending a refused write on them.
        self._full_slot = -1
        self._lock = threading.Lock()

    def shard_budget(self, shard: int) -> int:
        base, extra = divmod(self.budget, self.shards)
        return base + (1 if shard < extra else 0)

    def acquire(self, *, timeout_seconds: float = 60.0) -> float:
        """Take one token; returns the seconds waited. Raises RateLimitTimeout past the timeout."""
        started = self._clock()
        while True:
            now = self._clock()
            slot = int(now // self.slot_seconds)
            with self._lock:
                known_full = slot <= self._full_slot
            if not known_full:
                if self._take(slot):
                    return self._clock() - started
                with self._lock:
                    self._full_slot = max(self._full_slot, slot)
            wait = (slot + 1) * self.slot_seconds - self._clock()
            if self._clock() + max(wait, 0) - started > timeout_seconds:
                raise RateLimitTimeout(f"no send slot within {timeout_seconds} s")
            # A little jitter so waiting workers do not all hit the next slot's first millisecond.
            self._sleep(max(wait, 0) + random.random() * min(0.01, self.slot_seconds / 10))  # noqa: S311

    def _take(self, slot: int) -> bool:
        first = random.randrange(self.shards)  # noqa: S311 - load spreading
        for offset in range(self.shards):
            shard = (first + offset) % self.shards
            if self._take_in_shard(slot, shard):
                return True
        return False

    def _take_in_shard(self, slot: int, shard: int) -> bool:
        model = RateSlotModel
        item = model(f"RATE#{self.key}#{slot}#{shard}", model.SK_VALUE)
        expires = int(slot * self.slot_seconds) + SLOT_ITEM_TTL_SECONDS
        try:
            item.update(
                actions=[model.used.add(1), model.expires_at.set(expires), model.limiter.set(self.key)],
                condition=model.used.does_not_exist() | (model.used < self.shard_budget(shard)),
            )
        except UpdateError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True


_limiters: dict[tuple[str, float], SlotRateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(phone_number_id: str, rate_per_second: float) -> SlotRateLimiter:
    """The container's limiter of a number (its local "slot full" memory is shared by threads)."""
    key = (phone_number_id, float(rate_per_second))
    with _limiters_lock:
        limiter = _limiters.get(key)
        if limiter is None:
            limiter = _limiters[key] = SlotRateLimiter(phone_number_id, rate_per_second)
        return limiter
