"""Request budgets of the API, shared by every concurrent Lambda invocation (docs/SCALING.md).

One item per budget (a user, a workspace) holds the budget's theoretical arrival time (`tat`, GCRA,
the token bucket written as one timestamp): each request pushes it `interval = 1 / rate` later,
from `now` if the bucket is idle; a request is refused when that would put it more than `burst`
intervals ahead of `now`. Taking a request is ONE conditional UpdateItem (1 WRU for an item this
small), never a read-modify-write:

- idle bucket (`tat <= now`, or no item): `SET tat = now + interval IF tat <= now` (or if `tat` is
  beyond anything a clock near ours could have written: a full bucket plus a second);
- busy bucket: `ADD tat interval IF now < tat <= now + tolerance` (tolerance = (burst - 1) intervals).

The container guesses which of the two applies from the `tat` it saw last; a wrong guess costs a
second update. A refused condition returns the old item (ReturnValuesOnConditionCheckFailure), so
a refusal knows exactly when the next request will fit (Retry-After) without a read, and the
container then refuses that budget locally, without any DynamoDB request, until then: `tat` only
ever moves later, so no other container can make room sooner. A flood therefore costs one refused
write per container per budget per refusal period, not one per request.

Items expire by TTL an hour after their last use; they carry no `expiry_bucket`, so the ByExpiry
index and the sweep never see them (like the send-rate slots) and each update is one item write.
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass
from typing import Any, ClassVar

from botocore.exceptions import ClientError
from pynamodb.attributes import NumberAttribute
from pynamodb.constants import UPDATE_ITEM

from relasify.data.base import TableModel, connection
from relasify.retention import DataClass

IDLE_ITEM_TTL_SECONDS = 3600
# A `tat` further ahead than a full bucket plus this was written by a clock ahead of ours by more
# than NTP keeps Lambda hosts apart (milliseconds): the budget is taken as idle rather than refusing
# a caller for as long as that clock was wrong.
MAX_CLOCK_SKEW_US = 1_000_000
MICROS = 1_000_000
# Local memory of refused budgets is pruned past this many entries (a flood of distinct budgets).
MAX_REMEMBERED_REFUSALS = 10_000


class RequestBudgetModel(TableModel):
    """PK `BUDGET#USER#<sha256(sub)>` or `BUDGET#WS#<ws>`, SK `GCRA`: when the budget is next idle
    (`tat`, microseconds since the epoch)."""

    data_class: ClassVar[DataClass] = DataClass.OPERATIONAL
    SK_VALUE: ClassVar[str] = "GCRA"

    tat = NumberAttribute(null=True)


def user_budget_pk(sub: str) -> str:
    # Hashed: the item names nobody (it outlives a deleted account by up to an hour, by TTL).
    return f"BUDGET#USER#{hashlib.sha256(sub.encode()).hexdigest()[:32]}"


def workspace_budget_pk(ws: str) -> str:
    return f"BUDGET#WS#{ws}"


@dataclass(frozen=True)
class BudgetDecision:
    allowed: bool
    retry_after_seconds: int = 0  # whole seconds until a request fits again (refusals only)


@dataclass(frozen=True)
class Budget:
    rate_per_second: float
    burst: int

    @property
    def interval_us(self) -> int:
        return max(1, round(MICROS / self.rate_per_second))

    @property
    def tolerance_us(self) -> int:
        return (self.burst - 1) * self.interval_us

    @property
    def horizon_us(self) -> int:
        """The furthest ahead of now a `tat` can legitimately be (a full bucket plus clock skew)."""
        return self.tolerance_us + self.interval_us + MAX_CLOCK_SKEW_US


_seen_tat: dict[str, int] = {}  # pk -> the last tat this container saw (which update to try first)
_refused_until: dict[str, int] = {}  # pk -> no request of this budget fits before this instant (us)
_lock = threading.Lock()


def reset_for_tests() -> None:
    """Forget the container's memory of budgets (a new test is a new container)."""
    with _lock:
        _seen_tat.clear()
        _refused_until.clear()


def take(pk: str, budget: Budget, now_us: int) -> BudgetDecision:
    """Take one request from the budget `pk` at `now_us`, or say how long until one fits."""
    with _lock:
        refused_until = _refused_until.get(pk, 0)
        busy_guess = _seen_tat.get(pk, 0) > now_us
    if refused_until > now_us:
        return BudgetDecision(False, _whole_seconds(refused_until - now_us))
    attempts = ["busy", "idle"] if busy_guess else ["idle", "busy"]
    for attempt in attempts:
        ok, tat = _update(pk, budget, now_us, busy=attempt == "busy")
        if ok:
            _remember(pk, tat, None)
            return BudgetDecision(True)
        if tat is not None and now_us + budget.tolerance_us < tat <= now_us + budget.horizon_us:
            fits_at = tat - budget.tolerance_us
            _remember(pk, tat, fits_at)
            return BudgetDecision(False, _whole_seconds(fits_at - now_us))
        # The guess was wrong (idle vs busy), or the tat is beyond the horizon: the other update
        # applies (the idle one also replaces a tat beyond the horizon).
    # Both refused without the budget being over: only a clock far behind the stored tat gets
    # here; let the request through rather than refuse on a guess.
    return BudgetDecision(True)


def _whole_seconds(micros: int) -> int:
    return max(1, math.ceil(micros / MICROS))


def _remember(pk: str, tat: int | None, refused_until: int | None) -> None:
    with _lock:
        if len(_seen_tat) > MAX_REMEMBERED_REFUSALS:
            _seen_tat.clear()
        if tat is not None:
            _seen_tat[pk] = tat
        if refused_until is not None:
            if len(_refused_until) > MAX_REMEMBERED_REFUSALS:
                _refused_until.clear()
            _refused_until[pk] = refused_until


def _update(pk: str, budget: Budget, now_us: int, *, busy: bool) -> tuple[bool, int | None]:
    """One conditional UpdateItem: (True, new tat) when it applied, else (False, the stored tat)."""
    model = RequestBudgetModel
    latest_tat = now_us + budget.tolerance_us + budget.interval_us
    expires = math.ceil(latest_tat / MICROS) + IDLE_ITEM_TTL_SECONDS
    if busy:
        actions = [model.tat.add(budget.interval_us), model.expires_at.set(expires)]
        condition = (model.tat > now_us) & (model.tat <= now_us + budget.tolerance_us)
    else:
        actions = [model.tat.set(now_us + budget.interval_us), model.expires_at.set(expires)]
        condition = model.tat.does_not_exist() | (model.tat <= now_us) | (model.tat > now_us + budget.horizon_us)
    table = connection()
    kwargs = table.get_operation_kwargs(
        model.Meta.table_name,
        pk,
        range_key=model.SK_VALUE,
        actions=actions,
        condition=condition,
        return_values="UPDATED_NEW",
        return_values_on_condition_failure="ALL_OLD",
    )
    try:
        response = table.dispatch(UPDATE_ITEM, kwargs)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        # pynamodb re-raises botocore's error without the item; the original carries it.
        original = exc.__cause__ if isinstance(exc.__cause__, ClientError) else exc
        return False, _number(original.response.get("Item", {}).get("tat"))
    return True, _number(response.get("Attributes", {}).get("tat"))


def _number(attribute: dict[str, Any] | None) -> int | None:
    return int(attribute["N"]) if attribute and "N" in attribute else None
