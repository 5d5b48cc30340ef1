"""Outgoing webhooks (SPEC 5c) from the attacker's and the subscriber's side: subscriptions over HTTP,
then the change feed as the stream consumer sees it fanned out and delivered by the worker's code to a
real HTTP receiver on 127.0.0.1 (the local setting on), signatures verified with the shown secret.

The stream itself is the local stack's (tests/e2e/test_outgoing_webhooks_e2e.py); here `_pump` plays
it: it hands the workspace's new change-feed items to `fan_out`, then the queued jobs to the worker."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from relasify import clock
from relasify.data import changes as feed
from relasify.data import models as m
from relasify.services import webhook_delivery
from relasify.services.webhook_signing import HEADER, verify
from relasify.settings import Settings, get_settings

from tests.support.api import ApiClient
from tests.support.webhook_receiver import WebhookReceiver

OWNER = "owner@example.com"
PUBLIC_IP = "93.184.216.34"


@pytest.fixture
def local_http(aws_resources: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTGOING_WEBHOOKS_ALLOW_LOCAL_HTTP", "true")
    monkeypatch.setenv("OUTGOING_WEBHOOK_FIRST_RETRY_SECONDS", "1")
    get_settings.cache_clear()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def ws(api: ApiClient) -> str:
    return api.create_workspace(OWNER)


class Pump:
    """The stream consumer and the worker, in-process: each change-feed item is fanned out once."""

    def __init__(self, ws: str) -> None:
        self.ws = ws
        self.seen: set[str] = set()
        self.outcomes: list[str] = []

    def new_events(self) -> list[feed.ChangeEvent]:
        items = [
            *feed.ChangeEventModel.query(feed.change_pk(self.ws), consistent_read=True),
            *feed.ChangeEventModel.query(feed.contact_change_pk(self.ws), consistent_read=True),
        ]
        fresh = [feed.from_item(i) for i in items if i.seq not in self.seen]
        self.seen.update(e.seq for e in fresh)
        return sorted(fresh, key=lambda e: e.seq)

    def fan_out(self) -> int:
        return webhook_delivery.fan_out(self.new_events())

    def queued(self, wait_seconds: int = 0) -> list[str]:
        sqs, url = boto3.client("sqs"), get_settings().outgoing_webhook_queue_url
        bodies = []
        deadline = time.monotonic() + wait_seconds
        while True:
            answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            for message in answer.get("Messages") or []:
                bodies.append(message["Body"])
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            if answer.get("Messages"):
                continue
            if bodies or time.monotonic() >= deadline:
                return bodies
            time.sleep(0.2)

    def deliver(self, bodies: list[str]) -> list[str | Exception]:
        outcomes = webhook_delivery.deliver_all(bodies)
        self.outcomes += [str(o) for o in outcomes]
        return outcomes

    def run(self) -> list[str | Exception]:
        self.fan_out()
        return self.deliver(self.queued())


def _subscribe(api: ApiClient, ws: str, url: str, events: list[str]) -> dict[str, Any]:
    created = api.post(f"/v1/workspaces/{ws}/webhooks", {"url": url, "events": events}, as_user=OWNER)
    assert created.status == 201, created.body
    return created.json


def _deliveries(api: ApiClient, ws: str, hook_id: str) -> list[dict[str, Any]]:
    page = api.get(f"/v1/workspaces/{ws}/webhooks/{hook_id}/deliveries", as_user=OWNER)
    assert page.status == 200, page.body
    return page.json["items"]


# --- subscriptions -------------------------------------------------------------------------------------


def test_secret_is_shown_once_and_stored_only_encrypted(api: ApiClient, ws: str, local_http: None) -> None:
    hook = _subscribe(api, ws, "http://127.0.0.1:9/hooks", ["message.created", "contact.created"])
    secret = hook["secret"]
    assert secret.startswith("whsec_")
    assert len(secret) > 30
    assert hook["enabled"] is True
    assert hook["events"] == ["message.created", "contact.created"]

    one = api.get(f"/v1/workspaces/{ws}/webhooks/{hook['id']}", as_user=OWNER)
    listed = api.get(f"/v1/workspaces/{ws}/webhooks", as_user=OWNER)
    assert one.status == 200
    assert listed.status == 200
    assert "secret" not in one.json
    assert secret.encode() not in one.body
    assert secret.encode() not in listed.body
    assert [h["id"] for h in listed.json["items"]] == [hook["id"]]

    raw = boto3.client("dynamodb").get_item(
        TableName=get_settings().table_name, Key={"PK": {"S": m.ws_pk(ws)}, "SK": {"S": f"WEBHOOK#{hook['id']}"}}
    )["Item"]
    assert secret not in json.dumps(raw)
    assert raw["secret_ciphertext"]["S"]

    assert api.delete(f"/v1/workspaces/{ws}/webhooks/{hook['id']}", as_user=OWNER).status == 204
    assert api.get(f"/v1/workspaces/{ws}/webhooks/{hook['id']}", as_user=OWNER).status == 404


@pytest.mark.parametrize(
    ("url", "resolves_to"),
    [
        ("http://hooks.example.com/relasify", [PUBLIC_IP]),  # not https (cloud)
        ("http://127.0.0.1:8080/hooks", None),  # loopback http: only with the local setting
        ("https://127.0.0.1/hooks", None),
        ("https://10.0.0.5/hooks", None),
        ("https://192.168.1.10/hooks", None),
        ("https://100.64.0.1/hooks", None),  # carrier-grade NAT
        ("https://169.254.169.254/latest/meta-data/", None),  # the instance metadata service
        ("https://[fe80::1]/hooks", None),
        ("https://[::1]/hooks", None),
        ("https://[::ffff:10.0.0.1]/hooks", None),  # IPv4-mapped private
        ("https://[fd00:ec2::254]/latest/meta-data/", None),  # EC2 metadata over IPv6
        ("https://localhost/hooks", None),
        ("https://metadata.google.internal/computeMetadata/v1/", None),
        ("https://user:password@hooks.example.com/", [PUBLIC_IP]),
        ("https://rebind.example.com/hooks", ["10.1.2.3"]),  # a name resolving to a private address
        ("https://mixed.example.com/hooks", [PUBLIC_IP, "169.254.169.254"]),
    ],
)
def test_non_public_or_non_https_urls_are_refused(
    api: ApiClient, ws: str, monkeypatch: pytest.MonkeyPatch, url: str, resolves_to: list[str] | None
) -> None:
    monkeypatch.setattr("relasify.data.webhook_http.resolve", lambda host, port: resolves_to or [PUBLIC_IP])
    refused = api.post(f"/v1/workspaces/{ws}/webhooks", {"url": url, "events": ["message.created"]}, as_user=OWNER)
    assert refused.status == 422, refused.body
    assert refused.json["errors"][0]["location"] == "body/url"
    assert api.get(f"/v1/workspaces/{ws}/webhooks", as_user=OWNER).json["items"] == []


def test_a_public_https_url_is_accepted(api: ApiClient, ws: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("relasify.data.webhook_http.resolve", lambda host, port: [PUBLIC_IP])
    _subscribe(api, ws, "https://hooks.example.com/relasify", ["contact.created"])


def test_unknown_event_types_are_refused(api: ApiClient, ws: str) -> None:
    bad = api.post(
        f"/v1/workspaces/{ws}/webhooks", {"url": "https://x.example.com", "events": ["contact.erased"]}, as_user=OWNER
    )
    assert bad.status == 422


# --- delivery ------------------------------------------------------------------------------------------


def test_delivery_is_signed_and_a_500_is_retried_with_the_same_event_id(
    api: ApiClient, ws: str, local_http: None, receiver: WebhookReceiver
) -> None:
    receiver.statuses = [500]
    hook = _subscribe(api, ws, receiver.url, ["contact.created"])
    pump = Pump(ws)
    contact = api.post(f"/v1/workspaces/{ws}/contacts", {"phone": "+6281234567890", "name": "Budi"}, as_user=OWNER)
    assert contact.status == 201

    assert pump.run() == ["retrying"]
    first = receiver.wait_for(1, timeout=5)[0]
    assert verify(hook["secret"], first.headers[HEADER.lower()], first.body, now=clock.epoch())
    assert not verify("whsec_other", first.headers[HEADER.lower()], first.body, now=clock.epoch())
    event = json.loads(first.body)
    assert set(event) == {"id", "type", "created_at", "workspace_id", "data"}
    assert event["type"] == "contact.created"
    assert event["workspace_id"] == ws
    assert event["id"].startswith("evt_")
    assert event["data"] == api.get(f"/v1/workspaces/{ws}/contacts/{contact.json['id']}", as_user=OWNER).json

    attempts = _deliveries(api, ws, hook["id"])
    assert [(a["attempt"], a["outcome"], a["status_code"]) for a in attempts] == [(1, "retrying", 500)]
    assert attempts[0]["next_retry_at"] is not None
    assert attempts[0]["event_id"] == event["id"]
    assert "Budi" not in json.dumps(attempts)  # the log holds no content

    # The retry job is delayed (1 s here): not there at once, then delivered with the same id.
    assert pump.queued() == []
    assert pump.deliver(pump.queued(wait_seconds=5)) == ["delivered"]
    second = receiver.wait_for(2, timeout=5)[1]
    assert json.loads(second.body)["id"] == event["id"]
    assert verify(hook["secret"], second.headers[HEADER.lower()], second.body, now=clock.epoch())
    attempts = _deliveries(api, ws, hook["id"])
    assert [(a["attempt"], a["outcome"], a["status_code"]) for a in attempts] == [
        (2, "delivered", 200),
        (1, "retrying", 500),
    ]


def test_only_subscribed_types_of_the_own_workspace_are_fanned_out(
    api: ApiClient, ws: str, local_http: None, receiver: WebhookReceiver
) -> None:
    _subscribe(api, ws, receiver.url, ["contact.opted_out"])
    other_ws = api.create_workspace("other@example.com", name="Other")
    pump, other_pump = Pump(ws), Pump(other_ws)
    contact = api.post(f"/v1/workspaces/{ws}/contacts", {"phone": "+6281234567891"}, as_user=OWNER).json
    api.post(f"/v1/workspaces/{other_ws}/contacts", {"phone": "+6281234567891"}, as_user="other@example.com")
    assert pump.fan_out() == 0
    assert other_pump.fan_out() == 0
    consent = api.post(f"/v1/workspaces/{ws}/contacts/{contact['id']}/consent", {"status": "opted_out"}, as_user=OWNER)
    assert consent.status == 200, consent.body
    assert pump.run() == ["delivered"]
    received = receiver.wait_for(1, timeout=5)
    assert [json.loads(r.body)["type"] for r in received] == ["contact.opted_out"]
    assert json.loads(received[0].body)["data"]["consent"]["status"] == "opted_out"


def test_endpoint_failing_for_24_hours_is_disabled_then_re_enabled_by_an_admin(
    api: ApiClient, ws: str, local_http: None, receiver: WebhookReceiver
) -> None:
    receiver.statuses = [503]
    hook = _subscribe(api, ws, receiver.url, ["contact.created"])
    pump = Pump(ws)
    api.post(f"/v1/workspaces/{ws}/contacts", {"phone": "+6281234567892"}, as_user=OWNER)
    pump.fan_out()
    jobs = pump.queued()
    later = feed.seq_time(json.loads(jobs[0])["seq"]) + timedelta(hours=24, seconds=1)  # the event is 24 h old
    clock.set_clock(lambda: later)
    try:
        assert pump.deliver(jobs) == ["failed"]
    finally:
        clock.set_clock(None)  # ids follow the clock again (relasify.data.ids: a step back over 1 s)
    assert pump.queued(wait_seconds=2) == []  # no retry after 24 h
    disabled = api.get(f"/v1/workspaces/{ws}/webhooks/{hook['id']}", as_user=OWNER).json
    assert disabled["enabled"] is False
    assert disabled["disabled_reason"] == "failing for 24 hours"
    assert _deliveries(api, ws, hook["id"])[0]["outcome"] == "failed"

    api.post(f"/v1/workspaces/{ws}/contacts", {"phone": "+6281234567893"}, as_user=OWNER)
    assert pump.fan_out() == 0  # a disabled endpoint gets nothing

    enabled = api.patch(f"/v1/workspaces/{ws}/webhooks/{hook['id']}", {"enabled": True}, as_user=OWNER)
    assert enabled.status == 200
    assert enabled.json["enabled"] is True
    assert enabled.json["disabled_reason"] is None
    api.post(f"/v1/workspaces/{ws}/contacts", {"phone": "+6281234567894"}, as_user=OWNER)
    assert pump.run() == ["delivered"]
    assert len(receiver.wait_for(2, timeout=5)) == 2


def test_retry_delays_double_up_to_sqs_maximum(aws_resources: Settings) -> None:
    assert [webhook_delivery.retry_delay_seconds(n) for n in range(1, 9)] == [30, 60, 120, 240, 480, 900, 900, 900]


def test_dns_rebinding_is_refused_at_delivery_and_nothing_is_sent(
    api: ApiClient, ws: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("relasify.data.webhook_http.resolve", lambda host, port: [PUBLIC_IP])
    hook = _subscribe(api, ws, "https://rebinding.example.com/hooks", ["contact.created"])
    api.post(f"/v1/workspaces/{ws}/contacts", {"phone": "+6281234567895"}, as_user=OWNER)
    pump = Pump(ws)
    pump.fan_out()
    # The name now answers the metadata address: the worker must not connect at all.
    monkeypatch.setattr("relasify.data.webhook_http.resolve", lambda host, port: ["169.254.169.254"])
    import httpx

    def no_client(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an HTTP client was made for a refused address")

    monkeypatch.setattr(httpx, "Client", no_client)
    assert pump.deliver(pump.queued()) == ["retrying"]
    attempt = _deliveries(api, ws, hook["id"])[0]
    assert (attempt["outcome"], attempt["error"], attempt["status_code"]) == ("retrying", "refused-address", None)


def test_nothing_naming_an_erased_contact_is_delivered_after_erasure(
    api: ApiClient, ws: str, local_http: None, receiver: WebhookReceiver
) -> None:
    hook = _subscribe(api, ws, receiver.url, ["contact.created", "contact.updated", "note.created"])
    pump = Pump(ws)
    contact = api.post(f"/v1/workspaces/{ws}/contacts", {"phone": "+6281234567896", "name": "Rahasia"}, as_user=OWNER)
    cid = contact.json["id"]
    assert api.patch(f"/v1/workspaces/{ws}/contacts/{cid}", {"name": "Rahasia Dua"}, as_user=OWNER).status == 200
    note = api.post(f"/v1/workspaces/{ws}/conversations/{cid}/notes", {"body": "catatan rahasia"}, as_user=OWNER)
    assert note.status == 201, note.body
    assert pump.fan_out() == 3  # queued before the erasure, delivered after it
    jobs = pump.queued()
    assert len(jobs) == 3

    erased = api.post(f"/v1/workspaces/{ws}/contacts/{cid}/erase", {}, as_user=OWNER)
    assert erased.status in (200, 202, 204), erased.body
    assert pump.deliver(jobs) == ["skipped", "skipped", "skipped"]
    time.sleep(0.3)
    assert receiver.received == []
    attempts = _deliveries(api, ws, hook["id"])
    assert {(a["outcome"], a["error"]) for a in attempts} == {("skipped", "resource-gone")}
    assert cid not in json.dumps(attempts)
    assert "Rahasia" not in json.dumps(attempts)
    # The change feed no longer names the contact either (its contact events went with it).
    assert pump.new_events() == []
    assert [e for e in feed.ChangeEventModel.query(feed.contact_change_pk(ws)) if e.contact_id == cid] == []
