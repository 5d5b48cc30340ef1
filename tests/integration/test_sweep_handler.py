"""The RetentionSweepFunction handler as the template wires it: one call into the sweep, bounded by
the invocation's remaining time, report returned and emitted as metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from relasify import clock
from relasify.data import models as m
from relasify.data import sweep as sweep_store
from relasify.observability import metrics
from relasify.settings import Settings, get_settings
from relasify_local.cfn import REPO_ROOT, load_template
from relasify_local.runtime import LambdaContext, functions_from_template

T = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
GRACE = timedelta(days=3)  # the template's RetentionSweepGraceDays default


@pytest.fixture
def env(ddb_tables: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("MEDIA_BUCKET", "relasify-test-media")
    get_settings.cache_clear()
    boto3.client("s3").create_bucket(
        Bucket="relasify-test-media", CreateBucketConfiguration={"LocationConstraint": "ap-southeast-3"}
    )
    yield get_settings()
    get_settings.cache_clear()


def _sweep_function():  # type: ignore[no-untyped-def]
    return functions_from_template(load_template(), REPO_ROOT)["RetentionSweepFunction"]


def test_handler_sweeps_and_reports_metrics(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    function = _sweep_function()
    assert function.handler == "sweep.handler"
    clock.set_clock(lambda: T - GRACE - timedelta(days=9))  # expired grace + 1 day ago
    m.WebhookDedupeModel(m.dedupe_pk("old"), "DEDUPE", key="old").save()
    clock.set_clock(lambda: T)
    sweep_store.set_checkpoint((T - GRACE).date() - timedelta(days=2))

    metrics.clear_metrics()  # sweeps run directly by other tests buffer metrics in this process
    result = function.handler_callable()({}, LambdaContext("relasify-sweep", 1024, timeout_seconds=900))

    assert result["complete"] is True
    assert result["deleted"]["operational"] == 1
    assert m.WebhookDedupeModel.get_live(m.dedupe_pk("old"), "DEDUPE") is None
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf, "no metrics emitted"
    assert emf[-1]["SweepDeleted_operational"] in (1.0, [1.0])  # a single value may be listed


def test_handler_stops_before_the_deadline(env: Settings) -> None:
    clock.set_clock(lambda: T - GRACE - timedelta(days=9))  # expired grace + 1 day ago
    m.WebhookDedupeModel(m.dedupe_pk("old"), "DEDUPE", key="old").save()
    clock.set_clock(lambda: T)
    sweep_store.set_checkpoint((T - GRACE).date() - timedelta(days=2))

    # A 3-second function has less left than the sweep's reserve: it stops at once, deleting nothing.
    result = _sweep_function().handler_callable()({}, LambdaContext("relasify-sweep", 1024, timeout_seconds=3))

    assert result["complete"] is False
    assert result["deleted_total"] == 0
    assert sweep_store.get_checkpoint() == sweep_store.Checkpoint((T - GRACE).date() - timedelta(days=2), 0)
