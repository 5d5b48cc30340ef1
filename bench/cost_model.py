"""Dollars per 1 million messages at ap-southeast-3 (Jakarta) on-demand prices.

A "message" here is the unit the issue names: one API send, its three status webhooks (sent,
delivered, read) and one inbound message from the customer. Quantities come from
`bench.request_counts.measure()` (counted in the same run); Lambda durations are the in-process
handler times of the same run, scaled to Lambda by the assumptions in `DURATION_MODEL`.

Prices are list prices as remembered, not fetched (this machine has no internet): update `PRICES`
when the AWS price list says otherwise. Meta's own per-message fee is the same whoever sends, so it
is left out of both sides of the comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.report import Section
from bench.request_counts import Operation, by_name, measure

PRICES_AS_OF = "2025-06 list prices for ap-southeast-3, from memory (not verified online)"
# Unit prices in USD. One place to update.
PRICES: dict[str, float] = {
    "lambda_arm64_gb_second": 0.0000133334,
    "lambda_request": 0.20 / 1_000_000,
    "http_api_request": 1.05 / 1_000_000,  # first 300 million a month
    "dynamodb_write_request_unit": 0.7116 / 1_000_000,  # on-demand, after the Nov 2024 price cut
    "dynamodb_read_request_unit": 0.1423 / 1_000_000,
    "sqs_request": 0.40 / 1_000_000,  # standard queue, per 64 KB chunk
    "s3_put_request": 0.005 / 1_000,  # PUT, COPY, POST, LIST
    "s3_get_request": 0.0004 / 1_000,
    "kms_request": 0.03 / 10_000,
    "cloudwatch_logs_ingest_gb": 0.70,
}

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
LOG_BYTES_PER_INVOCATION = 1200  # START/END/REPORT lines plus 1-3 structured JSON lines
MEMORY_MB = {  # template.yaml (Globals 512 MB; the import worker and the sweep 1,024 MB)
    "WebhookReceiverFunction": 512,
    "WebhookProcessorFunction": 512,
    "SendApiFunction": 512,
    "ContactsApiFunction": 512,
    "ImportWorkerFunction": 1024,
    "RetentionSweepFunction": 1024,
}

UNIT = [  # (operation name in request_counts, how many per unit)
    ("send (API, template, known contact)", 1),
    ("status webhook: sent", 1),
    ("status webhook: delivered", 1),
    ("status webhook: read", 1),
    ("inbound message: known contact", 1),
]
API_REQUESTS_PER_OPERATION = {  # HTTP API requests: the send call, and each webhook POST
    "send (API, template, known contact)": 1,
    "status webhook: sent": 1,
    "status webhook: delivered": 1,
    "status webhook: read": 1,
    "inbound message: known contact": 1,
}


@dataclass
class Duration:
    function: str
    invocations: int
    in_process_ms: float
    lambda_ms: float


def lambda_ms(function: str, seconds: float, op: Operation) -> float:
    """Estimated billed Lambda ms of one function's part of an operation (see DURATION_MODEL)."""
    span = op.functions[function]
    usage = span.usage
    assert usage is not None
    cpu_ms = max(0.0, (seconds - usage.aws_seconds) * 1000)
    m = DURATION_MODEL
    memory = MEMORY_MB.get(function, 512)
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
    return math.ceil(cpu_ms * m["full_vcpu_mb"] / memory + io_ms)


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
    per_unit = {
        "lambda_requests": 0.0,
        "gb_seconds": 0.0,
        "http_api": 0.0,
        "wru": 0.0,
        "rru": 0.0,
        "sqs": 0.0,
        "s3_put": 0.0,
        "s3_get": 0.0,
        "kms": 0.0,
        "log_gb": 0.0,
        "batchable_invocations": 0.0,  # processor invocations and SQS receive/delete: divided by 10 in bursts
        "batchable_sqs": 0.0,
    }
    durations: list[list[str]] = []
    for name, times in UNIT:
        op = ops[name]
        usage = op.usage
        assert usage is not None
        per_unit["wru"] += usage.wcu * times
        per_unit["rru"] += usage.rcu * times
        per_unit["sqs"] += usage.sqs_billable * times
        per_unit["batchable_sqs"] += (
            usage.requests.get("sqs:ReceiveMessage", 0) + usage.requests.get("sqs:DeleteMessageBatch", 0)
        ) * times
        per_unit["s3_put"] += usage.s3_puts() * times
        per_unit["s3_get"] += usage.s3_gets() * times
        per_unit["kms"] += usage.service("kms") * times
        per_unit["http_api"] += API_REQUESTS_PER_OPERATION[name] * times
        for function, span in op.functions.items():
            billed = lambda_ms(function, span.seconds, op)
            per_unit["lambda_requests"] += span.invocations * times
            if function == "WebhookProcessorFunction":
                per_unit["batchable_invocations"] += span.invocations * times
            per_unit["gb_seconds"] += billed / 1000 * MEMORY_MB.get(function, 512) / 1024 * times
            per_unit["log_gb"] += span.invocations * LOG_BYTES_PER_INVOCATION / 1024**3 * times
            durations.append(
                [
                    name,
                    function,
                    f"{span.seconds * 1000:.1f}",
                    f"{span.usage.aws_seconds * 1000:.1f}" if span.usage else "-",
                    f"{billed:.0f}",
                ]
            )
    million = 1_000_000
    lines = [
        ("Lambda requests", per_unit["lambda_requests"], PRICES["lambda_request"]),
        ("Lambda GB-seconds (arm64)", per_unit["gb_seconds"], PRICES["lambda_arm64_gb_second"]),
        ("HTTP API requests", per_unit["http_api"], PRICES["http_api_request"]),
        ("DynamoDB write request units", per_unit["wru"], PRICES["dynamodb_write_request_unit"]),
        ("DynamoDB read request units", per_unit["rru"], PRICES["dynamodb_read_request_unit"]),
        ("SQS requests (64 KB chunks)", per_unit["sqs"], PRICES["sqs_request"]),
        ("S3 PUT requests", per_unit["s3_put"], PRICES["s3_put_request"]),
        ("S3 GET requests", per_unit["s3_get"], PRICES["s3_get_request"]),
        ("KMS requests", per_unit["kms"], PRICES["kms_request"]),
        ("CloudWatch Logs ingestion (GB)", per_unit["log_gb"], PRICES["cloudwatch_logs_ingest_gb"]),
    ]
    rows = []
    total = 0.0
    for label, quantity, price in lines:
        dollars = quantity * million * price
        total += dollars
        rows.append([label, f"{quantity:.4g}", f"{quantity * million:,.0f}", f"{price:.4g}", f"{dollars:,.2f}"])
    rows.append(["**total AWS**", "", "", "", f"**{total:,.2f}**"])
    # In bursts the processor gets batches of 10: a tenth of its invocations, receives and deletes
    # (and of their log lines); the per-event work (GB-seconds) stays.
    saved = (
        0.9
        * million
        * (
            per_unit["batchable_invocations"]
            * (PRICES["lambda_request"] + LOG_BYTES_PER_INVOCATION / 1024**3 * PRICES["cloudwatch_logs_ingest_gb"])
            + per_unit["batchable_sqs"] * PRICES["sqs_request"]
        )
    )
    rows.append(["total AWS with processor batches of 10 (bursts)", "", "", "", f"{total - saved:,.2f}"])
    twilio = TWILIO_PER_UNIT * million
    rows.append(["Twilio's fee for the same (USD 0.005 x 2 messages)", "", "", "", f"{twilio:,.0f}"])
    rows.append(["our AWS cost / Twilio's fee", "", "", "", f"{total / twilio:.3f}"])
    notes = [
        "unit: one API template send + its sent/delivered/read status webhooks + one inbound text from a known "
        "contact; "
        "quantities per unit come from the request-count table of this run (webhooks processed one per Lambda batch: "
        "the worst case; bursts batch 10 per invocation and cut processor requests and SQS receives)",
        f"prices: {PRICES_AS_OF}; they live in bench/cost_model.py PRICES. Free tiers ignored. Meta's per-message "
        "fee (charged on delivered templates) is the same for every provider and left out",
        "Lambda duration per function (in-process ms -> billed ms): "
        + "; ".join(f"{d[1]} in {d[0]}: {d[2]} ms in-process ({d[3]} in moto) -> {d[4]} ms" for d in durations),
        f"duration model: (in-process time - time inside moto) x {DURATION_MODEL['full_vcpu_mb']:.0f}/memory MB "
        "(Lambda's CPU share; this core taken as one Graviton core) + per request DynamoDB "
        f"{DURATION_MODEL['dynamodb_ms']:.0f} ms (transactions {DURATION_MODEL['dynamodb_transaction_ms']:.0f}), "
        f"SQS {DURATION_MODEL['sqs_ms']:.0f}, S3 PUT {DURATION_MODEL['s3_put_ms']:.0f} / "
        f"GET {DURATION_MODEL['s3_get_ms']:.0f}, "
        f"KMS {DURATION_MODEL['kms_ms']:.0f}, SSM {DURATION_MODEL['ssm_ms']:.0f}, Graph API send "
        f"{DURATION_MODEL['graph_send_ms']:.0f} ms; memory sizes from template.yaml",
        f"logs: {LOG_BYTES_PER_INVOCATION} bytes per invocation assumed (platform lines + structured lines)",
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
