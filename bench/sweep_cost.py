"""Retention sweep cost (moto in-process; capacity computed from item sizes by bench/capacity.py's
DynamoDB rules), in two parts:

1. One daily sweep as the number of expired items and the number of live items change. The sweep
   reads only the `ByExpiry` buckets of the days since its checkpoint, up to its cutoff (now minus
   the grace period, `RETENTION_SWEEP_GRACE_DAYS`), keys-only and only `expires_at <= cutoff`, and
   re-reads each such key before deleting it: its read units should grow with the expired items,
   stay flat when the live items grow tenfold, and items expired within the grace period (DynamoDB
   TTL's to delete, for free) are neither read nor deleted.
2. `lifecycle_sweep_cost()`: what the sweep spends on the items one message lifecycle leaves behind
   (the cost model's unit: one API send, its sent/delivered/read statuses, one inbound message), if
   DynamoDB's TTL has not deleted them by the end of the grace period. Measured by running real
   lifecycles and then the sweep at each expiry day plus the grace period. `units(f)` and
   `dollars_per_million(f, prices)` scale it by the fraction `f` of items TTL leaves that long:
   0 when TTL deletes within the grace period (AWS: "typically within a few days"), 1 if it never did.

    python -m bench.sweep_cost        # print the table
    python -m bench sweep_cost        # and write its section of docs/PERFORMANCE.md
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from bench.aws_counter import Usage, count_aws
from bench.payloads import customer_wa_id, inbound_item, inbound_payload, realistic_wamid, status_item, status_payload
from bench.report import Section
from bench.stack import bench_stack, connected_workspace

COMMAND = "python -m bench sweep_cost"
SCENARIOS = [(100, 1_000), (100, 10_000), (1_000, 1_000), (1_000, 10_000)]  # (expired, live)
FLAT_TOLERANCE = 0.10  # read units may differ by at most 10% when only the live items change
LIFECYCLES = 40  # message lifecycles run for `lifecycle_sweep_cost` (figures are per lifecycle)
LAG_FRACTIONS = (0.0, 0.01, 0.1, 1.0)  # shown in the notes: share of items TTL has not deleted in time


def _seed(expired: int, live: int, now: datetime) -> None:
    """Usage-log entries whose TTL passed an hour more than the grace period ago (the sweep's), as
    many whose TTL passed an hour ago (within the grace period: TTL's), and live items: half with a
    future TTL (in the index, later buckets), half account items without TTL (not in the index)."""
    import boto3
    from relasify import retention
    from relasify.settings import get_settings

    table = get_settings().table_name
    client = boto3.client("dynamodb")
    past = int((now - retention.sweep_grace() - timedelta(hours=1)).timestamp())
    in_grace = int((now - timedelta(hours=1)).timestamp())
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
    items += [usage(expired + i, in_grace) for i in range(expired)]
    items += [usage(2 * expired + i, future) for i in range(live // 2)]
    items += [contact(i) for i in range(live - live // 2)]
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        while batch:
            response = client.batch_write_item(RequestItems={table: batch})
            batch = response.get("UnprocessedItems", {}).get(table, [])


def measure(expired: int, live: int) -> dict[str, Any]:
    from relasify import clock, retention
    from relasify.data import sweep as sweep_store
    from relasify.services import sweep

    now = datetime.now(UTC)
    with bench_stack():
        clock.set_clock(lambda: now)
        try:
            _seed(expired, live, now)
            # A daily run: yesterday's cutoff day (not final then) and today's.
            sweep_store.set_checkpoint((now - retention.sweep_grace() - timedelta(days=1)).date())
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


# --- one message lifecycle's items ------------------------------------------------------------------


@dataclass(frozen=True)
class SweepUnits:
    """Billable requests of sweep work: DynamoDB write and read request units, S3 delete requests."""

    wcu: float
    rcu: float
    s3_requests: float

    def scaled(self, factor: float) -> SweepUnits:
        return SweepUnits(self.wcu * factor, self.rcu * factor, self.s3_requests * factor)


@dataclass(frozen=True)
class LifecycleSweepCost:
    """What the sweep spends on the items ONE message lifecycle leaves behind (those in the
    `ByExpiry` index: messages, wamid pointers, conversations, usage logs, billing records, ...),
    over their whole retention, if DynamoDB's TTL deleted none of them within the grace period.
    Items without an index entry (change feed, rate slots, request budgets) only TTL deletes."""

    lifecycles: int  # how many lifecycles were measured (figures are per lifecycle)
    full: SweepUnits  # per lifecycle, when the sweep deletes every item
    deleted_by_kind: dict[str, float]  # per lifecycle: items the sweep deleted, by item kind
    write_units_by_kind: dict[str, float]  # per lifecycle: their write units, by item kind
    per_run: SweepUnits  # one daily run over empty buckets (checkpoint, queries, report): per day, not per lifecycle

    def units(self, ttl_lag_fraction: float) -> SweepUnits:
        """The sweep's units per lifecycle when a fraction `ttl_lag_fraction` of the items is still
        there at expiry + grace period: 0.0 when TTL deletes everything in time (the sweep finds
        nothing: $0), 1.0 if TTL never deleted (the sweep deletes every item)."""
        if not 0.0 <= ttl_lag_fraction <= 1.0:
            raise ValueError("ttl_lag_fraction is a fraction of items: 0.0 to 1.0")
        return self.full.scaled(ttl_lag_fraction)

    def dollars_per_million(self, ttl_lag_fraction: float, prices: Mapping[str, float]) -> float:
        """USD per 1 million lifecycles; `prices` uses bench.cost_model's PRICES keys
        (`dynamodb_write_request_unit`, `dynamodb_read_request_unit`; `s3_delete_request` if given,
        else 0: S3 does not charge DELETE requests)."""
        used = self.units(ttl_lag_fraction)
        return 1_000_000 * (
            used.wcu * prices["dynamodb_write_request_unit"]
            + used.rcu * prices["dynamodb_read_request_unit"]
            + used.s3_requests * prices.get("s3_delete_request", 0.0)
        )


class _StubGraph:
    """Meta's answer to a send, without the network: a unique wamid per send, the callback kept."""

    def __init__(self) -> None:
        self.last: tuple[str, str] = ("", "")
        self._sends = 0

    def send_message(self, phone_number_id: str, token: str, payload: Any) -> Any:
        from relasify.whatsapp.graph import SendResult

        self._sends += 1
        wamid = realistic_wamid(f"bench-sweep-send-{self._sends}")
        self.last = (wamid, str(payload.get("biz_opaque_callback_data", "")))
        to = str(payload.get("to", ""))
        raw = {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}], "messages": [{"id": wamid}]}
        return SendResult(wamid=wamid, message_status="accepted", wa_id=to, raw=raw)


def _lifecycle(harness: Any, ws: str, graph: _StubGraph, n: int) -> None:
    """One unit of the cost model through the real paths: an API template send to a known contact,
    its sent, delivered and read statuses, and one inbound message from the same customer."""
    from relasify.data.contacts import contact_repository
    from relasify.data.records import NewContact

    from bench.request_counts import OWNER

    wa_id = customer_wa_id(50_000 + n)
    contact_repository().create_or_get(ws, NewContact(phone=f"+{wa_id}", wa_id=wa_id))
    response = harness.api.post(
        f"/v1/workspaces/{ws}/messages",
        {"to": f"+{wa_id}", "type": "template", "template": {"name": "order_update", "language": {"code": "id"}}},
        as_user=OWNER,
        headers={"idempotency-key": f"bench-sweep-{n}"},
    )
    if response.status not in (200, 201, 202):
        raise RuntimeError(f"send answered {response.status}: {response.body[:160]!r}")
    wamid, callback = graph.last
    for status in ("sent", "delivered", "read"):
        harness.post_webhook(status_payload([status_item(wamid, status, wa_id, callback=callback)]))
        harness.drain("WEBHOOK_QUEUE_URL", "WebhookProcessorFunction")
    text = "Halo, apakah stok masih ada?"
    harness.post_webhook(inbound_payload([inbound_item(wa_id, realistic_wamid(f"bench-sweep-in-{n}"), text)]))
    harness.drain("WEBHOOK_QUEUE_URL", "WebhookProcessorFunction")


def _swept_items() -> dict[tuple[str, str], int]:
    """Key -> expires_at of every item in the `ByExpiry` index (a Scan: the bench's view, not the sweep's)."""
    import boto3
    from relasify.settings import get_settings

    found: dict[tuple[str, str], int] = {}
    pages = boto3.client("dynamodb").get_paginator("scan").paginate(TableName=get_settings().table_name)
    for page in pages:
        for item in page["Items"]:
            if "expiry_bucket" in item and "expires_at" in item:
                found[(item["PK"]["S"], item["SK"]["S"])] = int(float(item["expires_at"]["N"]))
    return found


def _delete(keys: list[tuple[str, str]]) -> None:
    from relasify.data import sweep as sweep_store

    sweep_store.delete_keys(keys)


def _sweep_each_expiry_day(days: list[date], counter: Any) -> tuple[Usage, int]:
    """For each expiry day, the daily run that first deletes its items: at the day's end plus the
    grace period, checkpoint at that day. Returns the summed usage and the items deleted."""
    from relasify import clock, retention
    from relasify.data import sweep as sweep_store
    from relasify.services import sweep

    total: Usage | None = None
    deleted = 0
    for day in days:
        moment = datetime.combine(day + timedelta(days=1), time(), UTC) + retention.sweep_grace()
        clock.set_clock(lambda moment=moment: moment)
        sweep_store.set_checkpoint(day)
        before = counter.snapshot()
        report = sweep.run(lambda: 900_000)
        spent = counter.snapshot() - before
        total = spent if total is None else _plus(total, spent)
        deleted += report.as_dict()["deleted_total"]
    assert total is not None
    return total, deleted


def _plus(a: Usage, b: Usage) -> Usage:
    return Usage(
        a.requests + b.requests,
        a.wcu + b.wcu,
        a.rcu + b.rcu,
        a.sqs_billable + b.sqs_billable,
        a.aws_seconds + b.aws_seconds,
        a.writes + b.writes,
        a.write_units + b.write_units,
    )


def _per(counts: Counter[str], factor: float) -> dict[str, float]:
    return {kind: n * factor for kind, n in sorted(counts.items()) if n}


def _s3(usage: Usage) -> int:
    return usage.service("s3")


@lru_cache(maxsize=1)
def lifecycle_sweep_cost(lifecycles: int = LIFECYCLES) -> LifecycleSweepCost:
    """Run `lifecycles` message lifecycles in a fresh in-process stack, then sweep every item they
    left, day by day, as the daily sweep would if TTL had deleted none of them; subtract the same
    runs over the then empty buckets (a daily run's fixed cost). Cached per process. Opens its own
    stack: call it outside any other `bench_stack()` (the cost model: after its own measurement)."""
    from relasify import clock
    from relasify.data import templates as template_store
    from relasify.services import delivery
    from relasify.web import usage as usage_log

    from bench.request_counts import OWNER, Harness

    with bench_stack(), count_aws() as counter:
        harness = Harness(counter)
        original_graph = delivery.graph_client  # the bench's one seam for Meta's API (as request_counts)
        graph = _StubGraph()
        delivery.graph_client = lambda: graph  # type: ignore[assignment]
        try:
            ws = connected_workspace(harness.api, OWNER)
            template_store.upsert_from_meta(
                ws,
                {
                    "name": "order_update",
                    "language": "id",
                    "category": "UTILITY",
                    "status": "APPROVED",
                    "id": "1",
                    "components": [{"type": "BODY", "text": "Pesanan Anda sudah dikirim."}],
                },
            )
            _lifecycle(harness, ws, graph, -1)  # warm-up: first-use reads are not per lifecycle
            usage_log.flush()
            _delete(list(_swept_items()))  # the set-up's and warm-up's items are not the lifecycles'
            for n in range(lifecycles):
                _lifecycle(harness, ws, graph, n)
            usage_log.flush()
            items = _swept_items()
            days = sorted({datetime.fromtimestamp(expires, UTC).date() for expires in items.values()})
            spent, deleted = _sweep_each_expiry_day(days, counter)
            left = set(_swept_items()) & set(items)
            if deleted != len(items) or left:
                raise RuntimeError(f"the sweep deleted {deleted} of {len(items)} items; {len(left)} left")
            empty, _ = _sweep_each_expiry_day(days, counter)  # the same runs, nothing left to find
        finally:
            clock.set_clock(None)
            delivery.graph_client = original_graph  # type: ignore[assignment]
            harness.close()
    net = spent - empty
    per = 1 / lifecycles
    return LifecycleSweepCost(
        lifecycles=lifecycles,
        full=SweepUnits(net.wcu * per, net.rcu * per, (_s3(spent) - _s3(empty)) * per),
        deleted_by_kind=_per(spent.writes - empty.writes, per),
        write_units_by_kind=_per(spent.write_units - empty.write_units, per),
        per_run=SweepUnits(empty.wcu / len(days), empty.rcu / len(days), _s3(empty) / len(days)),
    )


def _lifecycle_notes(cost: LifecycleSweepCost) -> list[str]:
    from bench.cost_model import PRICES  # here, not at import: the cost model imports this module

    kinds = ", ".join(
        f"{kind} {n:g} ({cost.write_units_by_kind.get(kind, 0):g} WCU)" for kind, n in cost.deleted_by_kind.items()
    )
    conversation = cost.write_units_by_kind.get("CONV", 0.0)
    dollars = "; ".join(
        f"{fraction:g}: USD {cost.dollars_per_million(fraction, PRICES):.2f}" for fraction in LAG_FRACTIONS
    )
    return [
        f"Per message lifecycle (`lifecycle_sweep_cost()`, {cost.lifecycles} lifecycles: an API template send, "
        "its sent, delivered and read statuses, one inbound message; a new contact each time, so each has its "
        f"own conversation item): the sweep would delete {kinds}: {cost.full.wcu:g} WCU and {cost.full.rcu:g} "
        f"RCU ({conversation:g} of the WCU are the conversation's, shared by a returning contact's lifecycles), "
        f"and {cost.full.s3_requests:.2f} S3 DeleteObjects requests (not charged by S3).",
        "USD per 1 million lifecycles by the fraction of those items DynamoDB's TTL has not deleted at expiry + "
        f"grace period ({dollars}). Without a grace period the sweep reached nearly every item before TTL "
        "(it deleted up to the minute, TTL takes up to a few days): about the 1.0 figure. With it, and TTL "
        "deleting within its documented few days, the expected fraction is near 0.",
        f"A daily run's fixed cost over empty buckets (checkpoint writes, 16 index queries, the report): "
        f"{cost.per_run.wcu:g} WCU and {cost.per_run.rcu:g} RCU per run, per day for the whole table, not per "
        "lifecycle.",
    ]


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
        "One daily run: checkpoint at yesterday's cutoff day (now - grace period), so 2 days x 8 shards of the "
        "`ByExpiry` index are queried. `expired`: TTL passed an hour more than the grace period ago; as many "
        "items whose TTL passed an hour ago (within the grace period, DynamoDB TTL's to delete) are seeded too.",
        "Read units: keys-only index Queries (eventually consistent) plus the consistent BatchGetItem that "
        "re-checks each expired key before it is deleted; live and within-grace items are never read.",
        f"Flat when live items grow tenfold (within {FLAT_TOLERANCE:.0%}): {'yes' if flat else 'NO'}; "
        f"grows with expired items: {'yes' if grows else 'NO'}; deleted exactly the items past the grace "
        f"period (none within it): {'yes' if deleted_exactly else 'NO'}.",
        *_lifecycle_notes(lifecycle_sweep_cost()),
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
