"""Fault injection on the retention sweep: DynamoDB throttling, 5xx and timeouts past botocore's retries,
S3 5xx on the media deletes, and a sweep killed mid-run. The next invocation resumes from the checkpoint;
in the end exactly the expired items (and objects) are gone, everything live is still there, and a further
sweep deletes nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from relasify.services import sweep
from relasify.settings import Settings

from tests.integration import test_sweep_retention as retention
from tests.integration.test_sweep_retention import bucket_keys, seed_everything, table_keys
from tests.support.faults import DYNAMODB_READS, DYNAMODB_WRITES, WorkerKilled, inject_aws_faults, report_totals

env = retention.env  # table, bucket and clock fixture
MAX_RUNS = 40
FAULT_TOTALS: Counter[str] = Counter()


def sweep_until_complete() -> tuple[int, int]:
    """The scheduler's side: a failed or dead run is followed by another until one completes.
    Returns (runs, failed runs)."""
    runs = failures = 0
    while True:
        runs += 1
        assert runs <= MAX_RUNS, "the sweep never completed"
        try:
            report = sweep.run()
        except (WorkerKilled, Exception):  # any failure: Lambda's retry / the next day's run
            failures += 1
            continue
        if report.complete:
            return runs, failures


def _assert_exactly_the_expired_items_are_gone(before: set, seeded: retention.Seeded) -> None:
    after = table_keys()
    gone = before - after
    closures = {k for k in before if k[0] == "SWEEP#CLOSURES"}
    assert gone - closures == seeded.expired, (
        f"missing: {seeded.expired - gone}, extra: {gone - closures - seeded.expired}"
    )
    assert seeded.live - closures <= after
    assert all(k[0].startswith("SECURITY#") or k[0].startswith("SWEEP#") for k in after - before)
    objects = bucket_keys()
    assert objects.isdisjoint(seeded.expired_objects)
    assert seeded.live_objects <= objects
    again = sweep.run()
    assert again.as_dict()["deleted_total"] == 0
    FAULT_TOTALS["checked"] += len(before) + len(seeded.expired_objects) + len(seeded.live_objects)


@pytest.mark.parametrize(
    ("service", "kind", "operations", "every"),
    [
        ("dynamodb", "throttle", DYNAMODB_WRITES, 3),
        ("dynamodb", "5xx", DYNAMODB_WRITES, 4),
        ("dynamodb", "5xx", DYNAMODB_READS, 3),
        ("dynamodb", "timeout", DYNAMODB_READS | DYNAMODB_WRITES, 5),
        ("s3", "5xx", {"DeleteObject", "DeleteObjects", "ListObjectsV2"}, 1),
    ],
    ids=["throttled-writes", "5xx-writes", "5xx-reads", "timeouts", "s3-5xx"],
)
def test_faults_during_the_sweep_resume_and_delete_exactly_the_expired_items(
    env: Settings, service: str, kind: str, operations: frozenset[str], every: int
) -> None:
    seeded, _ = seed_everything()
    before = table_keys()
    with inject_aws_faults() as faults:
        faults.fail(service, operations, kind=kind, every=every, limit=4)  # each exhausts botocore's retries
        faults.fail(service, operations, kind=kind, calls={2}, persist=1)  # absorbed by botocore
        runs, failures = sweep_until_complete()
    assert faults.faulted_calls >= 4
    assert failures >= 1, "no run failed: the faults never reached the sweep's recovery"
    assert runs == failures + 1
    _assert_exactly_the_expired_items_are_gone(before, seeded)
    FAULT_TOTALS["faults"] += faults.injected


@pytest.mark.parametrize("writes_before_kill", [0, 3, 8])
def test_a_sweep_killed_mid_run_resumes_and_deletes_exactly_the_expired_items(
    env: Settings, writes_before_kill: int
) -> None:
    seeded, _ = seed_everything()
    before = table_keys()
    with inject_aws_faults() as faults:
        faults.kill_after_writes(writes_before_kill)
        runs, failures = sweep_until_complete()
    assert faults.kills == 1
    assert (runs, failures) == (2, 1)
    _assert_exactly_the_expired_items_are_gone(before, seeded)
    FAULT_TOTALS["faults"] += faults.injected


@pytest.fixture(autouse=True, scope="module")
def _report_figures() -> Iterator[None]:
    yield
    report_totals(__name__, dict(FAULT_TOTALS))
