"""Erasure reaches the copies outside the main table's conversation (issue 16): the stored results of
API sends (Powertools idempotency records, which hold the sent message), and billing records, which
stay 7 years but carry no wamid (a wamid encodes the phone). Each test looks at the stored items
themselves, not at the API."""

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


def test_erasure_deletes_the_idempotency_records_of_sends_to_the_contact_and_billing_keeps_no_wamid(
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

    idempotency_table = get_settings().idempotency_table_name
    records = _scan(idempotency_table)
    assert len(records) == 3
    assert sum(NAME in json.dumps(r) for r in records) == 2  # the stored responses hold the message
    billing_before = _wait_for_billing(env, 2)  # the two templates' billable statuses (the text is free)
    assert len(billing_before) == 2

    erased = env.api.post(f"/v1/workspaces/{env.ws}/contacts/{contact.id}/erase", as_user=ADMIN)
    assert erased.status == 200, erased.body

    needles = [PHONE, WA_ID, NAME, contact.id, *wamids, *ids, "pesanan 4471"]
    remaining = _scan(idempotency_table)
    assert len(remaining) == 1  # the bystander's send stays retryable
    assert kept.json["id"] in json.dumps(remaining[0])
    for record in remaining:
        for needle in needles:
            assert needle not in json.dumps(record), (needle, record["id"])
    # A retry of an erased send is a new request now: it does not hand back the erased message.
    retry = env.post_message(template_body(contact.id, params=(NAME,)), "erase-by-id")
    assert retry.status == 404, retry.body

    billing = []
    for item in _scan(get_settings().table_name):
        text = json.dumps(item)
        for needle in (PHONE, WA_ID, NAME, *wamids):
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
