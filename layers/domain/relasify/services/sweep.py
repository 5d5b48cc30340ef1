"""The daily retention sweep (privacy policy section 7).

DynamoDB's TTL deletes expired items for free, "typically within a few days" (AWS); reads hide
expired items from the moment they expire. This sweep is the hard deadline behind TTL: it deletes
only what TTL has left more than the grace period (`RETENTION_SWEEP_GRACE_DAYS`, default 3) after
expiry, so an expired item is gone at most that long (plus the wait for the next daily run) after
its window, and TTL does nearly all the deleting (a sweep delete costs write units, a TTL delete
nothing). One run:

1. stamps every closed workspace's account items with TTL = closure + 90 days (deleting them at
   once when that moment has already passed), then frees the workspace's queue entry;
2. walks the `ByExpiry` index from the checkpoint day to the cutoff's day (cutoff = now - grace),
   shard by shard, reading only keys whose TTL passed at or before the cutoff, re-checks each item
   with a consistent read (the index lags), deletes in batches and removes the media objects of
   deleted messages and of deleted workspaces;
3. writes a report (counts per data class, duration) to the security log and as metrics.

Its cost grows with what expired and with the days since the last run, never with the table. It
stops before the Lambda deadline; the checkpoint (the first day and shard not yet swept for good:
every item of an earlier day had expired before the cutoff of the run that swept it) and the
closure queue make the next run resume, and re-running is harmless: deleted items are gone from
the index.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from relasify import clock, retention
from relasify.data import erasure as erasure_store
from relasify.data import sweep as sweep_store
from relasify.data.identity import identity_repository
from relasify.observability import logger, metrics
from relasify.retention import DataClass
from relasify.services import audit

# Without a checkpoint (first run), expired items are looked for this far back before the cutoff.
# DynamoDB's own TTL deletion is the primary mechanism; the sweep is the deadline behind it.
FIRST_RUN_LOOKBACK_DAYS = 60
# Stop this long before the Lambda deadline: a page of deletes and the report must still fit.
DEFAULT_RESERVE_MS = 30_000

RemainingMs = Callable[[], int]


@dataclass
class SweepReport:
    deleted: Counter[str] = field(default_factory=Counter)  # data class -> items deleted
    stamped: int = 0  # items given a closure TTL
    closures_completed: int = 0  # closed workspaces fully stamped
    objects_deleted: int = 0  # S3 objects (media, imports, exports)
    days_swept: int = 0  # expiry days completed
    complete: bool = True  # False when the time budget ran out (the next run resumes)
    next_day: str = ""  # checkpoint after this run
    duration_ms: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "deleted": {cls.value: int(self.deleted.get(cls.value, 0)) for cls in DataClass},
            "deleted_total": int(sum(self.deleted.values())),
            "stamped": self.stamped,
            "closures_completed": self.closures_completed,
            "objects_deleted": self.objects_deleted,
            "days_swept": self.days_swept,
            "complete": self.complete,
            "next_day": self.next_day,
            "duration_ms": self.duration_ms,
        }


class _OutOfTime(Exception):
    """The time budget ran out: stop cleanly, leaving the checkpoint where it is."""


@dataclass
class _Budget:
    remaining_ms: RemainingMs | None
    reserve_ms: int

    def check(self) -> None:
        if self.remaining_ms is not None and self.remaining_ms() < self.reserve_ms:
            raise _OutOfTime


def run(remaining_ms: RemainingMs | None = None, *, reserve_ms: int = DEFAULT_RESERVE_MS) -> SweepReport:
    """One sweep. `remaining_ms` is the Lambda context's `get_remaining_time_in_millis` (None: no limit)."""
    started = time.monotonic()
    budget = _Budget(remaining_ms, reserve_ms)
    report = SweepReport()
    now = clock.epoch()
    cutoff = retention.sweep_cutoff(now)
    try:
        _stamp_closures(report, budget, now)
        _delete_expired(report, budget, cutoff)
    except _OutOfTime:
        report.complete = False
    if not report.next_day:
        checkpoint = sweep_store.get_checkpoint()
        report.next_day = checkpoint.day.isoformat() if checkpoint else ""
    report.duration_ms = int((time.monotonic() - started) * 1000)
    _publish(report)
    return report


# --- closures --------------------------------------------------------------------------------------


def _stamp_closures(report: SweepReport, budget: _Budget, now: int) -> None:
    repo = identity_repository()
    for pending in sweep_store.pending_closures():
        budget.check()
        workspace = repo.get_workspace(pending.ws)
        if workspace is not None and workspace.status == "active":
            sweep_store.clear_closure(pending.ws)  # the close never completed: nothing to stamp
            continue
        closed_at = (workspace.closed_at if workspace and workspace.closed_at else None) or pending.closed_at
        expires_at = retention.closure_expires_at(closed_at)
        keys = list(sweep_store.workspace_account_keys(pending.ws))
        if retention.is_expired(expires_at, now):
            # The window has already passed (the sweep ran late): delete instead of stamping.
            _delete_workspace_now(report, pending.ws, keys)
        else:
            done = pending.stamped_count  # a previous run's progress: the enumeration order is stable
            try:
                for key in keys[done:]:
                    budget.check()
                    if sweep_store.stamp_expiry(key, expires_at, ws=pending.ws):
                        report.stamped += 1
                    done += 1
            except _OutOfTime:
                sweep_store.save_closure_progress(pending.ws, done)
                raise
        sweep_store.clear_closure(pending.ws)
        report.closures_completed += 1
        logger.info("closed workspace stamped", extra={"ws": pending.ws, "items": len(keys)})


def _delete_workspace_now(report: SweepReport, ws: str, keys: list[sweep_store.Key]) -> None:
    routes = [k for k in keys if k[0].startswith("PHONEID#")]
    others = [k for k in keys if not k[0].startswith("PHONEID#")]
    sweep_store.delete_keys(others)
    for pk, _ in routes:  # conditional: the number may belong to another workspace by now
        sweep_store.delete_phone_route(pk.removeprefix("PHONEID#"), ws=ws)
    for pk, sk in others:
        report.deleted[sweep_store.classify(pk, sk).value] += 1
    report.objects_deleted += erasure_store.delete_workspace_objects(ws)


# --- expired items -----------------------------------------------------------------------------------


def _delete_expired(report: SweepReport, budget: _Budget, cutoff: int) -> None:
    """Delete what expired at or before `cutoff`: every bucket from the checkpoint day up to the
    cutoff's day. Days before the cutoff's day are final once swept (all their items expired before
    the cutoff), so the checkpoint moves past them; the cutoff's own day is swept up to the cutoff
    and walked again by the next run. A checkpoint ahead of the cutoff's day (a shorter grace before)
    waits: those buckets were already swept."""
    cutoff_day = datetime.fromtimestamp(cutoff, UTC).date()
    checkpoint = sweep_store.get_checkpoint() or sweep_store.Checkpoint(
        cutoff_day - timedelta(days=FIRST_RUN_LOOKBACK_DAYS)
    )
    day, first_shard = checkpoint.day, checkpoint.shard
    while day <= cutoff_day:
        for shard in range(first_shard, retention.EXPIRY_SHARDS):
            budget.check()
            for keys in sweep_store.expired_key_pages(day, shard, cutoff):
                _delete_page(report, keys, cutoff)
                budget.check()
            if day < cutoff_day:
                following = (day, shard + 1) if shard + 1 < retention.EXPIRY_SHARDS else (day + timedelta(days=1), 0)
                sweep_store.set_checkpoint(*following)
                report.next_day = following[0].isoformat()
        if day < cutoff_day:
            report.days_swept += 1
        day, first_shard = day + timedelta(days=1), 0


def _delete_page(report: SweepReport, keys: list[sweep_store.Key], cutoff: int) -> None:
    expired = sweep_store.still_expired(keys, cutoff)
    sweep_store.delete_keys(expired)
    media: list[str] = []
    closed_workspaces: list[str] = []
    for pk, sk in expired:
        report.deleted[sweep_store.classify(pk, sk).value] += 1
        if location := sweep_store.message_location(pk, sk):
            media.append(erasure_store.message_media_key(*location))
        if ws := sweep_store.workspace_of_meta(pk, sk):
            closed_workspaces.append(ws)
    if media:
        report.objects_deleted += erasure_store.delete_objects(media)
    for ws in closed_workspaces:
        report.objects_deleted += erasure_store.delete_workspace_objects(ws)


# --- report ----------------------------------------------------------------------------------------------


def _publish(report: SweepReport) -> None:
    from aws_lambda_powertools.metrics import MetricUnit

    details = report.as_dict()
    audit.record(None, "retention.sweep", actor_id="system", details=details)
    for cls in DataClass:
        metrics.add_metric(name=f"SweepDeleted_{cls.value}", unit=MetricUnit.Count, value=details["deleted"][cls.value])
    metrics.add_metric(name="SweepItemsStamped", unit=MetricUnit.Count, value=report.stamped)
    metrics.add_metric(name="SweepObjectsDeleted", unit=MetricUnit.Count, value=report.objects_deleted)
    metrics.add_metric(name="SweepDuration", unit=MetricUnit.Milliseconds, value=report.duration_ms)
    metrics.add_metric(name="SweepIncomplete", unit=MetricUnit.Count, value=0 if report.complete else 1)
    logger.info("retention sweep finished", extra={"report": details})
