"""Requests and DynamoDB capacity per operation, counted against moto in-process.

Every scenario runs the real code path: API calls go through the local gateway (JWT authorizer,
format 2.0 events) into the deployed handlers; webhooks are signed POSTs to the receiver, whose
queue messages are then received, handed to the processor handler and deleted the way Lambda's
SQS event source mapping does; imports and the sweep run their workers. Nothing is estimated
except the capacity units, which are computed from item sizes (see bench/capacity.py).

`measure()` is cached per process, so `python -m bench request_counts cost_model` counts once.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from bench.aws_counter import AwsCounter, Usage, count_aws
from bench.payloads import (
    customer_wa_id,
    inbound_item,
    inbound_payload,
    realistic_wamid,
    signature,
    status_item,
    status_payload,
)
from bench.report import NotAvailable, Section
from bench.stack import bench_stack, connected_workspace

OWNER = "owner@bench.example"
LIST_PAGE_SIZE = 50
IMPORT_ROWS = 1000
SWEEP_ITEMS = 1000
SQS_BATCH = 10  # Lambda's receive batch (template BatchSize of the webhook processor)


@dataclass
class FunctionSpan:
    """One function's in-process time inside a measured span, and the AWS usage it caused."""

    invocations: int = 0
    seconds: float = 0.0
    usage: Usage | None = None


@dataclass
class Operation:
    name: str
    per: int  # how many operations the figures cover (1, or 1,000 rows/items)
    path: str
    usage: Usage | None = None
    functions: dict[str, FunctionSpan] = field(default_factory=dict)
    unavailable: str | None = None


# --- in-process Lambda plumbing ---------------------------------------------------------------


class Harness:
    """The gateway's API client, the SQS-triggered functions, and timing per function."""

    def __init__(self, counter: AwsCounter) -> None:
        from relasify_local.cfn import REPO_ROOT, load_template
        from relasify_local.runtime import LocalFunction, functions_from_template

        from tests.support.api import ApiClient, gateway_and_key

        self.counter = counter
        self.api = ApiClient(*gateway_and_key())
        self.functions = functions_from_template(load_template(), REPO_ROOT)
        self.spans: dict[str, FunctionSpan] = {}
        self._arns: dict[str, str] = {}
        self._original_invoke = LocalFunction.invoke
        harness = self

        def timed_invoke(function: LocalFunction, event: dict[str, Any]) -> Any:
            import time

            before = harness.counter.snapshot()
            started = time.process_time()
            try:
                return harness._original_invoke(function, event)
            finally:
                harness._record(function.logical_id, time.process_time() - started, harness.counter.snapshot() - before)

        LocalFunction.invoke = timed_invoke  # type: ignore[method-assign]

    def close(self) -> None:
        from relasify_local.runtime import LocalFunction

        LocalFunction.invoke = self._original_invoke  # type: ignore[method-assign]

    def _record(self, logical_id: str, seconds: float, usage: Usage) -> None:
        span = self.spans.setdefault(logical_id, FunctionSpan())
        span.invocations += 1
        span.seconds += seconds
        span.usage = usage if span.usage is None else _add_usage(span.usage, usage)

    def invoke(self, logical_id: str, event: dict[str, Any]) -> Any:
        function = self.functions.get(logical_id)
        if function is None or not function.module_file.is_file():
            raise NotAvailable(f"{logical_id} handler not present yet")
        return function.invoke(event)

    def drain(self, queue_env: str, logical_id: str, *, batch: int = SQS_BATCH) -> int:
        """Receive, invoke, delete until the queue is empty (what the event source mapping does)."""
        import os

        import boto3
        from relasify_local.pollers import failed_message_ids, sqs_record

        sqs = boto3.client("sqs")
        url = os.environ[queue_env]
        if url not in self._arns:  # looked up once (the warm-up), not per batch
            self._arns[url] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
        arn = self._arns[url]
        handled = 0
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=batch, WaitTimeSeconds=0).get("Messages")
            if not messages:
                # The poller's "queue is empty" check: Lambda's idle long polling is not per event.
                self.counter.forget("sqs:ReceiveMessage")
                return handled
            result = self.invoke(logical_id, {"Records": [sqs_record(m, arn) for m in messages]})
            failed = failed_message_ids(result, {m["MessageId"] for m in messages})
            if failed:
                raise RuntimeError(f"{logical_id} failed {len(failed)} of {len(messages)} records")
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
            handled += len(messages)

    def post_webhook(self, payload: dict[str, Any]) -> None:
        raw = json.dumps(payload).encode()
        response = self.api.request(
            "POST", "/webhooks/whatsapp", body=raw, headers={"x-hub-signature-256": signature(raw)}
        )
        if response.status == 404:
            raise NotAvailable("webhook receiver route not present yet")
        if response.status != 200:
            raise RuntimeError(f"webhook POST answered {response.status}: {response.body[:200]!r}")


def _add_usage(a: Usage, b: Usage) -> Usage:
    return Usage(
        a.requests + b.requests,
        a.wcu + b.wcu,
        a.rcu + b.rcu,
        a.sqs_billable + b.sqs_billable,
        a.aws_seconds + b.aws_seconds,
    )


def _flush_usage_log() -> None:
    with contextlib.suppress(ImportError):
        from relasify.web import usage

        usage.flush()


@dataclass
class World:
    harness: Harness
    ws: str
    sub: str


def _measure(world: World, name: str, per: int, path: str, action: Callable[[], object]) -> Operation:
    counter = world.harness.counter
    _flush_usage_log()
    world.harness.spans = {}
    before = counter.snapshot()
    try:
        action()
        _flush_usage_log()  # the API's usage-log write happens on a worker thread: count it here
    except NotAvailable as exc:
        return Operation(name, per, path, unavailable=str(exc))
    except Exception as exc:
        return Operation(name, per, path, unavailable=f"failed: {type(exc).__name__}: {str(exc)[:120]}")
    spans = {k: FunctionSpan(v.invocations, v.seconds, v.usage) for k, v in world.harness.spans.items()}
    return Operation(name, per, path, counter.snapshot() - before, spans)


# --- scenarios ----------------------------------------------------------------------------------


def _setup(harness: Harness) -> World:
    from relasify_local.jwt_local import subject_for_email

    ws = connected_workspace(harness.api, OWNER)
    _flush_usage_log()
    return World(harness, ws, subject_for_email(OWNER))


def _outbound(world: World, n: int, tag: str = "") -> tuple[str, str, str]:
    """An outbound message sent through the send API (its size, wamid and callback data are a real
    send's: a message written by hand stays smaller and cheaper to update): (message id, wamid, callback)."""
    from relasify.data import messages as message_store

    message_id = _send(world, n, key=f"bench-out-{n}{tag}")
    message = message_store.get_message(world.ws, message_id, consistent=True)
    if message is None or message.wamid is None:
        raise RuntimeError("the sent message has no wamid")
    return message.id, message.wamid, message.biz_opaque_callback_data or ""


def _status_webhook(world: World, status: str, wamid: str, callback: str, n: int) -> None:
    world.harness.post_webhook(status_payload([status_item(wamid, status, customer_wa_id(n), callback=callback)]))
    world.harness.drain("WEBHOOK_QUEUE_URL", "WebhookProcessorFunction")


def _inbound(world: World, n: int, wamid: str) -> None:
    payload = inbound_payload([inbound_item(customer_wa_id(n), wamid, "Halo, apakah stok masih ada?")])
    world.harness.post_webhook(payload)
    world.harness.drain("WEBHOOK_QUEUE_URL", "WebhookProcessorFunction")


_SENDS = iter(range(1, 1_000_000))  # one wamid per send across every stub of the run


class _StubGraph:
    """Meta's answer to a send, without the network (the Graph call is not an AWS request)."""

    def __init__(self) -> None:
        self.sent = 0

    def send_message(self, phone_number_id: str, token: str, payload: Any) -> Any:
        from relasify.whatsapp.graph import SendResult

        self.sent += 1
        wamid = realistic_wamid(f"bench-send-{next(_SENDS)}")
        to = str(payload.get("to", ""))
        raw = {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}], "messages": [{"id": wamid}]}
        return SendResult(wamid=wamid, message_status="accepted", wa_id=to, raw=raw)


def _send(world: World, n: int, *, key: str | None = None) -> str:
    """A template send through the API; returns the message id."""
    from relasify.services import delivery

    original = delivery.graph_client
    stub = _StubGraph()
    delivery.graph_client = lambda: stub  # type: ignore[assignment]
    try:
        response = world.harness.api.post(
            f"/v1/workspaces/{world.ws}/messages",
            {
                "to": f"+{customer_wa_id(n)}",
                "type": "template",
                "template": {"name": "order_update", "language": {"code": "id"}},
            },
            as_user=OWNER,
            headers={"idempotency-key": key or f"bench-send-{n}"},
        )
    finally:
        delivery.graph_client = original  # type: ignore[assignment]
    if response.status == 404 and b"route" in response.body.lower():
        raise NotAvailable("send API route not present yet")
    if response.status not in (200, 201, 202):
        raise NotAvailable(f"send API answered {response.status}: {response.body[:160]!r}")
    return str(response.json["id"])


def _seed_template(world: World) -> None:
    with contextlib.suppress(ImportError):
        from relasify.data import templates as template_store

        template_store.upsert_from_meta(
            world.ws,
            {
                "name": "order_update",
                "language": "id",
                "category": "UTILITY",
                "status": "APPROVED",
                "id": "1",
                "components": [{"type": "BODY", "text": "Pesanan Anda sudah dikirim."}],
            },
        )


def _create_contact(world: World, n: int) -> None:
    response = world.harness.api.post(
        f"/v1/workspaces/{world.ws}/contacts",
        {"phone": f"+{customer_wa_id(n)}", "name": f"Pelanggan {n}", "tags": ["vip"]},
        as_user=OWNER,
    )
    if response.status == 404:
        raise NotAvailable("contacts API route not present yet")
    if response.status != 201:
        raise RuntimeError(f"contact create answered {response.status}: {response.body[:160]!r}")


def _list_page(world: World) -> None:
    response = world.harness.api.get(f"/v1/workspaces/{world.ws}/contacts?limit={LIST_PAGE_SIZE}", as_user=OWNER)
    if response.status == 404:
        raise NotAvailable("contacts API route not present yet")
    if response.status != 200:
        raise RuntimeError(f"contact list answered {response.status}: {response.body[:160]!r}")


def _import(world: World, first: int) -> None:
    rows = ["phone,name,tags"] + [f"+{customer_wa_id(first + i)},Pelanggan {i},impor" for i in range(IMPORT_ROWS)]
    response = world.harness.api.request(
        "POST",
        f"/v1/workspaces/{world.ws}/contacts/imports",
        body=("\n".join(rows) + "\n").encode(),
        as_user=OWNER,
        headers={"content-type": "text/csv"},
    )
    if response.status == 404:
        raise NotAvailable("import API route not present yet")
    if response.status != 202:
        raise RuntimeError(f"import answered {response.status}: {response.body[:160]!r}")
    world.harness.drain("IMPORT_QUEUE_URL", "ImportWorkerFunction", batch=1)
    job = world.harness.api.get(f"/v1/workspaces/{world.ws}/contacts/imports/{response.json['id']}", as_user=OWNER).json
    if job.get("status") != "completed":
        raise RuntimeError(f"import ended {job.get('status')}")


def _seed_expired(world: World, count: int) -> None:
    """`count` usage-log entries whose TTL passed a day more than the sweep's grace period ago (the
    sweep leaves younger ones to DynamoDB's free TTL deletes), and the checkpoint where yesterday's
    run left it (a daily run: the buckets of yesterday's and today's cutoff day, 8 shards each)."""
    from relasify import clock, retention
    from relasify.data import sweep as sweep_store
    from relasify.data.identity import identity_repository

    try:
        from relasify.data.records import UsageEntry
    except ImportError as exc:
        raise NotAvailable("usage entry record not available") from exc
    now = datetime.now(UTC)
    window = retention.window(retention.DataClass.USAGE) or timedelta(days=365)
    grace = retention.sweep_grace()
    written_at = now - window - grace - timedelta(days=1)
    clock.set_clock(lambda: written_at)
    try:
        identity_repository().append_usage_batch(
            UsageEntry(
                request_id=f"bench-{i:06d}",
                ws=world.ws,
                route="/v1/workspaces/{ws}/contacts",
                method="GET",
                status_code=200,
                latency_ms=5,
                actor_id=world.sub,
                at=written_at,
            )
            for i in range(count)
        )
    finally:
        clock.set_clock(None)
    yesterdays_cutoff_day = (now - grace - timedelta(days=1)).date()
    try:
        sweep_store.set_checkpoint(yesterdays_cutoff_day, 0)  # type: ignore[call-arg]
    except TypeError:
        sweep_store.set_checkpoint(yesterdays_cutoff_day)


def _sweep(world: World) -> None:
    functions = world.harness.functions
    sweep_fn = functions.get("RetentionSweepFunction")
    if sweep_fn is not None and sweep_fn.module_file.is_file():
        world.harness.invoke("RetentionSweepFunction", {"source": "aws.scheduler"})
        return
    try:
        from relasify.services import sweep
    except ImportError as exc:
        raise NotAvailable("retention sweep not present yet") from exc
    import time as _time

    started = _time.process_time()
    before = world.harness.counter.snapshot()
    sweep.run(lambda: 900_000)
    world.harness._record(
        "RetentionSweepFunction", _time.process_time() - started, world.harness.counter.snapshot() - before
    )


def _scenarios(world: World) -> list[Operation]:
    ops: list[Operation] = []
    _seed_template(world)  # before the warm-up: its outbound message is a template send
    # Warm every path once (first-use imports and client creation are cold-start costs, not per-operation).
    with contextlib.suppress(Exception):
        _mid, wamid, callback = _outbound(world, 9000)
        _status_webhook(world, "sent", wamid, callback, 9000)
        _inbound(world, 9001, "wamid.bench-warm-in")
        _create_contact(world, 9002)
        _list_page(world)

    # Two messages to one customer: statuses of the later one change the conversation's preview
    # (its last message's ticks), statuses of the earlier one do not.
    _mid, older_wamid, older_callback = _outbound(world, 1, "-older")
    _mid, wamid, callback = _outbound(world, 1)
    for status in ("sent", "delivered", "read"):
        ops.append(
            _measure(
                world,
                f"status webhook: {status}",
                1,
                "receiver + processor",
                lambda s=status: _status_webhook(world, s, wamid, callback, 1),
            )
        )
    ops.append(
        _measure(
            world,
            "status webhook: delivered, not the last message",
            1,
            "receiver + processor",
            lambda: _status_webhook(world, "delivered", older_wamid, older_callback, 1),
        )
    )
    ops.append(
        _measure(
            world,
            "inbound message: known contact",
            1,
            "receiver + processor",
            lambda: _inbound(world, 1, realistic_wamid("bench-in-known")),
        )
    )
    ops.append(
        _measure(
            world,
            "inbound message: new contact",
            1,
            "receiver + processor",
            lambda: _inbound(world, 2, realistic_wamid("bench-in-new")),
        )
    )
    with contextlib.suppress(Exception):  # warm the send path
        _send(world, 9003)
    ops.append(_measure(world, "send (API, template, known contact)", 1, "SendApi", lambda: _send(world, 1)))
    ops.append(_measure(world, "contact create (API)", 1, "ContactsApi", lambda: _create_contact(world, 4)))
    for i in range(LIST_PAGE_SIZE + 5):
        with contextlib.suppress(Exception):
            _create_contact(world, 100 + i)
    ops.append(_measure(world, f"contact list page ({LIST_PAGE_SIZE})", 1, "ContactsApi", lambda: _list_page(world)))
    ops.append(
        _measure(
            world,
            f"import per {IMPORT_ROWS:,} rows",
            IMPORT_ROWS,
            "ContactsApi + ImportWorker",
            lambda: _import(world, 10_000),
        )
    )
    try:
        _seed_expired(world, SWEEP_ITEMS)
        ops.append(
            _measure(
                world, f"sweep per {SWEEP_ITEMS:,} expired items", SWEEP_ITEMS, "RetentionSweep", lambda: _sweep(world)
            )
        )
    except NotAvailable as exc:
        ops.append(
            Operation(f"sweep per {SWEEP_ITEMS:,} expired items", SWEEP_ITEMS, "RetentionSweep", unavailable=str(exc))
        )
    return ops


@lru_cache(maxsize=1)
def measure() -> tuple[Operation, ...]:
    """Run every scenario once in a fresh in-process stack; cached for the process."""
    with bench_stack(), count_aws(lifecycle=True) as counter:
        harness = Harness(counter)
        try:
            world = _setup(harness)
            return tuple(_scenarios(world))
        finally:
            harness.close()


def by_name(ops: tuple[Operation, ...]) -> dict[str, Operation]:
    return {op.name: op for op in ops}


def _fmt(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def run() -> Section:
    ops = measure()
    rows: list[list[str]] = []
    for op in ops:
        if op.usage is None:
            rows.append(
                [op.name, op.path, "-", "-", "-", "-", "-", "-", "-", "-", f"not available yet ({op.unavailable})"]
            )
            continue
        u = op.usage
        other = sum(v for k, v in u.requests.items() if k.split(":")[0] not in ("dynamodb", "sqs", "s3"))
        other_names = sorted({k for k in u.requests if k.split(":")[0] not in ("dynamodb", "sqs", "s3")})
        rows.append(
            [
                op.name,
                op.path,
                str(u.service("dynamodb")),
                _fmt(u.wcu),
                _fmt(u.rcu),
                str(u.service("sqs")),
                f"{u.s3_puts()} / {u.s3_gets()}",
                str(other) + (f" ({', '.join(other_names)})" if other else ""),
                u.dynamodb_breakdown(),
                u.writes_breakdown(),
                "counted",
            ]
        )
    return Section(
        title="Requests and capacity per operation",
        command="python -m bench request_counts",
        headers=[
            "operation",
            "path",
            "DynamoDB requests",
            "WCU",
            "RCU",
            "SQS requests",
            "S3 PUT / GET",
            "other AWS",
            "DynamoDB by operation",
            "items written by kind",
            "status",
        ],
        rows=rows,
        notes=[
            "counted in-process against moto: every botocore request of every client (pynamodb, boto3, Powertools) "
            "while the operation ran, from the HTTP request (or scheduled event) to the last queued worker",
            "WCU/RCU are computed from the stored item sizes by DynamoDB's rules (1 WCU per started KB of the larger "
            "of old/new item, +1 per started KB of each touched GSI entry incl. 100 B overhead, transactions x2; "
            "1 RCU per started 4 KB consistent, x0.5 eventually consistent; queries sum every evaluated item); "
            "moto's own ConsumedCapacity is a constant per call and is not used",
            "SQS counts include what Lambda's event source mapping does per batch (ReceiveMessage, DeleteMessageBatch) "
            "for a batch of one event (worst case; bursts fill batches of 10); idle long-polling is not counted",
            "per-operation rows are measured after a warm-up call, so cached per-container reads (SSM secrets, "
            "KMS data key) are not in them; the first call of a container pays them once. The role guard of every "
            "workspace route reads the workspace and the caller's membership in one consistent BatchGetItem "
            "(never cached: revocation is immediate); an inbound message from an unknown sender also reads the "
            "erasure tombstones (one BatchGetItem)",
            "items written by kind: each item a request puts, updates or deletes (in transactions too), by its key's "
            "kind (docs/DATA_MODEL.md): MSG message, CONV conversation (the inbox), CHG change-feed event (real-time), "
            "WAMID wamid pointer, BILLING billing record, CONTACT contact, UNIQ uniqueness marker, USAGE usage log, "
            "BUDGET request budget, TAG/WORD contact index items",
            "the Graph API send is stubbed (not an AWS request); the send goes to a contact that exists, with an "
            "approved UTILITY template seeded through the template store",
        ],
        targets_met=None,
    )
