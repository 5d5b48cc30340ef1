"""Fault injection on the webhook path: DynamoDB throttling, 5xx and timeouts while the processor applies
queued webhooks, SQS records delivered twice, and a processor killed mid-batch. Recovery is SQS's: the
failed records (partial batch response) or the whole batch (a dead process) come back and are processed
again. Afterwards every effect exists exactly once: the faulted workspace's items, counted by kind, equal
those of a twin workspace that got the same deliveries without faults."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from relasify.data import messages as message_store
from relasify.data import outbound_messages
from relasify.data.contacts import contact_repository
from relasify.data.identity import identity_repository
from relasify.data.records import NewContact

from tests.integration import test_webhook_ingestion as ingestion
from tests.integration.test_webhook_ingestion import PHONE_ID, WS, FakeContext, WebhookEnv, aws_client, sqs_record
from tests.support.faults import DYNAMODB_READS, DYNAMODB_WRITES, WorkerKilled, inject_aws_faults, report_totals

env = ingestion.env  # the receiver/processor environment fixture, connected to WS
WABA = "102345678901234"
TWIN_WS = "ws_twin"
TWIN_PHONE_ID = "109876543219999"
BASE_TS = 1767225600  # 2026-01-01T00:00:00Z, two hours before the tests' clock
CUSTOMERS = 4
MAX_REDELIVERIES = 30


def _change(phone_id: str, display: str, **parts: Any) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": display, "phone_number_id": phone_id},
        **parts,
    }
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA, "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(payload).encode()


def deliveries(phone_id: str, display: str, prefix: str) -> list[bytes]:
    """Inbound texts from CUSTOMERS people (one with an opt-out keyword), then the statuses of an outbound
    message (billable sent, delivered, read), each status its own delivery."""
    bodies = []
    for i in range(CUSTOMERS):
        wa_id = f"62811000{i:05d}"
        text = "STOP" if i == 0 else f"Pesan nomor {i}"
        message = {
            "from": wa_id,
            "id": f"wamid.{prefix}IN{i}",
            "timestamp": str(BASE_TS + i),
            "type": "text",
            "text": {"body": text},
        }
        bodies.append(
            _change(
                phone_id,
                display,
                contacts=[{"profile": {"name": f"Pelanggan {i}"}, "wa_id": wa_id}],
                messages=[message],
            )
        )
    for offset, status in enumerate(("sent", "delivered", "read"), start=100):
        item: dict[str, Any] = {
            "id": f"wamid.{prefix}OUT",
            "status": status,
            "timestamp": str(BASE_TS + offset),
            "recipient_id": "6281100000001",
        }
        if status == "sent":
            item["pricing"] = {"billable": True, "pricing_model": "PMP", "type": "regular", "category": "utility"}
        bodies.append(_change(phone_id, display, statuses=[item]))
    return bodies


def _outbound(ws: str, prefix: str) -> None:
    contact, _ = contact_repository().create_or_get(ws, NewContact(phone="+6281100000001", wa_id="6281100000001"))
    outbound_messages.record_outbound(ws, contact.id, "template", {"name": "promo"}, wamid=f"wamid.{prefix}OUT")


@pytest.fixture
def twins(env: WebhookEnv) -> WebhookEnv:
    identity_repository().put_whatsapp_connection(
        TWIN_WS,
        waba_id=WABA,
        phone_number_id=TWIN_PHONE_ID,
        encrypted_access_token="ciphertext",
        display_phone_number="6281234509999",
    )
    _outbound(WS, "MAIN")
    _outbound(TWIN_WS, "TWIN")
    return env


def queue_records(webhooks: WebhookEnv, bodies: list[bytes]) -> list[dict[str, Any]]:
    for body in bodies:
        assert webhooks.post(body)["statusCode"] == 200
    return webhooks.drain(webhooks.webhook_queue)


def run_until_drained(webhooks: WebhookEnv, records: list[dict[str, Any]]) -> tuple[int, int]:
    """SQS's side: failed records come back (a dead process returns the whole batch) until none fail.
    Returns (invocations, records that failed at least once)."""
    pending = records
    invocations = 0
    failed_ids: set[str] = set()
    while pending:
        invocations += 1
        assert invocations <= MAX_REDELIVERIES, "records never succeeded"
        try:
            result = webhooks.processor.handler({"Records": pending}, FakeContext())
        except (WorkerKilled, BatchProcessingError):
            # A dead process, or an invocation error (Powertools raises when every record failed): the
            # visibility timeout passes and the whole batch is delivered again.
            failed_ids.update(r["messageId"] for r in pending)
            continue
        failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
        failed_ids |= failed
        pending = [r for r in pending if r["messageId"] in failed]
    return invocations, len(failed_ids)


def _ws_of(item_text: str) -> str | None:
    if TWIN_WS in item_text or "TWIN" in item_text or TWIN_PHONE_ID in item_text:
        return "twin"
    if WS in item_text or "MAIN" in item_text or PHONE_ID in item_text:
        return "main"
    return None


def _shape(item: dict[str, Any]) -> str:
    keys = f"{item['PK']['S']}|{item['SK']['S']}"
    for marker in (TWIN_WS, WS, "TWIN", "MAIN", TWIN_PHONE_ID, PHONE_ID):
        keys = keys.replace(marker, "<ws>")
    if item["PK"]["S"].startswith("CHG#"):  # change-feed events: by type
        keys += "|" + item["event_type"]["S"]
    return re.sub(r"[0-9A-Za-z]{8,}", "*", keys)


# One `message.updated` event per status that moves a message forward: statuses redelivered in
# another order (read before delivered) move it fewer times, never more.
MESSAGE_UPDATED = "CHG#<ws>|*|message.updated"


def effects_by_kind() -> dict[str | None, Counter[str]]:
    """Every table item, by workspace (main, twin, or neither) and kind (its key with ids blanked)."""
    items = aws_client("dynamodb").scan(TableName="relasify-test-table")["Items"]
    grouped: dict[str | None, Counter[str]] = {"main": Counter(), "twin": Counter(), None: Counter()}
    for item in items:
        grouped[_ws_of(json.dumps(item))][_shape(item)] += 1
    return grouped


def assert_exactly_once(label: str) -> Counter[str]:
    grouped = effects_by_kind()
    main, twin = Counter(grouped["main"]), Counter(grouped["twin"])
    main_updates, twin_updates = main.pop(MESSAGE_UPDATED, 0), twin.pop(MESSAGE_UPDATED, 0)
    assert 1 <= main_updates <= twin_updates, (label, main_updates, twin_updates)
    assert main == twin, f"{label}: faulted workspace differs from its fault-free twin: {main - twin} / {twin - main}"
    contacts = contact_repository()
    assert sum(n for shape, n in main.items() if shape.startswith("WS#<ws>|CONTACT#")) == CUSTOMERS
    for i in range(CUSTOMERS):
        assert contacts.find_by_phone(WS, f"+62811000{i:05d}") is not None
        assert message_store.get_inbound(WS, f"wamid.MAININ{i}") is not None
    outbound = message_store.get_by_wamid("wamid.MAINOUT")
    assert outbound is not None
    assert outbound.status == "read"
    opted_out = contacts.find_by_phone(WS, "+6281100000000")
    assert opted_out is not None
    assert opted_out.consent.status == "opted_out"
    return grouped["main"]


def _process_twin(webhooks: WebhookEnv) -> None:
    records = queue_records(webhooks, deliveries(TWIN_PHONE_ID, "6281234509999", "TWIN"))
    assert run_until_drained(webhooks, records) == (1, 0)


@pytest.mark.parametrize(
    ("kind", "operations"),
    [("throttle", DYNAMODB_WRITES), ("5xx", DYNAMODB_WRITES), ("5xx", DYNAMODB_READS), ("timeout", DYNAMODB_WRITES)],
    ids=["throttled-writes", "5xx-writes", "5xx-reads", "timeout-writes"],
)
def test_dynamodb_faults_during_processing_are_redelivered_and_applied_once(
    twins: WebhookEnv, kind: str, operations: frozenset[str]
) -> None:
    _process_twin(twins)
    records = queue_records(twins, deliveries(PHONE_ID, "6281234500000", "MAIN"))
    with inject_aws_faults() as faults:
        # every 4th matching call fails every attempt botocore makes, so the record fails
        faults.fail("dynamodb", operations, kind=kind, every=4, limit=5)
        # and a few single-attempt faults that botocore's own retry absorbs
        faults.fail("dynamodb", operations, kind=kind, calls={2, 9, 17}, persist=1)
        invocations, failed = run_until_drained(twins, records)
    assert faults.faulted_calls >= 5
    assert failed >= 1, "no record failed: the faults did not reach our recovery"
    assert invocations >= 2
    assert_exactly_once(kind)
    FAULT_TOTALS["faults"] += faults.injected
    FAULT_TOTALS["checked"] += len(records) + sum(effects_by_kind()["main"].values())


def test_every_record_delivered_twice_has_one_effect(twins: WebhookEnv) -> None:
    _process_twin(twins)
    records = queue_records(twins, deliveries(PHONE_ID, "6281234500000", "MAIN"))
    doubled = [*records, *[sqs_record(f"again-{r['messageId']}", r["body"]) for r in records]]
    assert run_until_drained(twins, doubled) == (1, 0)
    once = assert_exactly_once("delivered twice in one batch")
    assert run_until_drained(twins, records) == (1, 0)  # and again, in a later batch
    assert effects_by_kind()["main"] == once


@pytest.mark.parametrize("writes_before_kill", [1, 9])
def test_processor_killed_mid_batch_then_rerun_loses_and_duplicates_nothing(
    twins: WebhookEnv, writes_before_kill: int
) -> None:
    _process_twin(twins)
    records = queue_records(twins, deliveries(PHONE_ID, "6281234500000", "MAIN"))
    with inject_aws_faults() as faults:
        faults.kill_after_writes(writes_before_kill)
        invocations, failed = run_until_drained(twins, records)
    assert faults.kills == 1
    assert invocations == 2
    assert failed == len(records)
    assert_exactly_once(f"killed after {writes_before_kill} writes")
    FAULT_TOTALS["faults"] += faults.injected
    FAULT_TOTALS["checked"] += len(records)


FAULT_TOTALS: Counter[str] = Counter()


@pytest.fixture(autouse=True, scope="module")
def _report_figures() -> Iterator[None]:
    yield
    report_totals(__name__, dict(FAULT_TOTALS))
