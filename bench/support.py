"""Shared helpers of the request, throughput and cost benchmarks.

- `count_aws()`: counts every AWS request made in-process (any botocore client: pynamodb's, the
  webhook inbox's boto3 clients, Powertools' SSM and idempotency clients) and the DynamoDB capacity
  each one consumes, computed from item sizes by `bench.capacity` (moto reports a fixed
  ConsumedCapacity per operation, so its figure is not used). With `count_aws(lifecycle=True)` it
  also counts the bytes of every log line each function writes, by level, as CloudWatch Logs would
  ingest them, and the items left with a retention expiry (what the sweep later deletes and pays for).
- `bench_stack()`: a moto account with the tables from template.yaml, the bucket, queues, KMS key
  and SSM secrets, and the environment the functions read; caches reset on entry and exit.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
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
from bench.payloads import APP_SECRET, DISPLAY_PHONE, PHONE_NUMBER_ID, VERIFY_TOKEN, WABA_ID

REGION = "ap-southeast-3"
TABLE_NAME = "relasify-bench-table"
MEDIA_BUCKET = "relasify-bench-media"
QUEUES = ("WEBHOOK_QUEUE_URL", "MEDIA_QUEUE_URL", "BROADCAST_QUEUE_URL", "IMPORT_QUEUE_URL")
SQS_BILLING_CHUNK_BYTES = 64 * 1024
S3_PUT_CLASS = frozenset(
    {"PutObject", "CopyObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "ListObjectsV2"}
)
S3_GET_CLASS = frozenset({"GetObject", "HeadObject"})


# --- the counter ---------------------------------------------------------------------------------


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


# --- the in-process stack ---------------------------------------------------------------------------


def _reset_caches() -> None:
    from aws_lambda_powertools.utilities import parameters
    from relasify.data import webhook_inbox
    from relasify.data.base import reset_connections
    from relasify.settings import get_settings

    get_settings.cache_clear()
    reset_connections()
    webhook_inbox.reset_clients()
    parameters.clear_caches()
    with contextlib.suppress(Exception):
        from tests.support.api import reset_warm_state

        reset_warm_state()


@dataclass(frozen=True)
class BenchStack:
    env: dict[str, str]


@contextlib.contextmanager
def bench_stack(endpoint_url: str | None = None) -> Iterator[BenchStack]:
    """A moto account shaped like the deployed stack, with the environment the functions read.

    In-process (moto's mock, the default), or at `endpoint_url`: a moto server in another process
    (`moto_server_process()`), so the emulator's CPU is not the caller's, as DynamoDB's is not a
    Lambda function's."""
    import boto3
    from moto import mock_aws
    from relasify_local import moto_expressions, moto_queries, moto_serialization, moto_transactions

    # moto's own rollback copies every table on each transaction (O(table)); DynamoDB has no such cost.
    if not moto_transactions.install():
        raise RuntimeError("moto's transact_write_items changed: re-port relasify_local/moto_transactions.py")
    moto_queries.install()
    moto_expressions.install()
    moto_serialization.install()
    saved = dict(os.environ)
    env = {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "POWERTOOLS_SERVICE_NAME": "relasify-bench",
        "POWERTOOLS_METRICS_NAMESPACE": "RelasifyBench",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "TABLE_NAME": TABLE_NAME,
        "MEDIA_BUCKET": MEDIA_BUCKET,
        "APP_SECRET_PARAMETER": "/bench/app-secret",
        "VERIFY_TOKEN_PARAMETER": "/bench/verify-token",
        # Benches fire API requests as fast as the harness answers: budgets far above that (still
        # taken, one UpdateItem each per request, so the counts are those of the deployed API).
        "API_USER_RATE_PER_SECOND": "1000000",
        "API_USER_BURST": "1000000",
        "API_WORKSPACE_RATE_PER_SECOND": "1000000",
        "API_WORKSPACE_BURST": "1000000",
    }
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.pop("AWS_PROFILE", None)
    if endpoint_url:
        env["AWS_ENDPOINT_URL"] = endpoint_url
    os.environ.update(env)
    try:
        with contextlib.nullcontext() if endpoint_url else mock_aws():
            from relasify_local.cfn import create_tables, load_template

            _reset_caches()
            create_tables(boto3.client("dynamodb"), {"Table": TABLE_NAME})
            boto3.client("s3").create_bucket(
                Bucket=MEDIA_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
            )
            sqs = boto3.client("sqs")
            resources = load_template()["Resources"]
            for name in QUEUES:
                words = name.removesuffix("_URL").split("_")
                properties = resources["".join(w.capitalize() for w in words)]["Properties"]
                # The template's visibility timeout: moto's default (30 s) would redeliver long jobs.
                attributes = {"VisibilityTimeout": str(properties["VisibilityTimeout"])}
                queue_name = "bench-" + "-".join(w.lower() for w in words)
                os.environ[name] = env[name] = sqs.create_queue(QueueName=queue_name, Attributes=attributes)["QueueUrl"]
            os.environ["KMS_KEY_ID"] = env["KMS_KEY_ID"] = boto3.client("kms").create_key(Description="bench")[
                "KeyMetadata"
            ]["KeyId"]
            ssm = boto3.client("ssm")
            ssm.put_parameter(Name="/bench/app-secret", Value=APP_SECRET, Type="SecureString")
            ssm.put_parameter(Name="/bench/verify-token", Value=VERIFY_TOKEN, Type="SecureString")
            _reset_caches()
            try:
                yield BenchStack(env)
            finally:
                _reset_caches()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        with contextlib.suppress(Exception):
            _reset_caches()


@contextlib.contextmanager
def moto_server_process() -> Iterator[str]:
    """A moto server (the local stack's: atomic requests, item-level transaction undo, partition
    queries) in a child process; yields its URL and stops it on exit."""
    import socket
    import subprocess
    import sys

    import httpx

    with socket.socket() as probe:  # a free port, as the OS hands it out
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.moto_process", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto server exited with {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{url}/moto-api/", timeout=1)
                break
            if time.monotonic() > deadline:
                raise RuntimeError("moto server not ready within 30 s")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def connected_workspace(api: Any, owner: str) -> str:
    """A workspace created through the API by `owner`, with the bench's WhatsApp number connected."""
    from relasify.data.identity import identity_repository
    from relasify.data.kms_tokens import encrypt_token

    ws = api.create_workspace(owner)
    identity_repository().put_whatsapp_connection(
        ws,
        waba_id=WABA_ID,
        phone_number_id=PHONE_NUMBER_ID,
        encrypted_access_token=encrypt_token(ws, "bench-access-token"),
        display_phone_number=DISPLAY_PHONE,
    )
    return ws


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.process_time()
    result = fn(*args, **kwargs)
    return result, time.process_time() - started
