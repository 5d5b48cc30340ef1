"""The AWS request counter of the request, throughput and cost benchmarks.

`count_aws()` counts every AWS request made in-process (any botocore client: pynamodb's, the
webhook inbox's boto3 clients, Powertools' SSM and idempotency clients) and the DynamoDB capacity
each one consumes (computed from item sizes by `bench.capacity`, as moto's own figure is fixed per
operation). With `count_aws(lifecycle=True)` it also counts the bytes of every log line each
function writes, by level, as CloudWatch Logs would ingest them, and the items left with a
retention expiry (what the sweep later deletes and pays for).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import botocore.client

from bench.capacity import (
    DYNAMODB_WRITES,
    ExpiringItem,
    expiring_items,
    items_before_write,
    request_capacity,
    written_kinds,
)
from bench.stack import REGION

SQS_BILLING_CHUNK_BYTES = 64 * 1024
S3_PUT_CLASS = frozenset(
    {"PutObject", "CopyObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "ListObjectsV2"}
)
S3_GET_CLASS = frozenset({"GetObject", "HeadObject"})


@dataclass
class AwsCounter:
    """Requests per `service:Operation`, DynamoDB WCU/RCU, SQS billable requests, time inside AWS calls."""

    requests: Counter[str] = field(default_factory=Counter)
    wcu: float = 0.0
    rcu: float = 0.0
    sqs_billable: int = 0
    aws_seconds: float = 0.0
    seconds_by_request: Counter[str] = field(default_factory=Counter)
    # DynamoDB items written (put, updated, deleted, in transactions too), by item kind (`item_kind`).
    writes: Counter[str] = field(default_factory=Counter)
    write_units: Counter[str] = field(default_factory=Counter)  # WCU by item kind
    # `lifecycle=True` only: log bytes and lines by (function, level); items with a retention expiry.
    log_bytes: Counter[tuple[str, str]] = field(default_factory=Counter)
    log_lines: Counter[tuple[str, str]] = field(default_factory=Counter)
    expiring: dict[str, ExpiringItem] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.seconds_by_request.clear()
            self.writes.clear()
            self.write_units.clear()
            self.log_bytes.clear()
            self.log_lines.clear()
            self.expiring.clear()
            self.wcu = self.rcu = self.aws_seconds = 0.0
            self.sqs_billable = 0

    def forget(self, name: str) -> None:
        """Take back one request (a harness call that has no per-operation counterpart in Lambda)."""
        with self._lock:
            if self.requests[name] > 0:
                self.requests[name] -= 1
                if name.startswith("sqs:"):
                    self.sqs_billable -= 1

    def snapshot(self) -> Usage:
        with self._lock:
            return Usage(
                Counter(self.requests),
                self.wcu,
                self.rcu,
                self.sqs_billable,
                self.aws_seconds,
                Counter(self.writes),
                Counter(self.write_units),
                Counter(self.log_bytes),
                Counter(self.log_lines),
                dict(self.expiring),
            )

    def _add_log_line(self, function: str, level: str, size: int) -> None:
        with self._lock:
            self.log_bytes[function, level] += size
            self.log_lines[function, level] += 1

    def _set_expiring(self, key: str, item: ExpiringItem | None) -> None:
        with self._lock:
            if item is None:
                self.expiring.pop(key, None)
            else:
                self.expiring[key] = item

    def _add(
        self,
        name: str,
        wcu: float,
        rcu: float,
        sqs_billable: int,
        seconds: float,
        writes: Iterable[str] = (),
        write_units: Counter[str] | None = None,
    ) -> None:
        with self._lock:
            self.writes.update(writes)
            self.write_units.update(write_units or {})
            self.requests[name] += 1
            self.wcu += wcu
            self.rcu += rcu
            self.sqs_billable += sqs_billable
            self.aws_seconds += seconds
            self.seconds_by_request[name] += seconds


@dataclass(frozen=True)
class Usage:
    """What one measured span consumed."""

    requests: Counter[str]
    wcu: float
    rcu: float
    sqs_billable: int
    aws_seconds: float
    writes: Counter[str] = field(default_factory=Counter)
    write_units: Counter[str] = field(default_factory=Counter)
    log_bytes: Counter[tuple[str, str]] = field(default_factory=Counter)
    log_lines: Counter[tuple[str, str]] = field(default_factory=Counter)
    # Items written in the span that carry a retention expiry, in their last state (keyed by table and key).
    expiring: dict[str, ExpiringItem] = field(default_factory=dict)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(
            self.requests - other.requests,
            self.wcu - other.wcu,
            self.rcu - other.rcu,
            self.sqs_billable - other.sqs_billable,
            self.aws_seconds - other.aws_seconds,
            self.writes - other.writes,
            self.write_units - other.write_units,
            self.log_bytes - other.log_bytes,
            self.log_lines - other.log_lines,
            {k: v for k, v in self.expiring.items() if other.expiring.get(k) != v},
        )

    def scaled(self, factor: float) -> ScaledUsage:
        return ScaledUsage(
            {k: v * factor for k, v in self.requests.items()},
            self.wcu * factor,
            self.rcu * factor,
            self.sqs_billable * factor,
        )

    def service(self, name: str) -> int:
        return sum(v for k, v in self.requests.items() if k.startswith(name + ":"))

    def s3_puts(self) -> int:
        return sum(v for k, v in self.requests.items() if k.startswith("s3:") and k[3:] in S3_PUT_CLASS)

    def s3_gets(self) -> int:
        return sum(v for k, v in self.requests.items() if k.startswith("s3:") and k[3:] in S3_GET_CLASS)

    def writes_breakdown(self) -> str:
        """`KIND items (WCU)` per written item kind."""
        return (
            ", ".join(f"{kind} {n} ({self.write_units.get(kind, 0):g})" for kind, n in sorted(self.writes.items()) if n)
            or "-"
        )

    def dynamodb_breakdown(self) -> str:
        parts = sorted((k.split(":", 1)[1], v) for k, v in self.requests.items() if k.startswith("dynamodb:"))
        return ", ".join(f"{op} {n}" for op, n in parts) or "-"


@dataclass(frozen=True)
class ScaledUsage:
    requests: dict[str, float]
    wcu: float
    rcu: float
    sqs_billable: float


def _sqs_billable(operation: str, params: dict[str, Any]) -> int:
    # SQS bills each 64 KB chunk of a payload as one request.
    if operation == "SendMessage":
        return max(1, math.ceil(len(params.get("MessageBody", "").encode()) / SQS_BILLING_CHUNK_BYTES))
    if operation == "SendMessageBatch":
        size = sum(len(e.get("MessageBody", "").encode()) for e in params.get("Entries", []))
        return max(1, math.ceil(size / SQS_BILLING_CHUNK_BYTES))
    return 1


def _record_expiring(region: str, operation: str, params: dict[str, Any]) -> None:
    """After a write: the written items that now carry a retention expiry, at their new size."""
    expiring = expiring_items(region, operation, params)
    for counter in _lifecycle_counters():
        for item_key, item in expiring:
            counter._set_expiring(item_key, item)


class _LogLineCounter(logging.Handler):
    """Counts each log record as the function's stdout line (the app logger's own formatter, one
    newline), attributed to the function being invoked (relasify_local's invocation context)."""

    def __init__(self, formatter: logging.Formatter | None) -> None:
        super().__init__(logging.DEBUG)
        if formatter is not None:
            self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        from relasify_local.aws_calls import current_function

        size = len(self.format(record).encode("utf-8")) + 1
        function = current_function.get() or "outside a function"
        for counter in _lifecycle_counters():
            counter._add_log_line(function, record.levelname, size)


@contextlib.contextmanager
def _counting_log_lines() -> Iterator[None]:
    """Let every level of the app logger through to a counting handler, and no more than before to stdout."""
    from relasify.observability import logger as app_logger

    stdout_handler = app_logger.registered_handler
    previous_logger_level, previous_handler_level = app_logger.log_level, stdout_handler.level
    counting = _LogLineCounter(app_logger.registered_formatter)  # type: ignore[arg-type]
    stdout_handler.setLevel(max(previous_logger_level, previous_handler_level))
    app_logger.addHandler(counting)
    app_logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        app_logger.setLevel(previous_logger_level)
        stdout_handler.setLevel(previous_handler_level)
        app_logger.removeHandler(counting)  # type: ignore[attr-defined]


_active: list[AwsCounter] = []
_lifecycle: list[AwsCounter] = []  # the active counters that also count log lines and expiring items
_original_make_api_call = botocore.client.BaseClient._make_api_call


def _lifecycle_counters() -> list[AwsCounter]:
    return list(_lifecycle)


def _counting_make_api_call(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
    if not _active:
        return _original_make_api_call(self, operation_name, api_params)
    service = self.meta.service_model.service_name
    region = self.meta.region_name or REGION
    before = items_before_write(region, operation_name, api_params) if service == "dynamodb" else None
    response = None
    started = time.process_time()
    try:
        response = _original_make_api_call(self, operation_name, api_params)
        return response
    finally:
        seconds = time.process_time() - started
        wcu = rcu = 0.0
        writes: list[str] = []
        write_units: Counter[str] = Counter()
        if service == "dynamodb":
            wcu, rcu, write_units = request_capacity(region, operation_name, api_params, before, response)
            writes = written_kinds(operation_name, api_params)
        billable = _sqs_billable(operation_name, api_params) if service == "sqs" else 0
        if service == "dynamodb" and response is not None and _lifecycle and operation_name in DYNAMODB_WRITES:
            _record_expiring(region, operation_name, api_params)
        for counter in _active:
            counter._add(f"{service}:{operation_name}", wcu, rcu, billable, seconds, writes, write_units)


@contextlib.contextmanager
def count_aws(*, lifecycle: bool = False) -> Iterator[AwsCounter]:
    """Count every AWS request of every botocore client while the block runs.

    Wraps `BaseClient._make_api_call` (the one method every client's operations go through)
    rather than registering event hooks per client: clients are cached in several places
    (pynamodb's connection, the webhook inbox, Powertools), some created before the block.

    `lifecycle=True` (the cost model's counts, not timed benchmarks: it formats every log line
    and re-reads each written item) also counts log lines by function and level, every level
    included whatever POWERTOOLS_LOG_LEVEL prints, and the items left with a retention expiry.
    """
    counter = AwsCounter()
    if not _active:
        botocore.client.BaseClient._make_api_call = _counting_make_api_call  # type: ignore[method-assign]
    _active.append(counter)
    logs = contextlib.ExitStack()
    if lifecycle:
        _lifecycle.append(counter)
        if len(_lifecycle) == 1:
            logs.enter_context(_counting_log_lines())
    try:
        yield counter
    finally:
        logs.close()
        _lifecycle[:] = [c for c in _lifecycle if c is not counter]
        _active.remove(counter)
        if not _active:
            botocore.client.BaseClient._make_api_call = _original_make_api_call  # type: ignore[method-assign]
