"""Graph API faults (sandbox: 429 with Retry-After, 500, timeouts, connection resets) during single sends
through the API and during broadcasts (worker jobs drained from the moto queue, redelivered when they fail),
plus DynamoDB throttling in the broadcast worker. Every message reaches the sandbox exactly once, counts
are exact, and a failure that outlasts the retries leaves the idempotency key or the job retryable."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from relasify.settings import get_settings

from tests.integration.api import conftest as api_fixtures
from tests.integration.api.test_send_support import AGENT, OWNER, SendingEnv, sending_environment
from tests.support.api import ApiClient
from tests.support.faults import DYNAMODB_WRITES, WorkerKilled, inject_aws_faults, report_totals

aws_resources = api_fixtures.aws_resources  # the API tier's fixtures (this file lives beside the other fault tests)
api = api_fixtures.api
graph_sandbox = api_fixtures.graph_sandbox
shared_graph_sandbox = api_fixtures.shared_graph_sandbox
FAULT_TOTALS: Counter[str] = Counter()
# (kind, options) of one injected Graph fault; a timeout holds the connection past GRAPH_TIMEOUT_SECONDS=1.
FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("429", {"retry_after": 0}),
    ("500", {}),
    ("timeout", {"seconds": 1.2}),
    ("reset", {}),
]


@pytest.fixture
def env(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[SendingEnv]:
    yield from sending_environment(api, monkeypatch)


def _faults_seen(env: SendingEnv) -> Counter[str]:
    return Counter(r["fault"] for r in env.sandbox.requests if r["fault"])


def test_single_sends_survive_every_graph_fault_and_send_once(env: SendingEnv) -> None:
    contacts = [env.contact(f"+62812000011{i:02d}", name=f"Faulty {i}") for i in range(len(FAULTS) + 1)]
    injected = 0
    for i, (kind, options) in enumerate(FAULTS):
        env.sandbox.inject_fault(kind, 1, **options)
        injected += 1
        body = {"contact_id": contacts[i].id, "type": "text", "text": {"body": f"after {kind}"}}
        response = env.post_message(body, f"fault-{i}")
        assert response.status == 201, (kind, response.body)
        assert response.json["wamid"]
    # two faults in a row on one send (still within the client's attempts)
    env.sandbox.inject_fault("500", 1)
    env.sandbox.inject_fault("reset", 1)
    injected += 2
    last = {"contact_id": contacts[-1].id, "type": "text", "text": {"body": "after two"}}
    assert env.post_message(last, "fault-two").status == 201

    sent = env.sends()
    assert sorted(s["to"] for s in sent) == sorted(c.wa_id for c in contacts)  # each exactly once
    assert sum(_faults_seen(env).values()) == injected
    # The client retrying with the same keys gets the same answers and nothing is sent again.
    for i, (kind, _) in enumerate(FAULTS):
        body = {"contact_id": contacts[i].id, "type": "text", "text": {"body": f"after {kind}"}}
        assert env.post_message(body, f"fault-{i}").status == 201
    assert len(env.sends()) == len(contacts)
    FAULT_TOTALS["graph"] += injected
    FAULT_TOTALS["checked"] += len(contacts)


def test_a_send_whose_faults_outlast_the_retries_fails_cleanly_and_its_key_can_be_retried(env: SendingEnv) -> None:
    contact = env.contact("+6281200001200")
    body = {"contact_id": contact.id, "type": "text", "text": {"body": "persistent outage"}}
    env.sandbox.inject_fault("500", 10)
    failed = env.post_message(body, "outage")
    assert failed.status == 503, failed.body
    assert failed.content_type == "application/problem+json"
    assert failed.json["type"].endswith("/whatsapp-unavailable")
    assert env.sends() == []
    env.sandbox.reset()  # Meta recovers
    retried = env.post_message(body, "outage")  # the same key: a transient failure is not remembered
    assert retried.status == 201, retried.body
    assert len(env.sends()) == 1
    assert env.post_message(body, "outage").json["id"] == retried.json["id"]
    assert len(env.sends()) == 1
    FAULT_TOTALS["graph"] += 4
    FAULT_TOTALS["checked"] += 1


def _broadcast(env: SendingEnv, recipients: int) -> tuple[str, list[Any]]:
    env.approved_template("promo", category="MARKETING")
    contacts = [
        env.contact(f"+62812000013{i:02d}", tags=["vip"], name=f"Pelanggan {i}", inbound_hours_ago=None)
        for i in range(recipients)
    ]
    body = {"template": "promo", "language": "id", "audience": {"tags": ["vip"]}, "parameters": [{"field": "name"}]}
    created = env.api.post(f"/v1/workspaces/{env.ws}/broadcasts", body, as_user=OWNER)
    assert created.status == 202, created.body
    return created.json["id"], contacts


def drain_with_redelivery(max_rounds: int = 300, failures: Counter[str] | None = None) -> tuple[int, int]:
    """The worker on every queued job; a job that raises stays on the queue and comes back (SQS).
    Returns (jobs handled, jobs that failed); `failures` counts what failed them, by exception type."""
    from relasify.services import broadcast_pipeline

    sqs = boto3.client("sqs")
    url = get_settings().broadcast_queue_url
    handled = failed = 0
    for _ in range(max_rounds):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        if not messages:
            return handled, failed
        for message in messages:
            try:
                broadcast_pipeline.handle_job(json.loads(message["Body"]))
            except (WorkerKilled, Exception) as exc:  # the invocation failed: the message is delivered again
                failed += 1
                if failures is not None:
                    failures[type(exc).__name__] += 1
                continue
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            handled += 1
    raise AssertionError("broadcast queue did not drain")


def _assert_broadcast_exact(
    env: SendingEnv, broadcast_id: str, contacts: list[Any], *, allow_one_duplicate: bool = False
) -> None:
    sends = env.sends()
    per_recipient = Counter(s["to"] for s in sends)
    assert set(per_recipient) == {c.wa_id for c in contacts}, "a recipient was missed"
    duplicates = sum(n - 1 for n in per_recipient.values())
    assert duplicates <= (1 if allow_one_duplicate else 0), f"recipients sent twice: {per_recipient}"
    names = {s["to"]: s["template"]["components"][0]["parameters"][0]["text"] for s in sends}
    assert names == {c.wa_id: c.name for c in contacts}
    view = env.api.get(f"/v1/workspaces/{env.ws}/broadcasts/{broadcast_id}", as_user=OWNER).json
    assert view["status"] == "completed"
    assert view["total"] == len(contacts)
    counts = view["counts"]
    assert (counts["queued"], counts["sent"], counts["failed"], counts["skipped"]) == (0, len(contacts), 0, 0)
    FAULT_TOTALS["checked"] += len(contacts)


def test_a_broadcast_through_graph_faults_sends_each_recipient_once(env: SendingEnv) -> None:
    broadcast_id, contacts = _broadcast(env, 10)
    injected = 0
    for kind, options in FAULTS * 2:
        env.sandbox.inject_fault(kind, 1, **options)
        injected += 1
    _, failed = drain_with_redelivery()
    assert failed == 0  # each fault was absorbed by the Graph client's retries
    assert sum(_faults_seen(env).values()) == injected
    _assert_broadcast_exact(env, broadcast_id, contacts)
    FAULT_TOTALS["graph"] += injected


def test_a_broadcast_whose_graph_outage_outlasts_the_retries_is_redelivered_and_sends_once(env: SendingEnv) -> None:
    broadcast_id, contacts = _broadcast(env, 6)
    env.sandbox.inject_fault("500", 6)  # more than one send's attempts: the job fails and comes back
    env.sandbox.inject_fault("reset", 2)
    _, failed = drain_with_redelivery()
    assert sum(_faults_seen(env).values()) == 8
    _assert_broadcast_exact(env, broadcast_id, contacts)
    del failed  # whether the worker retried inside the job or SQS redelivered it, the outcome is the same
    FAULT_TOTALS["graph"] += 8


@pytest.mark.parametrize("writes_before_kill", [2, 6, 11])
def test_a_broadcast_worker_killed_mid_job_is_redelivered_and_sends_once(
    env: SendingEnv, writes_before_kill: int
) -> None:
    broadcast_id, contacts = _broadcast(env, 6)
    failures: Counter[str] = Counter()
    with inject_aws_faults() as faults:
        faults.kill_after_writes(writes_before_kill)
        drain_with_redelivery(failures=failures)
    assert faults.kills == 1
    # Killed after Meta accepted a message and before its wamid was stored, the dead attempt's send lease
    # keeps a redelivery that comes before the message's status webhook (which carries our id and
    # attaches the wamid) from sending again: that redelivery fails with SendInProgress, a later one
    # finds the wamid. Nothing else may fail.
    assert failures["WorkerKilled"] == 1
    assert set(failures) <= {"WorkerKilled", "SendInProgress"}, failures
    # A process dying after Meta accepted a message and before its wamid is stored cannot know it was sent:
    # that one recipient may get it twice (WhatsApp has no idempotency key). Nobody is lost; counts are exact.
    _assert_broadcast_exact(env, broadcast_id, contacts, allow_one_duplicate=True)
    FAULT_TOTALS["aws"] += faults.injected


def test_a_worker_that_dies_after_settling_the_last_recipient_leaves_the_completion_to_its_redelivery(
    env: SendingEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relasify.services import broadcast_pipeline

    broadcast_id, contacts = _broadcast(env, 3)
    transition = broadcast_pipeline.store.transition
    died: list[str] = []

    def dies_before_completing(ws: str, bid: str, status: str, **kwargs: Any) -> Any:
        if status == "completed" and not died:
            died.append(bid)
            raise WorkerKilled("died between the last settlement and the completion")
        return transition(ws, bid, status, **kwargs)

    monkeypatch.setattr(broadcast_pipeline.store, "transition", dies_before_completing)
    failures: Counter[str] = Counter()
    drain_with_redelivery(failures=failures)
    assert died == [broadcast_id]
    assert failures == Counter({"WorkerKilled": 1})  # the redelivery found every recipient settled
    _assert_broadcast_exact(env, broadcast_id, contacts)


def test_dynamodb_throttling_in_the_broadcast_worker_sends_each_recipient_once(env: SendingEnv) -> None:
    broadcast_id, contacts = _broadcast(env, 6)
    with inject_aws_faults() as faults:
        faults.fail("dynamodb", DYNAMODB_WRITES, kind="throttle", every=4, limit=5)
        faults.fail("dynamodb", DYNAMODB_WRITES, kind="5xx", calls={3, 8}, persist=1)
        _, failed = drain_with_redelivery()
    assert faults.faulted_calls >= 5
    assert failed >= 1
    _assert_broadcast_exact(env, broadcast_id, contacts)
    FAULT_TOTALS["aws"] += faults.injected


def test_message_api_under_dynamodb_throttling_sends_once_per_key(env: SendingEnv) -> None:
    """The main table throttled past botocore's retries: the request fails (5xx), the key stays usable, and
    the client's retry with it sends once. (The main table holds the outbox item, the send's only
    idempotency record: a failed attempt gives its send lease back, so the retry need not wait, unless
    that write failed too: then the retry waits for the lease or answers 409 idempotency-key-in-progress.)"""
    contacts = [env.contact(f"+62812000014{i:02d}") for i in range(4)]
    with inject_aws_faults() as faults:
        faults.fail("dynamodb", DYNAMODB_WRITES, kind="throttle", every=3, limit=4, tables={get_settings().table_name})
        statuses = []
        for i, contact in enumerate(contacts):
            body = {"contact_id": contact.id, "type": "text", "text": {"body": f"throttled {i}"}}
            for _attempt in range(6):  # the client retries a 5xx with the same key
                response = env.post_message(body, f"throttled-{i}", user=AGENT)
                if response.status < 500:
                    break
            statuses.append(response.status)
    assert statuses == [201] * len(contacts)
    assert faults.faulted_calls >= 1
    sent = Counter(s["to"] for s in env.sends())
    assert sent == Counter(c.wa_id for c in contacts), "a message was sent twice or not at all"
    FAULT_TOTALS["aws"] += faults.injected
    FAULT_TOTALS["checked"] += len(contacts)


@pytest.fixture(autouse=True, scope="module")
def _report_figures() -> Iterator[None]:
    yield
    report_totals(__name__, dict(FAULT_TOTALS))


def test_each_write_of_a_send_throttled_in_turn_still_sends_once(env: SendingEnv) -> None:
    """The n-th main-table write of a send fails past botocore's retries, for every n along the send path
    (outbox item, wamid record, ...): the client's retry with the same key never sends twice."""
    table = get_settings().table_name
    positions = range(1, 7)
    contacts = [env.contact(f"+62812000015{n:02d}") for n in positions]
    injected = 0
    for n, contact in zip(positions, contacts, strict=True):
        body = {"contact_id": contact.id, "type": "text", "text": {"body": f"write {n}"}}
        with inject_aws_faults() as faults:
            faults.fail("dynamodb", DYNAMODB_WRITES, kind="throttle", calls={n}, tables={table})
            for _attempt in range(4):
                response = env.post_message(body, f"write-{n}")
                if response.status < 500:
                    break
        assert response.status == 201, (n, response.body)
        injected += faults.injected
    sent = Counter(s["to"] for s in env.sends())
    assert sent == Counter(c.wa_id for c in contacts), "a message was sent twice or not at all"
    FAULT_TOTALS["aws"] += injected
    FAULT_TOTALS["checked"] += len(contacts)
