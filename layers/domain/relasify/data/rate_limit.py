"""Per-number send rate limit shared by every concurrent Lambda invocation (docs/SENDING.md).

A token bucket refilled in fixed slots, kept in DynamoDB: time is cut into slots of
`budget / rate` seconds (80 msg/s -> 16 sends per 200 ms slot); each slot is a fresh item (its key
names the slot), and taking tokens is one `UpdateItem ... ADD used n IF used < budget` returning
the new `used`: the caller owns the tokens below the budget (`n - max(0, used - budget)`), so
however many workers race for a slot, no more than its budget is ever handed out. A refused
condition means "slot full": wait for the next slot. One update takes as many tokens as the
container's threads are waiting for (they share a container-local pool for that slot), so a
container spends about one request per slot instead of one per message. A worker about to send a
batch announces it (`expecting(n)`): the claim of the next slot then asks for the whole batch's
share at once, not only for the threads that happen to be waiting already (threads reach the
limiter one by one, each after its outbox write, and a claim for the first of them alone would
leave the rest of the slot to a late claim that may come back after the slot is over). Short slots keep bursts
small (Meta counts messages per second); fresh keys per slot mean no item is ever hot for long, and
at high rates the slot is split into shards (at most ~250 updates/s per item) so one partition
never takes more than its 1,000 writes/s. Slot items expire by TTL after a few minutes.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    """PK `RATE#<phone_number_id>#<slot>#<shard>`, SK `SLOT`: tokens asked of one slot (those up to
    the shard's budget were handed out; a claim that crossed it got only the part below)."""

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
        # Tokens this container took for one slot and has not used yet (valid in that slot only).
        self._pool_slot = -1
        self._pool = 0
        self._waiting = 0  # threads inside acquire(): how many tokens a claim asks for at least
        self._announced: list[list[int]] = []  # [sends still to come] of each batch inside expecting()
        self._claiming = False  # one claim in flight per container; the others wait for its tokens
        self._lock = threading.Condition()

    def shard_budget(self, shard: int) -> int:
        base, extra = divmod(self.budget, self.shards)
        return base + (1 if shard < extra else 0)

    def acquire(self, *, timeout_seconds: float = 60.0) -> float:
        """Take one token; returns the seconds waited. Raises RateLimitTimeout past the timeout."""
        started = self._clock()
        with self._lock:
            self._waiting += 1
        try:
            while True:
                slot = int(self._clock() // self.slot_seconds)
                sleep_until = (slot + 1) * self.slot_seconds  # unless a claim or our next slot's tokens say otherwise
                with self._lock:
                    if self._pool_slot == slot and self._pool > 0:
                        self._pool -= 1
                        self._count_announced_send()
                        return self._clock() - started
                    if self._pool_slot > slot and self._pool > 0:
                        sleep_until = self._pool_slot * self.slot_seconds  # tokens of the next slot are ours
                        claim = False
                    elif self._claiming:
                        # Another thread is claiming for this container: its tokens are shared.
                        self._lock.wait(timeout=self.slot_seconds)
                        continue
                    else:
                        # Claim this slot, or the next one at once if this one is known full, so its tokens
                        # are in hand when it begins rather than one DynamoDB round trip into it (each slot
                        # still holds its budget; its tokens are only used once it has begun).
                        target = slot if slot > self._full_slot else slot + 1
                        claim = target > self._full_slot
                        if claim:
                            self._claiming = True
                            # For every thread here and every announced send still to come: they reach
                            # the limiter within milliseconds of each other, not a slot apart.
                            wanted = min(max(self._waiting, self._expected()), self.budget)
                if claim:
                    taken, exhausted = 0, False
                    try:
                        taken, exhausted = self._take(target, wanted)
                    finally:
                        with self._lock:
                            self._claiming = False
                            if taken:
                                if self._pool_slot != target:
                                    self._pool_slot, self._pool = target, 0  # an older slot's leftovers lapse
                                self._pool += taken
                            if exhausted:
                                self._full_slot = max(self._full_slot, target)
                            self._lock.notify_all()
                    continue
                wait = sleep_until - self._clock()
                if self._clock() + max(wait, 0) - started > timeout_seconds:
                    raise RateLimitTimeout(f"no send slot within {timeout_seconds} s")
                # A little jitter so waiting workers do not all hit the next slot's first millisecond.
                self._sleep(max(wait, 0) + random.random() * min(0.01, self.slot_seconds / 10))  # noqa: S311
        finally:
            with self._lock:
                self._waiting -= 1

    @contextmanager
    def expecting(self, sends: int) -> Iterator[None]:
        """Announce that up to `sends` acquire() calls are coming (a batch about to be sent), so the
        claims ask for their tokens up front; the announcement ends with the block."""
        remaining = [max(0, sends)]
        with self._lock:
            self._announced.append(remaining)
        try:
            yield
        finally:
            with self._lock:
                self._announced.remove(remaining)

    def _expected(self) -> int:
        """Announced sends not yet given a token (call with the lock held)."""
        return sum(batch[0] for batch in self._announced)

    def _count_announced_send(self) -> None:
        """One announced send has its token (call with the lock held)."""
        for batch in self._announced:
            if batch[0] > 0:
                batch[0] -= 1
                return

    def _take(self, slot: int, wanted: int) -> tuple[int, bool]:
        """Up to `wanted` tokens of `slot`, shard after shard; (tokens, whether the slot is used up)."""
        taken, full_shards = 0, 0
        first = random.randrange(self.shards)  # noqa: S311 - load spreading
        for offset in range(self.shards):
            shard = (first + offset) % self.shards
            tokens, full = self._take_in_shard(slot, shard, min(wanted - taken, self.shard_budget(shard)))
            taken += tokens
            full_shards += full
            if taken >= wanted:
                break
        # Known full: every shard is at its budget (a claim that filled it says so, sparing the
        # refused write that would otherwise find out).
        return taken, full_shards == self.shards

    def _take_in_shard(self, slot: int, shard: int, wanted: int) -> tuple[int, bool]:
        """One conditional ADD of `wanted`; the tokens below the shard's budget are ours.
        Returns (tokens, whether the shard is now at its budget)."""
        model = RateSlotModel
        budget = self.shard_budget(shard)
        item = model(f"RATE#{self.key}#{slot}#{shard}", model.SK_VALUE)
        expires = int(slot * self.slot_seconds) + SLOT_ITEM_TTL_SECONDS
        try:
            item.update(
                actions=[model.used.add(wanted), model.expires_at.set(expires), model.limiter.set(self.key)],
                condition=model.used.does_not_exist() | (model.used < budget),
            )
        except UpdateError as exc:
            if is_condition_failure(exc):
                return 0, True
            raise
        used_after = int(item.used)  # ALL_NEW: the total asked of this slot, ours included
        return wanted - max(0, used_after - budget), used_after >= budget


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
