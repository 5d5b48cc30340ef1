"""AWS fault injection for tests against moto: throttling, 5xx, timeouts, and a worker killed mid-batch.

`inject_aws_faults()` installs a hook at botocore's `before-send` step, the point where every HTTP attempt of
every client (boto3's, pynamodb's, clients cached before the test) leaves for moto. A rule chooses the attempts
it fails by service, operation and position; a failed attempt gets the error response AWS would send, so
botocore's own retry logic runs exactly as in production (its backoff sleeps are skipped so tests stay fast).
A fault `persist`ing for more attempts than botocore makes exhausts its retries and reaches OUR recovery
(partial batch responses, SQS redelivery, checkpoints). `kill_after_writes` raises `WorkerKilled` (a
BaseException, which nothing in the code under test catches) after N successful writes: the process "dies".

    with inject_aws_faults() as faults:
        faults.fail("dynamodb", {"PutItem"}, kind="throttle", every=3, limit=4)  # each exhausts botocore's retries
        faults.fail("dynamodb", {"Query"}, kind="5xx", calls={2}, persist=1)  # absorbed by botocore's retry
        ...
    assert faults.faulted_calls == 5
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

import botocore.endpoint
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import ReadTimeoutError
from moto.core.botocore_stubber import BotocoreStubber

DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"})
DYNAMODB_READS = frozenset({"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"})
FAULT_KINDS = ("throttle", "5xx", "timeout")

# The error each kind answers with, per service (JSON-protocol services name it in `__type`).
_THROTTLE_CODE = {"dynamodb": "ProvisionedThroughputExceededException"}
_JSON_PREFIX = {"dynamodb": "com.amazonaws.dynamodb.v20120810#", "sqs": "com.amazonaws.sqs#"}


class WorkerKilled(BaseException):
    """The worker process died (timeout, OOM, redeploy) in the middle of its work."""


class _RawBody(BytesIO):
    def stream(self, **_: Any) -> Iterator[bytes]:
        chunk = self.read()
        if chunk:
            yield chunk


@dataclass
class FaultRule:
    """Fails calls of `operations` of `service`. A call is chosen when its number (1-based, among the
    matching calls) is in `calls` or divisible by `every`; at most `limit` calls are chosen (None: no
    limit). A chosen call fails `persist` attempts in a row (1: botocore's own retry absorbs it), or, with
    `persist=None`, every attempt botocore makes (read from its `amz-sdk-request: attempt=N; max=M`
    header), so the error reaches the code under test. `tables` (DynamoDB) narrows it to calls naming one
    of those tables."""

    service: str
    operations: Collection[str]
    kind: str
    calls: Collection[int] = ()
    every: int | None = None
    persist: int | None = None
    limit: int | None = None
    tables: Collection[str] = ()
    seen: int = 0
    chosen: int = 0
    injected: int = 0
    _remaining: int = 0  # further attempts of the chosen call to fail
    _exhausting: bool = False

    def matches(self, service: str, operation: str, request: AWSPreparedRequest) -> bool:
        if service != self.service or (self.operations and operation not in self.operations):
            return False
        return not self.tables or bool(_tables_of(request) & set(self.tables))

    def take(self, request: AWSPreparedRequest) -> bool:
        attempt, max_attempts = _attempt_of(request)
        if self._exhausting:
            self._exhausting = attempt < max_attempts
            self.injected += 1
            return True
        if self._remaining > 0:
            self._remaining -= 1
            self.injected += 1
            return True
        self.seen += 1
        if self.limit is not None and self.chosen >= self.limit:
            return False
        if self.seen in self.calls or (self.every is not None and self.seen % self.every == 0):
            self.chosen += 1
            if self.persist is None:
                self._exhausting = attempt < max_attempts
            else:
                self._remaining = self.persist - 1
            self.injected += 1
            return True
        return False


def _tables_of(request: AWSPreparedRequest) -> set[str]:
    body = request.body
    try:
        payload = json.loads(body.decode() if isinstance(body, bytes) else body or "{}")
    except (ValueError, UnicodeDecodeError):
        return set()
    names = {payload.get("TableName")}
    names |= set(payload.get("RequestItems") or {})
    for entry in payload.get("TransactItems") or []:
        names |= {part.get("TableName") for part in entry.values() if isinstance(part, dict)}
    return {n for n in names if n}


def _attempt_of(request: AWSPreparedRequest) -> tuple[int, int]:
    header = request.headers.get("amz-sdk-request") or ""
    if isinstance(header, bytes):
        header = header.decode()
    parts = dict(p.strip().split("=", 1) for p in header.split(";") if "=" in p)
    try:
        return int(parts.get("attempt", 1)), int(parts.get("max", 1))
    except ValueError:
        return 1, 1


@dataclass
class FaultInjector:
    rules: list[FaultRule] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)  # "service.Operation" -> HTTP attempts seen
    successful_writes: int = 0
    _kill_after: int | None = None
    _kill_filter: Callable[[str, str], bool] | None = None
    kills: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(
        self,
        service: str,
        operations: Collection[str] = (),
        *,
        kind: str = "throttle",
        calls: Collection[int] = (),
        every: int | None = None,
        persist: int | None = None,
        limit: int | None = None,
        tables: Collection[str] = (),
    ) -> FaultRule:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        rule = FaultRule(
            service, frozenset(operations), kind, frozenset(calls), every, persist, limit, frozenset(tables)
        )
        with self._lock:
            self.rules.append(rule)
        return rule

    def kill_after_writes(self, writes: int, *, service: str = "dynamodb") -> None:
        """The next DynamoDB write after `writes` more successful ones raises WorkerKilled (once)."""
        with self._lock:
            self._kill_after = self.successful_writes + writes
            self._kill_filter = lambda svc, op: svc == service and op in DYNAMODB_WRITES

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self._kill_after = None

    @property
    def injected(self) -> int:
        """Faulted HTTP attempts so far (each botocore retry of a faulted call counts)."""
        return sum(rule.injected for rule in self.rules) + self.kills

    @property
    def faulted_calls(self) -> int:
        return sum(rule.chosen for rule in self.rules)

    # -- the hook -------------------------------------------------------------------------------

    def before_send(self, event_name: str, request: AWSPreparedRequest) -> AWSResponse | None:
        # event_name is "before-send.<service id>.<Operation>"
        _, service, operation = event_name.split(".", 2)
        with self._lock:
            key = f"{service}.{operation}"
            self.attempts[key] = self.attempts.get(key, 0) + 1
            kill_due = self._kill_after is not None and self.successful_writes >= self._kill_after
            if kill_due and self._kill_filter is not None and self._kill_filter(service, operation):
                self._kill_after = None
                self.kills += 1
                raise WorkerKilled(f"killed before {key} after {self.successful_writes} writes")
            rule = next((r for r in self.rules if r.matches(service, operation, request) and r.take(request)), None)
            if rule is None:
                if service == "dynamodb" and operation in DYNAMODB_WRITES:
                    self.successful_writes += 1  # let through; a conditional failure still counts as done
                return None
        return _fault_response(rule.kind, service, request)


def _fault_response(kind: str, service: str, request: AWSPreparedRequest) -> AWSResponse:
    if kind == "timeout":
        raise ReadTimeoutError(endpoint_url=request.url)
    if kind == "throttle":
        status, code = 400, _THROTTLE_CODE.get(service, "ThrottlingException")
    else:
        status, code = 500, "InternalServerError"
    message = f"Injected {kind} fault"
    if service in _JSON_PREFIX:
        body = json.dumps({"__type": _JSON_PREFIX[service] + code, "message": message}).encode()
        headers = {"content-type": "application/x-amz-json-1.0", "x-amzn-query-error": f"{code};Sender"}
    else:
        body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
        headers = {"content-type": "application/xml"}
    return AWSResponse(request.url, status, headers, _RawBody(body))  # type: ignore[arg-type]


class _NoSleep:
    """botocore.endpoint's view of `time`: retries happen, their backoff sleeps do not."""

    def __getattr__(self, name: str) -> Any:
        import time

        return getattr(time, name)

    @staticmethod
    def sleep(_: float) -> None:
        return None


@contextmanager
def inject_aws_faults() -> Iterator[FaultInjector]:
    """Install the fault hook in front of moto's `before-send` handler for the duration of the block."""
    injector = FaultInjector()
    original_call = BotocoreStubber.__call__
    original_time = botocore.endpoint.time

    def call(stubber: BotocoreStubber, event_name: str, request: AWSPreparedRequest, **kwargs: Any) -> Any:
        if stubber.enabled:
            response = injector.before_send(event_name, request)
            if response is not None:
                return response
        return original_call(stubber, event_name, request, **kwargs)

    BotocoreStubber.__call__ = call  # type: ignore[method-assign]
    botocore.endpoint.time = _NoSleep()  # type: ignore[assignment]
    try:
        yield injector
    finally:
        BotocoreStubber.__call__ = original_call  # type: ignore[method-assign]
        botocore.endpoint.time = original_time


def report_totals(module: str, totals: dict[str, int]) -> None:
    """Append a module's figures (faults injected, items checked) to $RELASIFY_FAULT_REPORT, if set:
    the numbers the hardening issue's closing note quotes."""
    import os

    path = os.environ.get("RELASIFY_FAULT_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as report:
            report.write(json.dumps({"module": module, **totals}) + "\n")
