"""A broadcast's sharded counters: `COUNT#<n>` items under the broadcast partition; each increment
is an atomic `ADD` on one random shard, so thousands of concurrent workers and webhooks never queue
behind one item; a read sums the shards (one Query). `counter_update` builds the increment, so a
recipient's write and its count can share one transaction (relasify/data/broadcast_recipients.py).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from pydantic import Field
from pynamodb.exceptions import UpdateError

from relasify.data import models as m
from relasify.data.base import plain_value
from relasify.data.records import Record
from relasify.data.tx import is_condition_failure

COUNTER_SHARDS = 10
COUNT_FIELDS = ("queued", "sent", "delivered", "read", "failed", "skipped")


class Counts(Record):
    queued: int = 0
    sent: int = 0
    delivered: int = 0
    read: int = 0
    failed: int = 0
    skipped: int = 0
    skipped_reasons: dict[str, int] = Field(default_factory=dict)


def bump(ws: str, broadcast_id: str, *, skipped_reason: str | None = None, **deltas: int) -> None:
    """Atomically add `deltas` (queued=1, sent=1, ...) on one random counter shard."""
    item, actions = counter_update(ws, broadcast_id, skipped_reason=skipped_reason, deltas=deltas)
    item.update(actions=actions)


def counter_update(
    ws: str,
    broadcast_id: str,
    *,
    skipped_reason: str | None = None,
    skipped_reasons: dict[str, int] | None = None,
    deltas: dict[str, int],
) -> tuple[m.BroadcastCounterShardModel, list[Any]]:
    """The update of one random shard adding `deltas`; skip reasons count `skipped` (one reason) or
    their own numbers (`skipped_reasons`, a page's sums)."""
    model = m.BroadcastCounterShardModel
    shard = random.randrange(COUNTER_SHARDS)  # noqa: S311 - load spreading, not security
    item = model(m.broadcast_pk(ws, broadcast_id), f"{model.SK_PREFIX}{shard}")
    actions: list[Any] = [
        model.ws_id.set(ws),
        model.broadcast_id.set(broadcast_id),
        model.shard.set(shard),
        model.touch(),
    ]
    for name, delta in deltas.items():
        if name not in COUNT_FIELDS:
            raise ValueError(f"unknown counter {name}")
        if delta:
            actions.append(getattr(model, name).add(delta))
    reasons = dict(skipped_reasons or {})
    if skipped_reason:
        reasons[skipped_reason] = reasons.get(skipped_reason, 0) + deltas.get("skipped", 1)
    if reasons:
        # A nested ADD needs the map to exist: the shard is given an empty one first (rare: skips).
        _ensure_reason_map(item)
        actions.extend(model.skipped_reasons[reason].add(count) for reason, count in sorted(reasons.items()))
    return item, actions


def _ensure_reason_map(item: m.BroadcastCounterShardModel) -> None:
    model = m.BroadcastCounterShardModel
    try:
        item.update(actions=[model.skipped_reasons.set({})], condition=model.skipped_reasons.does_not_exist())
    except UpdateError as exc:
        if not is_condition_failure(exc):
            raise


def counts(ws: str, broadcast_id: str) -> Counts:
    prefix = m.BroadcastCounterShardModel.SK_PREFIX
    totals = dict.fromkeys(COUNT_FIELDS, 0)
    reasons: dict[str, int] = {}
    for shard in _shards(ws, broadcast_id, prefix):
        for name in COUNT_FIELDS:
            totals[name] += int(getattr(shard, name) or 0)
        for reason, value in (plain_value(shard.skipped_reasons) or {}).items():
            reasons[reason] = reasons.get(reason, 0) + int(value)
    return Counts(**totals, skipped_reasons=reasons)


def _shards(ws: str, broadcast_id: str, prefix: str) -> Iterable[m.BroadcastCounterShardModel]:
    return m.BroadcastCounterShardModel.query(
        m.broadcast_pk(ws, broadcast_id),
        m.BroadcastCounterShardModel.sk.startswith(prefix),
        consistent_read=True,
    )
