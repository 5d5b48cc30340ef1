"""Retention sweep cost: DynamoDB read units of one daily sweep as the number of expired items and
the number of live items change (moto in-process; capacity computed from item sizes by
bench/support.py's DynamoDB rules).

The sweep reads only the `ByExpiry` buckets of the days since its checkpoint (keys-only, only
`expires_at <= now`) and re-reads each expired key before deleting it, so its read units should grow
with the expired items and stay flat when the live items grow tenfold.

    python -m bench.sweep_cost        # print the table
    python -m bench sweep_cost        # and write its section of docs/PERFORMANCE.md
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.report import Section
from bench.support import bench_stack, count_aws

COMMAND = "python -m bench sweep_cost"
SCENARIOS = [(100, 1_000), (100, 10_000), (1_000, 1_000), (1_000, 10_000)]  # (expired, live)
FLAT_TOLERANCE = 0.10  # read units may differ by at most 10% when only the live items change


def _seed(expired: int, live: int, now: datetime) -> None:
    """Expired usage-log entries (TTL passed an hour ago), and live items: half with a future TTL (in
    the index, later buckets), half account items without TTL (not in the index at all)."""
    import boto3
    from relasify import retention
    from relasify.settings import get_settings

    table = get_settings().table_name
    client = boto3.client("dynamodb")
    past = int((now - timedelta(hours=1)).timestamp())
    future = int((now + timedelta(days=300)).timestamp())

    def usage(i: int, expires_at: int) -> dict[str, Any]:
        pk, sk = f"USAGE#ws-bench#{i % 31:02d}", f"2026-01-01T00:00:00.{i:06d}Z#req-{i}"
        return {
            "PK": {"S": pk},
            "SK": {"S": sk},
            "route": {"S": "/v1/workspaces/{ws}/contacts"},
            "method": {"S": "GET"},
            "status_code": {"N": "200"},
            "latency_ms": {"N": "5"},
            "expires_at": {"N": str(expires_at)},
            "expiry_bucket": {"S": retention.expiry_bucket(expires_at, f"{pk}#{sk}")},
        }

    def contact(i: int) -> dict[str, Any]:
        return {
            "PK": {"S": "WS#ws-bench"},
            "SK": {"S": f"CONTACT#c{i:07d}"},
            "phone": {"S": f"+62812{i:07d}"},
            "name": {"S": f"Contact {i}"},
        }

    items = [usage(i, past) for i in range(expired)]
    items += [usage(expired + i, future) for i in range(live // 2)]
    items += [contact(i) for i in range(live - live // 2)]
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        while batch:
            response = client.batch_write_item(RequestItems={table: batch})
            batch = response.get("UnprocessedItems", {}).get(table, [])


def measure(expired: int, live: int) -> dict[str, Any]:
    from relasify import clock
    from relasify.data import sweep as sweep_store
    from relasify.services import sweep

    now = datetime.now(UTC)
    with bench_stack():
        clock.set_clock(lambda: now)
        try:
            _seed(expired, live, now)
            sweep_store.set_checkpoint((now - timedelta(days=1)).date())  # a daily run: yesterday and today
            with count_aws() as counter:
                report = sweep.run(lambda: 900_000)
            usage = counter.snapshot()
        finally:
            clock.set_clock(None)
    return {
        "expired": expired,
        "live": live,
        "deleted": report.as_dict()["deleted_total"],
        "rcu": usage.rcu,
        "wcu": usage.wcu,
        "queries": usage.requests["dynamodb:Query"],
        "batch_gets": usage.requests["dynamodb:BatchGetItem"],
        "batch_writes": usage.requests["dynamodb:BatchWriteItem"],
    }


def run() -> Section:
    results = [measure(expired, live) for expired, live in SCENARIOS]
    rows = [
        [
            f"{r['expired']:,}",
            f"{r['live']:,}",
            f"{r['deleted']:,}",
            f"{r['rcu']:.1f}",
            f"{r['rcu'] / max(r['expired'], 1):.3f}",
            str(r["queries"]),
            str(r["batch_gets"]),
            str(r["batch_writes"]),
            f"{r['wcu']:.0f}",
        ]
        for r in results
    ]
    by_key = {(r["expired"], r["live"]): r for r in results}
    flat = all(
        abs(by_key[(e, 10_000)]["rcu"] - by_key[(e, 1_000)]["rcu"]) <= FLAT_TOLERANCE * by_key[(e, 1_000)]["rcu"]
        for e in (100, 1_000)
    )
    grows = by_key[(1_000, 1_000)]["rcu"] > 5 * by_key[(100, 1_000)]["rcu"]
    deleted_exactly = all(r["deleted"] == r["expired"] for r in results)
    notes = [
        "One daily run: checkpoint at yesterday, so 2 days x 8 shards of the `ByExpiry` index are queried.",
        "Read units: keys-only index Queries (eventually consistent) plus the consistent BatchGetItem that "
        "re-checks each expired key before it is deleted; live items are never read.",
        f"Flat when live items grow tenfold (within {FLAT_TOLERANCE:.0%}): {'yes' if flat else 'NO'}; "
        f"grows with expired items: {'yes' if grows else 'NO'}; deleted exactly the expired: "
        f"{'yes' if deleted_exactly else 'NO'}.",
    ]
    return Section(
        title="Retention sweep cost",
        command=COMMAND,
        headers=[
            "expired",
            "live",
            "deleted",
            "read units",
            "RCU per expired item",
            "Query",
            "BatchGetItem",
            "BatchWriteItem",
            "write units",
        ],
        rows=rows,
        notes=notes,
        targets_met=flat and grows and deleted_exactly,
    )


if __name__ == "__main__":
    section = run()
    print(section.markdown())
    sys.exit(0 if section.targets_met else 1)
