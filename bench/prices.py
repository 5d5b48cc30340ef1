"""Unit prices (USD) for ap-southeast-3 (Asia Pacific, Jakarta), each with where it comes from.

Nothing here was fetched from AWS: this machine has no internet. Each price names the AWS pricing
page it belongs to and says how far it is verified. Where a figure could not be checked for Jakarta
the higher of the candidate values is kept (the model should overstate, not understate). Update a
price here, with its source and the date you read it, when the pricing page says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

PRICES_AS_OF = (
    "2026-12-06 review of list prices for ap-southeast-3 (not read from AWS on that date: see each price's "
    "source and status in bench/prices.py)"
)


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str
    source: str  # the AWS pricing page
    status: str  # how far the figure is verified for ap-southeast-3, and when


_UNVERIFIED = "not verified for ap-southeast-3 (from memory, as of 2025-06); the higher candidate kept"

PRICE_LIST: dict[str, Price] = {
    "lambda_arm64_gb_second": Price(
        0.0000133334,
        "GB-second, arm64",
        "https://aws.amazon.com/lambda/pricing/",
        "the base arm64 price; a price table derived from that page (artillery 2.0.28, "
        "lib/platform/aws-lambda/prices.js, in the stored docs) lists only the regions that differ from the base "
        "and not ap-southeast-3; read 2026-12-06",
    ),
    "lambda_request": Price(
        0.20 / 1_000_000, "request", "https://aws.amazon.com/lambda/pricing/", "same in every commercial region"
    ),
    "http_api_request": Price(
        1.05 / 1_000_000,
        "HTTP API request (first 300 million a month; metered per 512 KB)",
        "https://aws.amazon.com/api-gateway/pricing/",
        _UNVERIFIED + " (USD 1.00 in us-east-1)",
    ),
    "dynamodb_write_request_unit": Price(
        0.7116 / 1_000_000,
        "on-demand write request unit",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
        _UNVERIFIED + "; after the November 2024 on-demand price cut (USD 0.625 in us-east-1)",
    ),
    "dynamodb_read_request_unit": Price(
        0.1423 / 1_000_000,
        "on-demand read request unit",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
        _UNVERIFIED + " (USD 0.125 in us-east-1)",
    ),
    "sqs_request": Price(
        0.40 / 1_000_000,
        "standard-queue request per 64 KB chunk",
        "https://aws.amazon.com/sqs/pricing/",
        _UNVERIFIED,
    ),
    "s3_put_request": Price(
        0.005 / 1_000, "PUT, COPY, POST, LIST request", "https://aws.amazon.com/s3/pricing/", _UNVERIFIED
    ),
    "s3_get_request": Price(0.0004 / 1_000, "GET, SELECT request", "https://aws.amazon.com/s3/pricing/", _UNVERIFIED),
    "s3_delete_request": Price(
        0.0,
        "DELETE request (DeleteObject, DeleteObjects)",
        "https://aws.amazon.com/s3/pricing/",
        "free ('DELETE and CANCEL requests are free'), every region",
    ),
    "kms_request": Price(0.03 / 10_000, "KMS API request", "https://aws.amazon.com/kms/pricing/", _UNVERIFIED),
    "cloudwatch_logs_ingest_gb": Price(
        0.70,
        "GB ingested, Standard log class",
        "https://aws.amazon.com/cloudwatch/pricing/",
        _UNVERIFIED + " (USD 0.50 in us-east-1; Lambda's logs are vended logs since 2025-05, tiered from the same "
        "first-tier price)",
    ),
    "cloudwatch_logs_ingest_gb_infrequent_access": Price(
        0.35,
        "GB ingested, Infrequent Access log class",
        "https://aws.amazon.com/cloudwatch/pricing/",
        _UNVERIFIED + " (half the Standard price, as in us-east-1: USD 0.25)",
    ),
    "xray_trace_recorded": Price(
        5.00 / 1_000_000,
        "trace recorded",
        "https://aws.amazon.com/xray/pricing/",
        _UNVERIFIED + " (the same USD 5.00 per million in the regions remembered)",
    ),
    "eventbridge_event": Price(
        1.00 / 1_000_000, "custom event published", "https://aws.amazon.com/eventbridge/pricing/", _UNVERIFIED
    ),
    "scheduler_invocation": Price(
        1.00 / 1_000_000,
        "EventBridge Scheduler invocation (after 14 million free a month)",
        "https://aws.amazon.com/eventbridge/pricing/",
        _UNVERIFIED,
    ),
    "websocket_message": Price(
        1.14 / 1_000_000,
        "WebSocket message (32 KB increments)",
        "https://aws.amazon.com/api-gateway/pricing/",
        _UNVERIFIED,
    ),
}

# The plain figures, as the benchmarks use them (bench.inbox_writes, bench.sweep_cost).
PRICES: dict[str, float] = {name: price.usd for name, price in PRICE_LIST.items()}
