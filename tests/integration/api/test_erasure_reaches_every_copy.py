"""Erasure reaches the copies outside the main table's conversation (issue 16): the results of API
sends (kept only as the outbox message itself: a retry with the key is answered from it, so erasing
the message leaves no stored response), and billing records, which stay 7 years but carry no wamid
(a wamid encodes the phone). Each test looks at the stored items themselves, not at the API."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from relasify.data import models as m
from relasify.data.contacts import contact_repository
from relasify.settings import get_settings

from tests.integration.api.test_send_support import (
    AGENT,
    OWNER,
    SendingEnv,
    sending_environment,
    template_body,
)
from tests.support.api import ApiClient

ADMIN = "admin@example.com"
PHONE = "+6281299887766"
WA_ID = "6281299887766"
NAME = "Dewi Lestari Kusuma"
BYSTANDER_PHONE = "+6281311112222"


@pytest.fixture
def env(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[SendingEnv]:
    for sending in sending_environment(api, monkeypatch):
        api.add_member(sending.ws, OWNER, ADMIN, "admin")
        yield sending


def _scan(table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in boto3.client("dynamodb").get_paginator("scan").paginate(TableName=table):
        items += page["Items"]
    return items


def _wait_for_billing(env: SendingEnv, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        billing = [i for i in _scan(get_settings().table_name) if i["PK"]["S"].startswith(f"WS#{env.ws}#BILLING#")]
        if len(billing) >= count or time.monotonic() > deadline:
            return billing
        time.sleep(0.05)


def test_erasure_leaves_no_stored_result_of_sends_to_the_contact_and_billing_keeps_no_wamid(
    env: SendingEnv,
) -> None:
    env.approved_template()
    contact = env.contact(PHONE, name=NAME, inbound_hours_ago=1.0)
    bystander = env.contact(BYSTANDER_PHONE, name="Rudi", inbound_hours_ago=1.0)
    by_id = env.post_message(template_body(contact.id, params=(NAME,)), "erase-by-id")
    assert by_id.status == 201, by_id.body
    by_phone = env.post_message(
        {"to": PHONE, "type": "text", "text": {"body": f"Halo {NAME}, pesanan 4471 dikirim"}}, "erase-by-phone"
    )
    assert by_phone.status == 201, by_phone.body
    assert by_phone.json["contact_id"] == contact.id
    kept = env.post_message(template_body(bystander.id, params=("Rudi",)), "keep-bystander")
    assert kept.status == 201, kept.body
    wamids = [by_id.json["wamid"], by_phone.json["wamid"]]
    ids = [by_id.json["id"], by_phone.json["id"]]

    billing_before = _wait_for_billing(env, 2)  # the two templates' billable statuses (the text is free)
    assert len(billing_before) == 2

    erased = env.api.post(f"/v1/workspaces/{env.ws}/contacts/{contact.id}/erase", as_user=ADMIN)
    assert erased.status == 200, erased.body

    for message_id in ids:
        assert env.api.get(f"/v1/workspaces/{env.ws}/messages/{message_id}", as_user=AGENT).status == 404
    # The bystander's send stays retryable: its retry is answered from its message, nothing is sent.
    sends = len(env.sends())
    kept_again = env.post_message(template_body(bystander.id, params=("Rudi",)), "keep-bystander")
    assert kept_again.status == 201, kept_again.body
    assert (kept_again.json["id"], kept_again.json["wamid"]) == (kept.json["id"], kept.json["wamid"])
    assert len(env.sends()) == sends
    # A retry of an erased send is a new request now: it does not hand back the erased message.
    retry = env.post_message(template_body(contact.id, params=(NAME,)), "erase-by-id")
    assert retry.status == 404, retry.body
    retry_by_phone = env.post_message({"to": PHONE, "type": "text", "text": {"body": "x"}}, "erase-by-phone")
    assert retry_by_phone.status == 409, retry_by_phone.body  # a new number now: no service window
    assert retry_by_phone.json["type"].endswith("outside-service-window")

    billing = []
    for item in _scan(get_settings().table_name):
        text = json.dumps(item)
        for needle in (PHONE, WA_ID, NAME, *wamids, "pesanan 4471"):
            assert needle not in text, (needle, item["PK"], item["SK"])
        if item["PK"]["S"].startswith(f"WS#{env.ws}#BILLING#"):
            billing.append(item)
    # Billing records stay (7 years) with what billing needs, keyed by the wamid's digest.
    assert len(billing) == 2
    assert {i["SK"]["S"] for i in billing} == {m.billing_sk(by_id.json["wamid"]), m.billing_sk(kept.json["wamid"])}
    for item in billing:
        assert "wamid" not in item
        assert (item["category"]["S"], item["pricing_model"]["S"], item["type"]["S"]) == ("utility", "PMP", "regular")
        assert item["billable"]["BOOL"] is True
        assert item["message_id"]["S"] in (by_id.json["id"], kept.json["id"])
    assert contact_repository().get(env.ws, bystander.id) is not None
    assert env.api.get(f"/v1/workspaces/{env.ws}/messages/{kept.json['id']}", as_user=AGENT).status == 200


# --- dead-letter queues ------------------------------------------------------------------------------------

BYSTANDER_WA_ID = "6281311112222"


def _delivery(value: dict[str, Any]) -> dict[str, Any]:
    value = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "555000111"}, **value}
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102", "changes": [{"field": "messages", "value": value}]}],
    }


def _inbound_delivery(wa_id: str, name: str, wamid: str, text: str) -> dict[str, Any]:
    return _delivery(
        {
            "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
            "messages": [
                {"from": wa_id, "id": wamid, "timestamp": "1767225600", "type": "text", "text": {"body": text}}
            ],
        }
    )


def _status(wa_id: str, wamid: str) -> dict[str, Any]:
    return {"id": wamid, "status": "read", "timestamp": "1767225700", "recipient_id": wa_id}


def _drain(queue_url: str) -> list[str]:
    sqs = boto3.client("sqs")
    bodies = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return sorted(bodies)
        for message in got:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def test_erasure_removes_the_person_from_every_dead_letter_queue_and_keeps_everyone_else(api: ApiClient) -> None:
    from relasify import clock
    from relasify.data import messages as message_store
    from relasify.data import webhook_inbox
    from relasify.data.records import NewContact

    ws = api.create_workspace(OWNER)
    api.add_member(ws, OWNER, ADMIN, "admin")
    repo = contact_repository()
    contact = repo.create(ws, NewContact(phone=PHONE, wa_id=WA_ID, name=NAME))
    bystander = repo.create(ws, NewContact(phone=BYSTANDER_PHONE, wa_id=BYSTANDER_WA_ID, name="Rudi"))
    mine, theirs = (
        message_store.record_inbound(
            message_store.NewInboundMessage(
                ws=ws, contact_id=c.id, wamid=w, type="text", content={"body": "x"}, message_at=clock.now()
            )
        )
        for c, w in ((contact, "wamid.MINE"), (bystander, "wamid.THEIRS"))
    )
    assert mine is not None
    assert theirs is not None
    settings = get_settings()
    sqs = boto3.client("sqs")
    s3 = boto3.client("s3")
    at = clock.now()

    # Webhook DLQ: the person's inbound message (v2 inline, no S3 copy: moved by SQS itself); a delivery
    # of statuses of both people (a v2 pointer, as the processor parks a last try); a delivery about
    # the bystander only (v1, still in flight from before v2: in S3 and inline).
    only_mine = json.dumps(_inbound_delivery(WA_ID, NAME, "wamid.LATE", "rahasia pesanan 4471")).encode()
    both = json.dumps(_delivery({"statuses": [_status(WA_ID, "wamid.MINE"), _status(BYSTANDER_WA_ID, "wamid.THEIRS")]}))
    only_theirs = json.dumps(_inbound_delivery(BYSTANDER_WA_ID, "Rudi", "wamid.RUDI", "halo")).encode()
    queued: dict[str, tuple[str, str | None]] = {}
    inline = webhook_inbox.inline_message(only_mine)
    assert inline is not None
    queued["only_mine"] = (inline, None)
    reference = webhook_inbox.store_raw(both.encode(), at, settings.media_bucket)
    queued["both"] = (webhook_inbox.pointer_message(reference), reference["key"])
    reference = webhook_inbox.store_raw(only_theirs, at, settings.media_bucket)
    queued["only_theirs"] = (json.dumps({**reference, "v": 1, "body": only_theirs.decode()}), reference["key"])
    for body, _ in queued.values():
        sqs.send_message(QueueUrl=settings.webhook_dlq_url, MessageBody=body)
    media_mine = json.dumps({"v": 1, "ws": ws, "message_id": mine.id, "media_id": "m1"})
    media_theirs = json.dumps({"v": 1, "ws": ws, "message_id": theirs.id, "media_id": "m2"})
    broadcast_job = {"kind": "send", "ws": ws, "broadcast_id": "b1", "contact_ids": [contact.id, bystander.id]}
    import_job = json.dumps({"ws": ws, "import_id": "imp1"})
    for url, body in (
        (settings.media_dlq_url, media_mine),
        (settings.media_dlq_url, media_theirs),
        (settings.broadcast_dlq_url, json.dumps(broadcast_job, separators=(",", ":"))),
        (settings.import_dlq_url, import_job),
    ):
        sqs.send_message(QueueUrl=url, MessageBody=body)

    erased = api.post(f"/v1/workspaces/{ws}/contacts/{contact.id}/erase", as_user=ADMIN)
    assert erased.status == 200, erased.body

    needles = [PHONE, WA_ID, NAME, "rahasia", "wamid.MINE", "wamid.LATE", contact.id, mine.id]
    # Kept messages are visible again at once (released, not left hidden).
    webhook_bodies = _drain(settings.webhook_dlq_url)
    assert len(webhook_bodies) == 2
    assert queued["only_theirs"][0] in webhook_bodies
    (rewritten,) = [b for b in webhook_bodies if b != queued["only_theirs"][0]]
    rewritten_raw = webhook_inbox.read_queued(rewritten).raw
    value = json.loads(rewritten_raw)["entry"][0]["changes"][0]["value"]
    assert value["statuses"] == [_status(BYSTANDER_WA_ID, "wamid.THEIRS")]  # the bystander's event survives
    assert _drain(settings.media_dlq_url) == [media_theirs]
    assert _drain(settings.broadcast_dlq_url) == [
        json.dumps({**broadcast_job, "contact_ids": [bystander.id]}, separators=(",", ":"))
    ]
    assert _drain(settings.import_dlq_url) == [import_job]

    # The bucket: the person's raw payloads are gone, the bystander's and the rewritten copy stay.
    objects = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.media_bucket, Prefix="raw-webhooks/"):
        for obj in page.get("Contents") or []:
            objects[obj["Key"]] = s3.get_object(Bucket=settings.media_bucket, Key=obj["Key"])["Body"].read()
    assert queued["both"][1] not in objects
    assert queued["only_theirs"][1] in objects
    assert json.loads(rewritten)["key"] in objects
    assert "body" not in json.loads(rewritten)  # a pointer: the rewritten copy keeps its 90-day window
    assert len(objects) == 2  # the bystander's v1 copy and the rewritten copy
    for text in [*webhook_bodies, rewritten_raw.decode(), *(o.decode() for o in objects.values())]:
        for needle in needles:
            assert needle not in text, needle

    audit = api.get(f"/v1/workspaces/{ws}/audit", as_user=ADMIN).json["items"]
    (entry,) = [e for e in audit if e["action"] == "contact.erased"]
    assert entry["details"]["dead_letters_deleted"] == 2  # the inline delivery, the media job
    assert entry["details"]["dead_letters_rewritten"] == 2  # the status delivery, the broadcast job
