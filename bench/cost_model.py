"""Dollars per 1 million message lifecycles at ap-southeast-3 (Jakarta) on-demand prices.

A lifecycle is the unit the issue names: one API send, its three status webhooks (sent, delivered,
read) and one inbound message from the customer. Quantities come from
`bench.request_counts.measure()` (counted in the same run): requests, capacity units, the bytes of
every log line each handler wrote by level, and the items left with a retention expiry (which the
sweep deletes later, paying for each). Lambda durations are the in-process handler times of the same
run, scaled to Lambda by the assumptions in `DURATION_MODEL`. What the template deploys (memory,
tracing, log format, levels and class, the access-log line, the webhook's route) is read from
template.yaml by `bench.deployment`.

Prices, with their sources and how far each is verified, are in `bench.prices`. Meta's own
per-message fee is the same whoever sends, so it is left out of both sides of the comparison.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from bench import deployment as deployment_config
from bench.deployment import Deployment
from bench.invocation_overheads import (
    LOG_EVENT_OVERHEAD_BYTES,
    MONTHLY_LIFECYCLES,
    TRACE_ID_FIELD_BYTES,
    XRAY_FIXED_RATE,
    platform_lines,
    traced_share,
)
from bench.prices import PRICE_LIST, PRICES, PRICES_AS_OF
from bench.report import Section
from bench.request_counts import Operation, by_name, measure

# bench.inbox_writes prices its lines with the same figures.
__all__ = ["PRICES", "PRICES_AS_OF", "UNIT", "lambda_ms", "run", "sweep_units", "total_usd"]

# Peer fees per message on top of Meta's fee (their published list prices as remembered; the
# reference notes /work/shared/reference/peers-and-law.md section A list the peers and their
# features but no prices, so these are not from it).
PEERS: list[tuple[str, str]] = [
    (
        "Twilio (WhatsApp via Programmable Messaging)",
        "USD 0.005 per message, outbound and inbound alike: USD 0.010 per unit here",
    ),
    ("WATI", "subscription (about USD 49-99 a month per number, by plan) plus a markup on Meta's conversation fees"),
    ("respond.io", "subscription per workspace and contacts; Meta's fees passed through"),
    ("Mekari Qontak", "subscription (quoted per seat/package); Meta's fees passed through or bundled"),
    ("Chatwoot", "self-hosted free / cloud per agent; Meta's fees paid directly"),
]
TWILIO_PER_UNIT = 0.010

# In-process time -> Lambda billed time. This machine's core is taken as equal to a Graviton2 core;
# Lambda gives 1 vCPU at 1,769 MB, so at M MB single-threaded code runs 1769/M times slower. The time
# spent inside moto is replaced by typical in-region latencies of the real services.
DURATION_MODEL: dict[str, float] = {
    "full_vcpu_mb": 1769,
    "dynamodb_ms": 6,
    "dynamodb_transaction_ms": 15,
    "sqs_ms": 10,
    "s3_put_ms": 25,
    "s3_get_ms": 15,
    "kms_ms": 8,
    "ssm_ms": 10,
    "graph_send_ms": 250,  # Meta's Graph API answer to a send (not AWS, but billed Lambda time)
}

# --- the retention sweep --------------------------------------------------------------------------
# Share of the expiring items that the sweep deletes itself (paid) rather than DynamoDB's TTL (free).
# The sweep deletes only what TTL has left RETENTION_SWEEP_GRACE_DAYS (3) after expiry; AWS says TTL deletes
# "typically within two days" (UpdateTimeToLive API reference), best effort. 5% still there after three
# days is an assumption, not a measurement (moto's TTL is not AWS's): the notes show the 100% worst case
# (`python -m bench sweep_cost` measures what each share costs: $0 at 0%, about $15 at 100%).
SWEEP_SHARE_TODAY = 0.05
SWEEP_SHARE_WORST = 1.0


@dataclass(frozen=True)
class SweepUnits:
    wru: float
    rru: float
    items: int
    gb_seconds: float


def sweep_units(ops: dict[str, Operation], share: float = SWEEP_SHARE_TODAY) -> SweepUnits:
    """What deleting one lifecycle's expiring items costs the sweep, from the items this run left with a
    retention expiry (each at its last size: its delete, its index entries, the consistent re-read, its
    share of the index Query) and the sweep function's time per item in the sweep scenario.

    The one place to swap for `bench.sweep_cost.lifecycle_sweep_cost()` (`.units(share)`) once the
    sweep's own lifecycle figure has landed."""
    expiring = {}
    for name, _times in UNIT:
        usage = ops[name].usage
        if usage is not None:
            expiring.update(usage.expiring)  # later operations leave the item's final size
    wru = sum(item.delete_wcu for item in expiring.values())
    rru = sum(item.recheck_rcu + item.query_rcu for item in expiring.values())
    gb_seconds = 0.0
    sweep_op = next((op for op in ops.values() if op.name.startswith("sweep per ") and op.usage is not None), None)
    if sweep_op is not None and "RetentionSweepFunction" in sweep_op.functions:
        billed = lambda_ms("RetentionSweepFunction", sweep_op.functions["RetentionSweepFunction"].seconds, sweep_op)
        memory = deployment_config.load().function("RetentionSweepFunction").memory_mb
        gb_seconds = billed / 1000 * memory / 1024 / sweep_op.per * len(expiring)
    return SweepUnits(wru * share, rru * share, len(expiring), gb_seconds * share)


UNIT = [  # (operation name in request_counts, how many per unit)
    ("send (API, template, known contact)", 1),
    ("status webhook: sent", 1),
    ("status webhook: delivered", 1),
    ("status webhook: read", 1),
    ("inbound message: known contact", 1),
]
# The unit's webhook POSTs: HTTP API requests while the template routes Meta's POST through the API
# (none through a Lambda function URL); the send is an HTTP API request either way.
WEBHOOK_OPERATIONS = frozenset(name for name, _ in UNIT if "webhook" in name or name.startswith("inbound"))


def lambda_ms(function: str, seconds: float, op: Operation, memory_mb: int | None = None) -> float:
    """Estimated billed Lambda ms of one function's part of an operation (see DURATION_MODEL), at
    the template's memory size unless another is given."""
    span = op.functions[function]
    usage = span.usage
    assert usage is not None
    cpu_ms = max(0.0, (seconds - usage.aws_seconds) * 1000)
    m = DURATION_MODEL
    functions = deployment_config.load().functions
    memory = memory_mb or (functions[function].memory_mb if function in functions else 512)
    io_ms = 0.0
    for name, count in usage.requests.items():
        service, operation = name.split(":", 1)
        if service == "dynamodb":
            io_ms += count * (m["dynamodb_transaction_ms"] if operation.startswith("Transact") else m["dynamodb_ms"])
        elif service == "sqs":
            io_ms += count * m["sqs_ms"]
        elif service == "s3":
            io_ms += count * (m["s3_get_ms"] if operation in ("GetObject", "HeadObject") else m["s3_put_ms"])
        elif service == "kms":
            io_ms += count * m["kms_ms"]
        elif service == "ssm":
            io_ms += count * m["ssm_ms"]
    if function == "SendApiFunction":
        io_ms += m["graph_send_ms"]
    # Above one vCPU (1,769 MB) single-threaded code runs no faster.
    return math.ceil(cpu_ms * max(1.0, m["full_vcpu_mb"] / memory) + io_ms)


# S3 operations by price class; DELETE requests are free.
S3_DELETE_CLASS = frozenset({"DeleteObject", "DeleteObjects"})
# Other AWS requests a lifecycle may make, and the price that applies.
OTHER_PRICED = {"kms": "kms_request", "events": "eventbridge_event", "scheduler": "scheduler_invocation"}


@dataclass
class Quantities:
    """Per lifecycle."""

    lambda_requests: float = 0.0
    gb_seconds: float = 0.0
    http_api: float = 0.0
    wru: float = 0.0
    rru: float = 0.0
    sqs: float = 0.0
    s3_put: float = 0.0
    s3_get: float = 0.0
    s3_delete: float = 0.0
    kms: float = 0.0
    other_usd: float = 0.0
    log_gb_standard: float = 0.0
    log_gb_ia: float = 0.0
    platform_gb_standard: float = 0.0
    platform_gb_ia: float = 0.0
    access_gb_standard: float = 0.0
    access_gb_ia: float = 0.0
    traces: float = 0.0
    batchable_invocations: float = 0.0  # processor invocations and SQS receive/delete: divided by 10 in bursts
    batchable_sqs: float = 0.0
    batchable_log_gb_usd: float = 0.0  # the platform lines of the processor invocations batching saves


GB = 1024**3


def _log_price(log_class: str) -> float:
    infrequent = log_class == "INFREQUENT_ACCESS"
    return PRICES["cloudwatch_logs_ingest_gb_infrequent_access" if infrequent else "cloudwatch_logs_ingest_gb"]


def quantities(ops: dict[str, Operation], deployment: Deployment) -> tuple[Quantities, list[list[str]], list[str]]:
    """Per-lifecycle quantities, the Lambda durations behind them, and the log bytes by function."""
    q = Quantities()
    durations: list[list[str]] = []
    invocations: Counter[str] = Counter()
    for name, times in UNIT:
        op = ops[name]
        for function, span in op.functions.items():
            invocations[function] += span.invocations * times
    log_notes: list[str] = []
    for name, times in UNIT:
        op = ops[name]
        usage = op.usage
        assert usage is not None
        q.wru += usage.wcu * times
        q.rru += usage.rcu * times
        q.sqs += usage.sqs_billable * times
        q.batchable_sqs += (
            usage.requests.get("sqs:ReceiveMessage", 0) + usage.requests.get("sqs:DeleteMessageBatch", 0)
        ) * times
        q.s3_put += usage.s3_puts() * times
        q.s3_get += usage.s3_gets() * times
        q.s3_delete += sum(v for k, v in usage.requests.items() if k.startswith("s3:") and k[3:] in S3_DELETE_CLASS)
        q.kms += usage.service("kms") * times
        for service, price in OTHER_PRICED.items():
            if service != "kms":
                q.other_usd += usage.service(service) * PRICES[price] * times
        through_api = name not in WEBHOOK_OPERATIONS or deployment.webhook_post_through_http_api
        if through_api:
            q.http_api += times
            if deployment.access_log_format:
                line = deployment_config.access_log_line_bytes(deployment.access_log_format)
                size = (line + LOG_EVENT_OVERHEAD_BYTES) / GB
                if deployment.access_log_group_class == "INFREQUENT_ACCESS":
                    q.access_gb_ia += size * times
                else:
                    q.access_gb_standard += size * times
        for (function, level), size in usage.log_bytes.items():
            config = deployment.functions.get(function)
            if config is None or not config.keeps(level):
                continue
            lines = usage.log_lines[function, level]
            gb = (size + lines * (LOG_EVENT_OVERHEAD_BYTES + TRACE_ID_FIELD_BYTES)) / GB * times
            if config.log_group_class == "INFREQUENT_ACCESS":
                q.log_gb_ia += gb
            else:
                q.log_gb_standard += gb
        for function, span in op.functions.items():
            config = deployment.functions[function]
            billed = lambda_ms(function, span.seconds, op, config.memory_mb)
            q.lambda_requests += span.invocations * times
            q.gb_seconds += billed / 1000 * config.memory_mb / 1024 * times
            share = traced_share(config, invocations[function])
            q.traces += span.invocations * share * times
            if config.keeps_platform_lines:
                per_invocation = sum(
                    len(line.encode()) + 1 + LOG_EVENT_OVERHEAD_BYTES
                    for line in platform_lines(config, billed / max(1, span.invocations), share > 0.5)
                )
                gb = span.invocations * per_invocation / GB * times
                if config.log_group_class == "INFREQUENT_ACCESS":
                    q.platform_gb_ia += gb
                else:
                    q.platform_gb_standard += gb
                if function == "WebhookProcessorFunction":
                    q.batchable_log_gb_usd += gb * _log_price(config.log_group_class)
            if function == "WebhookProcessorFunction":
                q.batchable_invocations += span.invocations * times
            durations.append(
                [
                    name,
                    function,
                    f"{span.seconds * 1000:.1f}",
                    f"{span.usage.aws_seconds * 1000:.1f}" if span.usage else "-",
                    f"{billed:.0f}",
                ]
            )
    by_function: Counter[str] = Counter()
    by_level: Counter[str] = Counter()
    for name, times in UNIT:
        usage = ops[name].usage
        assert usage is not None
        for (function, level), size in usage.log_bytes.items():
            by_function[function] += size * times
            by_level[f"{function} {level}"] += usage.log_lines[function, level] * times
    for function, size in sorted(by_function.items()):
        config = deployment.functions.get(function)
        counts = sorted((k.split(" ", 1)[1], v) for k, v in by_level.items() if k.startswith(function + " "))
        lines = ", ".join(f"{level} {n}" for level, n in counts)
        kept = (
            f"kept at {config.application_log_level} ({config.log_format}, {config.log_group_class})" if config else ""
        )
        log_notes.append(f"{function}: {size} bytes in lines {lines}; {kept}")
    return q, durations, log_notes


def priced_lines(q: Quantities, sweep: SweepUnits) -> list[tuple[str, float, float]]:
    """(label, quantity per lifecycle, USD per unit) of every priced line."""
    std, ia = PRICES["cloudwatch_logs_ingest_gb"], PRICES["cloudwatch_logs_ingest_gb_infrequent_access"]
    return [
        ("Lambda requests", q.lambda_requests, PRICES["lambda_request"]),
        ("Lambda GB-seconds (arm64)", q.gb_seconds, PRICES["lambda_arm64_gb_second"]),
        ("HTTP API requests", q.http_api, PRICES["http_api_request"]),
        ("DynamoDB write request units", q.wru, PRICES["dynamodb_write_request_unit"]),
        ("DynamoDB read request units", q.rru, PRICES["dynamodb_read_request_unit"]),
        ("DynamoDB write request units: retention sweep deletes", sweep.wru, PRICES["dynamodb_write_request_unit"]),
        ("DynamoDB read request units: retention sweep", sweep.rru, PRICES["dynamodb_read_request_unit"]),
        ("Lambda GB-seconds: retention sweep", sweep.gb_seconds, PRICES["lambda_arm64_gb_second"]),
        ("SQS requests (64 KB chunks)", q.sqs, PRICES["sqs_request"]),
        ("S3 PUT requests", q.s3_put, PRICES["s3_put_request"]),
        ("S3 GET requests", q.s3_get, PRICES["s3_get_request"]),
        ("S3 DELETE requests (free)", q.s3_delete, PRICES["s3_delete_request"]),
        ("KMS requests", q.kms, PRICES["kms_request"]),
        ("CloudWatch Logs: handler lines, Standard (GB)", q.log_gb_standard, std),
        ("CloudWatch Logs: handler lines, Infrequent Access (GB)", q.log_gb_ia, ia),
        ("CloudWatch Logs: Lambda START/END/REPORT, Standard (GB)", q.platform_gb_standard, std),
        ("CloudWatch Logs: Lambda START/END/REPORT, Infrequent Access (GB)", q.platform_gb_ia, ia),
        ("CloudWatch Logs: HTTP API access lines, Standard (GB)", q.access_gb_standard, std),
        ("CloudWatch Logs: HTTP API access lines, Infrequent Access (GB)", q.access_gb_ia, ia),
        ("X-Ray traces recorded", q.traces, PRICES["xray_trace_recorded"]),
    ]


def burst_saving(q: Quantities) -> float:
    """USD per lifecycle that batches of 10 save: a tenth of the processor's invocations, receives and
    deletes (and of its platform lines); the per-event work (GB-seconds, its own log lines) stays."""
    return 0.9 * (
        q.batchable_invocations * PRICES["lambda_request"]
        + q.batchable_sqs * PRICES["sqs_request"]
        + q.batchable_log_gb_usd
    )


def total_usd(
    ops: dict[str, Operation], deployment: Deployment, sweep_share: float = SWEEP_SHARE_TODAY
) -> tuple[float, dict[str, float]]:
    """USD per 1 million lifecycles, and by line, for these counts priced with these template settings."""
    q, _durations, _notes = quantities(ops, deployment)
    by_line = {label: qty * price * 1_000_000 for label, qty, price in priced_lines(q, sweep_units(ops, sweep_share))}
    by_line["other AWS requests"] = q.other_usd * 1_000_000
    return sum(by_line.values()), by_line


HOT_PATH = ("WebhookReceiverFunction", "WebhookProcessorFunction")
GLOBALS_MEMORY_MB = 512  # what the hot path ran at before its own sizes


def _with(deployment: Deployment, functions: Iterable[str], **changes: object) -> Deployment:
    configs = dict(deployment.functions)
    for name in functions:
        configs[name] = dataclasses.replace(configs[name], **changes)  # type: ignore[arg-type]
    return dataclasses.replace(deployment, functions=configs)


def template_levers(ops: dict[str, Operation], deployment: Deployment) -> list[tuple[str, float]]:
    """USD per 1M lifecycles each template lever saves on this run's counts: the same counts priced
    with that one lever undone, minus the template as it is (negative: the lever is not in yet)."""
    everyone = list(deployment.functions)
    variants = {
        "JSON logs filtered by level (hot path WARN, no START/END/REPORT)": _with(
            deployment, everyone, log_format="Text", application_log_level="INFO", system_log_level="INFO"
        ),
        "Infrequent Access log class": dataclasses.replace(
            _with(deployment, everyone, log_group_class="STANDARD"), access_log_group_class="STANDARD"
        ),
        "tracing PassThrough on the receiver and processor": _with(deployment, HOT_PATH, tracing="Active"),
        "tracing PassThrough on the send API (parameter SendApiTracing)": _with(
            deployment, ("SendApiFunction",), tracing="Active"
        ),
        "memory: receiver and processor below the Globals' 512 MB": _with(
            deployment, HOT_PATH, memory_mb=GLOBALS_MEMORY_MB
        ),
        "webhook through a Lambda function URL, not the HTTP API": dataclasses.replace(
            deployment, webhook_post_through_http_api=not deployment.webhook_post_through_http_api
        ),
    }
    current, _ = total_usd(ops, deployment)
    savings = []
    for label, variant in variants.items():
        other, _ = total_usd(ops, variant)
        savings.append((label, other - current))
    return savings


def run(operations: tuple[Operation, ...] | None = None) -> Section:
    ops = by_name(operations if operations is not None else measure())
    missing = [name for name, _ in UNIT if name not in ops or ops[name].usage is None]
    if missing:
        return Section(
            title="Cost per 1 million messages (ap-southeast-3)",
            command="python -m bench cost_model",
            headers=["item", "status"],
            rows=[
                [name, f"not available yet ({ops[name].unavailable if name in ops else 'not measured'})"]
                for name in missing
            ],
            notes=["the cost model needs every operation of the unit (send + 3 status webhooks + inbound)"],
        )
    deployment = deployment_config.load()
    q, durations, log_notes = quantities(ops, deployment)
    sweep = sweep_units(ops)
    million = 1_000_000
    rows = []
    total = q.other_usd * million
    for label, quantity, price in priced_lines(q, sweep):
        dollars = quantity * million * price
        total += dollars
        rows.append([label, f"{quantity:.4g}", f"{quantity * million:,.0f}", f"{price:.4g}", f"{dollars:,.2f}"])
    if q.other_usd:
        rows.append(["other AWS requests (EventBridge, Scheduler)", "", "", "", f"{q.other_usd * million:,.2f}"])
    rows.append(["**total AWS**", "", "", "", f"**{total:,.2f}**"])
    saved = burst_saving(q) * million
    rows.append(["total AWS with processor batches of 10 (bursts)", "", "", "", f"{total - saved:,.2f}"])

    twilio = TWILIO_PER_UNIT * million
    rows.append(["Twilio's fee for the same (USD 0.005 x 2 messages)", "", "", "", f"{twilio:,.0f}"])
    rows.append(["our AWS cost / Twilio's fee", "", "", "", f"{total / twilio:.3f}"])
    unit_functions = sorted({f for name, _ in UNIT for f in ops[name].functions})
    services = sorted(
        {k.split(":", 1)[0] for name, _ in UNIT for k, v in ops[name].usage.requests.items() if v}  # type: ignore[union-attr]
    )
    notes = [
        "unit: one API template send + its sent/delivered/read status webhooks + one inbound text from a known "
        "contact; "
        "quantities per unit come from the request-count table of this run (webhooks processed one per Lambda batch: "
        "the worst case; bursts batch 10 per invocation and cut processor requests and SQS receives)",
        f"prices: {PRICES_AS_OF}. Free tiers ignored. Meta's per-message fee (charged on delivered templates) is the "
        "same for every provider and left out. Sources: "
        + "; ".join(f"{name} USD {p.usd:.4g} per {p.unit} ({p.source}; {p.status})" for name, p in PRICE_LIST.items()),
        "template settings priced (template.yaml): "
        + "; ".join(
            f"{f} {c.memory_mb} MB, tracing {c.tracing}, logs {c.log_format} app {c.application_log_level} "
            f"system {c.system_log_level} {c.log_group_class}"
            for f, c in sorted(deployment.functions.items())
            if f in unit_functions or f == "RetentionSweepFunction"
        )
        + "; Meta's webhook POST through "
        + ("the HTTP API" if deployment.webhook_post_through_http_api else "a Lambda function URL")
        + f"; access log {deployment.access_log_group_class}",
        "Lambda duration per function (in-process ms -> billed ms): "
        + "; ".join(f"{d[1]} in {d[0]}: {d[2]} ms in-process ({d[3]} in moto) -> {d[4]} ms" for d in durations),
        f"duration model: (in-process time - time inside moto) x {DURATION_MODEL['full_vcpu_mb']:.0f}/memory MB "
        "(Lambda's CPU share; this core taken as one Graviton core) + per request DynamoDB "
        f"{DURATION_MODEL['dynamodb_ms']:.0f} ms (transactions {DURATION_MODEL['dynamodb_transaction_ms']:.0f}), "
        f"SQS {DURATION_MODEL['sqs_ms']:.0f}, S3 PUT {DURATION_MODEL['s3_put_ms']:.0f} / "
        f"GET {DURATION_MODEL['s3_get_ms']:.0f}, "
        f"KMS {DURATION_MODEL['kms_ms']:.0f}, SSM {DURATION_MODEL['ssm_ms']:.0f}, Graph API send "
        f"{DURATION_MODEL['graph_send_ms']:.0f} ms; memory sizes from template.yaml. Cold starts' INIT time "
        "(billed since 2025-08) is not in the per-lifecycle figure: it depends on how often containers start",
        "handler log lines: counted as the handlers wrote them in this run, every level (the app logger's own "
        f"JSON formatter), plus {TRACE_ID_FIELD_BYTES} bytes of X-Ray trace id Powertools adds in Lambda and "
        f"{LOG_EVENT_OVERHEAD_BYTES} bytes of CloudWatch metadata per line; kept when at or above the function's "
        "application level (LoggingConfig.ApplicationLogLevel with JSON format, else POWERTOOLS_LOG_LEVEL). "
        + " | ".join(log_notes),
        "Lambda START/END/REPORT: 3 lines per invocation in the function's log format (INFO-level system events: "
        "SystemLogLevel WARN drops them); HTTP API access lines: the template's access-log format with typical "
        "values, one per API request",
        f"X-Ray: Lambda's sampling (1 request a second, then {XRAY_FIXED_RATE:.0%}) per Active function, at "
        f"{MONTHLY_LIFECYCLES:,} lifecycles a month spread evenly (the reservoir makes the traced share fall as "
        "traffic grows: at 10x the traffic it is about a tenth); each traced invocation counted as one trace (the "
        "upper reading: a processor invocation joining its receiver's trace is not another trace); PassThrough "
        "functions record none on this path",
        f"retention sweep: {sweep.items} items of a lifecycle carry a retention expiry and sit in the ByExpiry "
        f"index; the sweep deletes the {SWEEP_SHARE_TODAY:.0%} TTL has not deleted 3 days after expiry (assumed; "
        f"if TTL deleted none in time: {total_usd(ops, deployment, SWEEP_SHARE_WORST)[0]:.2f} USD in all), "
        "each costing its delete (item size and index entries), a consistent re-read and its share of the "
        "keys-only Query; its Lambda time per item from the sweep scenario",
        "template levers, each undone alone on this run's counts (USD per 1M lifecycles saved; negative: not in "
        "the template yet, what it would save): "
        + "; ".join(f"{label} {saving:+.2f}" for label, saving in template_levers(ops, deployment)),
        "AWS services the unit's requests reach: "
        + ", ".join(services)
        + " (EventBridge and Scheduler calls would be priced if any were made per lifecycle; SSM reads are cached "
        "per container and standard parameters cost nothing per request)",
        "not in the unit: real-time pushes to connected agents (bench inbox_writes: the publisher and USD 1.14 per "
        "million WebSocket messages, one per event and agent), storage (DynamoDB GB-month, S3, log retention), "
        "the daily sweep's fixed Scheduler invocation, data transfer out to Meta",
        "peers (fees on top of Meta's, list prices as remembered; /work/shared/reference/peers-and-law.md section A "
        "compares the peers' features but lists no prices): " + "; ".join(f"{p}: {fee}" for p, fee in PEERS),
    ]
    return Section(
        title="Cost per 1 million messages (ap-southeast-3)",
        command="python -m bench cost_model",
        headers=["item", "per message", "per 1M messages", "USD per unit", "USD per 1M messages"],
        rows=rows,
        notes=notes,
        targets_met=None,
    )
