"""The WhatsApp sandbox over real HTTP: Meta-shaped answers, signed webhooks, faults, clean shutdown;
and the Graph client against it (retries on transient faults, typed errors without retries)."""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from relasify.whatsapp.errors import GraphError
from relasify.whatsapp.graph import GraphClient, RetryPolicy
from relasify_local.sandbox import Sandbox

APP_SECRET = "sandbox-app-secret"
TOKEN = "EAAG-local-token"
PHONE_NUMBER_ID = "109876543210987"
WABA_ID = "102345678901234"
VERSION = "v23.0"
TEMPLATE_SEND = {
    "messaging_product": "whatsapp",
    "to": "+6281234567890",
    "type": "template",
    "template": {"name": "konfirmasi_pesanan", "language": {"code": "id"}},
    "biz_opaque_callback_data": "ws-1:msg-42",
}
TEMPLATE_DEFINITION = {
    "name": "konfirmasi_pesanan",
    "language": "id",
    "category": "UTILITY",
    "components": [{"type": "BODY", "text": "Halo {{1}}, pesanan {{2}} dikonfirmasi."}],
}


class Receiver:
    """A webhook endpoint that records raw bodies and headers; can be told to fail the next N posts."""

    def __init__(self) -> None:
        self.received: queue.Queue[tuple[bytes, dict[str, str]]] = queue.Queue()
        self.fail_next = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.fail_next > 0:
                    receiver.fail_next -= 1
                    status = 500
                else:
                    receiver.received.put((body, {k.lower(): v for k, v in self.headers.items()}))
                    status = 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/whatsapp"

    def next(self, timeout: float = 5.0) -> tuple[dict[str, Any], bytes, dict[str, str]]:
        body, headers = self.received.get(timeout=timeout)
        return json.loads(body), body, headers

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def sandbox(receiver: Receiver) -> Iterator[Sandbox]:
    threads_before = set(threading.enumerate())
    box = Sandbox(
        webhook_url=receiver.url, app_secret=APP_SECRET, status_delay_seconds=0.02, webhook_retry_delay_seconds=0.02
    )
    box.start()
    yield box
    box.stop()
    leftover = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert leftover == [], "sandbox left threads running"


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{sandbox.base_url}/{VERSION}", headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


def expected_signature(body: bytes) -> str:
    return "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()


def only_status(payload: dict[str, Any]) -> dict[str, Any]:
    (entry,) = payload["entry"]
    assert entry["id"] == WABA_ID
    (change,) = entry["changes"]
    assert change["field"] == "messages"
    assert change["value"]["metadata"] == {"display_phone_number": "6281234500000", "phone_number_id": PHONE_NUMBER_ID}
    (status,) = change["value"]["statuses"]
    return status


def test_send_answers_like_meta_and_posts_signed_sent_delivered_read(
    sandbox: Sandbox, http: httpx.Client, receiver: Receiver
) -> None:
    response = http.post(f"/{PHONE_NUMBER_ID}/messages", json=TEMPLATE_SEND)

    assert response.status_code == 200
    body = response.json()
    wamid = body["messages"][0]["id"]
    assert wamid.startswith("wamid.")
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": "+6281234567890", "wa_id": "6281234567890"}]
    assert sandbox.sent_messages == [{**TEMPLATE_SEND, "phone_number_id": PHONE_NUMBER_ID, "wamid": wamid}]

    statuses = []
    for _ in range(3):
        payload, raw, headers = receiver.next()
        assert headers["x-hub-signature-256"] == expected_signature(raw)
        assert headers["content-type"] == "application/json"
        assert payload["object"] == "whatsapp_business_account"
        statuses.append(only_status(payload))
    assert [s["status"] for s in statuses] == ["sent", "delivered", "read"]
    for status in statuses:
        assert status["id"] == wamid
        assert status["recipient_id"] == "6281234567890"
        assert status["biz_opaque_callback_data"] == "ws-1:msg-42"
        assert status["timestamp"].isdigit()
        assert status["pricing"] == {"billable": True, "pricing_model": "PMP", "type": "regular", "category": "utility"}
        assert status["conversation"]["origin"] == {"type": "utility"}
    assert int(statuses[0]["timestamp"]) <= int(statuses[2]["timestamp"])


def test_template_submission_is_approved_by_signed_webhook(
    sandbox: Sandbox, http: httpx.Client, receiver: Receiver
) -> None:
    response = http.post(f"/{WABA_ID}/message_templates", json=TEMPLATE_DEFINITION)

    assert response.status_code == 200
    created = response.json()
    assert created["status"] == "PENDING"
    assert created["category"] == "UTILITY"

    payload, raw, headers = receiver.next()
    assert headers["x-hub-signature-256"] == expected_signature(raw)
    (entry,) = payload["entry"]
    assert entry["id"] == WABA_ID
    assert isinstance(entry["time"], int)
    (change,) = entry["changes"]
    assert change["field"] == "message_template_status_update"
    assert change["value"] == {
        "event": "APPROVED",
        "message_template_id": int(created["id"]),
        "message_template_name": "konfirmasi_pesanan",
        "message_template_language": "id",
        "reason": "NONE",
        "message_template_category": "UTILITY",
    }
    listed = http.get(f"/{WABA_ID}/message_templates").json()["data"]
    assert [(t["name"], t["status"]) for t in listed] == [("konfirmasi_pesanan", "APPROVED")]

    # A send of that template now carries its category in the pricing block.
    marketing = {**TEMPLATE_DEFINITION, "name": "promo", "category": "MARKETING"}
    assert http.post(f"/{WABA_ID}/message_templates", json=marketing).status_code == 200
    receiver.next()
    send = {**TEMPLATE_SEND, "template": {"name": "promo", "language": {"code": "id"}}}
    assert http.post(f"/{PHONE_NUMBER_ID}/messages", json=send).status_code == 200
    assert only_status(receiver.next()[0])["pricing"]["category"] == "marketing"


def test_template_list_pages_and_delete(sandbox: Sandbox, http: httpx.Client, receiver: Receiver) -> None:
    for name in ("a_template", "b_template", "c_template"):
        assert http.post(f"/{WABA_ID}/message_templates", json={**TEMPLATE_DEFINITION, "name": name}).is_success
    duplicate = http.post(f"/{WABA_ID}/message_templates", json={**TEMPLATE_DEFINITION, "name": "a_template"})
    assert duplicate.status_code == 400

    client = GraphClient(base_url=sandbox.base_url, api_version=VERSION)
    try:
        first = client.list_templates(WABA_ID, TOKEN, limit=2)
        second = client.list_templates(WABA_ID, TOKEN, limit=2, after=first.next_after)
        assert [t["name"] for t in first.items + second.items] == ["a_template", "b_template", "c_template"]
        assert second.next_after is None
        assert client.delete_template(WABA_ID, TOKEN, "b_template") is True
        with pytest.raises(GraphError) as caught:
            client.delete_template(WABA_ID, TOKEN, "b_template")
        assert caught.value.code == 100
    finally:
        client.close()
    assert sorted(t["name"] for t in sandbox.templates) == ["a_template", "c_template"]


def test_media_lookup_and_download_need_the_bearer_token(sandbox: Sandbox, http: httpx.Client) -> None:
    content = b"%PDF-1.7 invoice"
    media_id = sandbox.add_media(content, "application/pdf")

    info = http.get(f"/{media_id}").json()
    assert info["url"] == f"{sandbox.base_url}/media/{media_id}"
    assert (info["mime_type"], info["file_size"], info["id"]) == ("application/pdf", len(content), media_id)
    assert info["sha256"] == hashlib.sha256(content).hexdigest()
    assert httpx.get(info["url"]).status_code == 401
    downloaded = httpx.get(info["url"], headers={"Authorization": f"Bearer {TOKEN}"})
    assert downloaded.content == content
    assert downloaded.headers["content-type"] == "application/pdf"


@pytest.mark.parametrize("authorization", [None, "Bearer", "Basic abc"])
def test_graph_calls_without_a_bearer_token_get_error_190(sandbox: Sandbox, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = httpx.post(
        f"{sandbox.base_url}/{VERSION}/{PHONE_NUMBER_ID}/messages", json=TEMPLATE_SEND, headers=headers
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == 190
    assert sandbox.sent_messages == []


def test_each_fault_happens_exactly_for_the_injected_count(sandbox: Sandbox, receiver: Receiver) -> None:
    url = f"{sandbox.base_url}/{VERSION}/{PHONE_NUMBER_ID}/messages"
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def call() -> httpx.Response | str:
        try:
            with httpx.Client(timeout=0.3) as client:
                return client.post(url, json=TEMPLATE_SEND, headers=headers)
        except httpx.TimeoutException:
            return "timeout"
        except (httpx.RemoteProtocolError, httpx.ReadError):
            return "reset"

    sandbox.inject_fault("429", count=2, retry_after=7)
    sandbox.inject_fault("500")
    sandbox.inject_fault("timeout", seconds=2)
    sandbox.inject_fault("reset")
    sandbox.inject_fault("error_code", count=2, code=131047)

    outcomes = [call() for _ in range(8)]

    throttled = [o for o in outcomes[:2] if isinstance(o, httpx.Response)]
    assert [o.status_code for o in throttled] == [429, 429]
    assert throttled[0].headers["retry-after"] == "7"
    assert throttled[0].json()["error"]["code"] == 130429
    assert isinstance(outcomes[2], httpx.Response)
    assert outcomes[2].status_code == 500
    assert outcomes[3] == "timeout"
    assert outcomes[4] == "reset"
    for outcome in outcomes[5:7]:
        assert isinstance(outcome, httpx.Response)
        assert (outcome.status_code, outcome.json()["error"]["code"]) == (400, 131047)
    assert isinstance(outcomes[7], httpx.Response)
    assert outcomes[7].status_code == 200
    assert [r["fault"] for r in sandbox.requests] == [
        "429",
        "429",
        "500",
        "timeout",
        "reset",
        "error_code",
        "error_code",
        None,
    ]
    assert len(sandbox.sent_messages) == 1


def test_unknown_fault_kind_is_refused(sandbox: Sandbox) -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        sandbox.inject_fault("teapot")
    with pytest.raises(ValueError, match="code"):
        sandbox.inject_fault("error_code")


def test_latency_applies_to_every_call(receiver: Receiver) -> None:
    with Sandbox(webhook_url=receiver.url, app_secret=APP_SECRET, latency_seconds=0.3) as slow:
        started = time.monotonic()
        response = httpx.post(
            f"{slow.base_url}/{VERSION}/{PHONE_NUMBER_ID}/messages",
            json=TEMPLATE_SEND,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed >= 0.3


def test_failed_webhook_posts_are_retried_then_delivered(
    sandbox: Sandbox, http: httpx.Client, receiver: Receiver
) -> None:
    receiver.fail_next = 2
    http.post(f"/{PHONE_NUMBER_ID}/messages", json=TEMPLATE_SEND)
    assert only_status(receiver.next()[0])["status"] == "sent"
    assert sandbox.wait_until_idle()
    attempts = [(d["description"], d["attempt"], d["http_status"]) for d in sandbox.webhook_deliveries]
    assert attempts[:3] == [("status sent", 1, 500), ("status sent", 2, 500), ("status sent", 3, 200)]


def test_undeliverable_webhooks_are_dropped_after_a_few_attempts(sandbox: Sandbox, receiver: Receiver) -> None:
    receiver.fail_next = 100
    media_free_send = {**TEMPLATE_SEND, "type": "text", "text": {"body": "Halo"}}
    del media_free_send["template"]
    response = httpx.post(
        f"{sandbox.base_url}/{VERSION}/{PHONE_NUMBER_ID}/messages",
        json=media_free_send,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 200
    assert sandbox.wait_until_idle()
    deliveries = sandbox.webhook_deliveries
    assert len(deliveries) == 3 * sandbox.webhook_max_attempts  # sent, delivered, read each given up
    assert {d["http_status"] for d in deliveries} == {500}


def test_failing_recipient_gets_a_failed_status(sandbox: Sandbox, http: httpx.Client, receiver: Receiver) -> None:
    sandbox.fail_recipient("6281234567890", 131026)
    http.post(f"/{PHONE_NUMBER_ID}/messages", json=TEMPLATE_SEND)
    status = only_status(receiver.next()[0])
    assert status["status"] == "failed"
    assert status["errors"][0]["code"] == 131026
    assert status["biz_opaque_callback_data"] == "ws-1:msg-42"


def test_reset_forgets_everything(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.inject_fault("500", count=3)
    assert http.post(f"/{PHONE_NUMBER_ID}/messages", json=TEMPLATE_SEND).status_code == 500
    sandbox.reset()
    assert http.post(f"/{PHONE_NUMBER_ID}/messages", json=TEMPLATE_SEND).status_code == 200
    assert len(sandbox.requests) == 1


def test_stop_releases_held_connections_promptly(receiver: Receiver) -> None:
    box = Sandbox(webhook_url=receiver.url, app_secret=APP_SECRET).start()
    box.inject_fault("timeout", seconds=60)
    url = f"{box.base_url}/{VERSION}/{PHONE_NUMBER_ID}/messages"
    failures: list[Exception] = []

    def call() -> None:
        try:
            httpx.post(url, json={}, headers={"Authorization": "Bearer x"})
        except httpx.HTTPError as exc:
            failures.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.2)
    started = time.monotonic()
    box.stop()
    assert time.monotonic() - started < 2
    caller.join(timeout=5)
    assert not caller.is_alive()
    assert len(failures) == 1  # the held call ended without an answer


# -- the Graph client against the sandbox ---------------------------------------------------------


@pytest.fixture
def graph(sandbox: Sandbox) -> Iterator[tuple[GraphClient, list[float]]]:
    sleeps: list[float] = []
    client = GraphClient(
        base_url=sandbox.base_url,
        api_version=VERSION,
        timeout_seconds=0.5,
        retry=RetryPolicy(max_attempts=4, base_delay_seconds=0.01, max_delay_seconds=0.05, max_total_seconds=15),
        sleep=lambda seconds: (sleeps.append(seconds), time.sleep(min(seconds, 0.05)))[-1],
    )
    yield client, sleeps
    client.close()


@pytest.mark.parametrize(
    ("kind", "options"),
    [("429", {"retry_after": 1}), ("500", {}), ("timeout", {"seconds": 3}), ("reset", {})],
)
def test_client_retries_transient_faults_and_succeeds(
    sandbox: Sandbox, graph: tuple[GraphClient, list[float]], kind: str, options: dict[str, Any]
) -> None:
    client, sleeps = graph
    sandbox.inject_fault(kind, count=2, **options)

    result = client.send_message(PHONE_NUMBER_ID, TOKEN, TEMPLATE_SEND)

    assert result.wamid.startswith("wamid.")
    assert [r["fault"] for r in sandbox.requests] == [kind, kind, None]
    assert len(sandbox.sent_messages) == 1
    assert len(sleeps) == 2
    if kind == "429":
        assert sleeps == [1.0, 1.0]  # Retry-After honoured


@pytest.mark.parametrize(
    ("code", "problem_type"),
    [
        (131047, "outside-service-window"),
        (131026, "recipient-unreachable"),
        (131050, "contact-opted-out"),
        (132001, "template-not-approved"),
        (190, "whatsapp-token-expired"),
    ],
)
def test_client_maps_graph_errors_without_retrying(
    sandbox: Sandbox, graph: tuple[GraphClient, list[float]], code: int, problem_type: str
) -> None:
    client, sleeps = graph
    sandbox.inject_fault("error_code", count=3, code=code)

    with pytest.raises(GraphError) as caught:
        client.send_message(PHONE_NUMBER_ID, TOKEN, TEMPLATE_SEND)

    assert (caught.value.code, caught.value.problem_type, caught.value.retryable) == (code, problem_type, False)
    assert len(sandbox.requests) == 1
    assert sleeps == []
    assert sandbox.sent_messages == []


def test_client_reports_expired_token(sandbox: Sandbox, graph: tuple[GraphClient, list[float]]) -> None:
    client, _ = graph
    sandbox.expire_token("old-token")
    with pytest.raises(GraphError) as caught:
        client.send_message(PHONE_NUMBER_ID, "old-token", TEMPLATE_SEND)
    assert caught.value.needs_new_token
    assert caught.value.http_status == 401
    assert client.send_message(PHONE_NUMBER_ID, TOKEN, TEMPLATE_SEND).wamid


def test_client_template_and_media_round_trip(
    sandbox: Sandbox, graph: tuple[GraphClient, list[float]], receiver: Receiver
) -> None:
    client, _ = graph
    submitted = client.create_template(WABA_ID, TOKEN, TEMPLATE_DEFINITION)
    assert submitted.status == "PENDING"
    assert receiver.next()[0]["entry"][0]["changes"][0]["value"]["event"] == "APPROVED"

    media_id = sandbox.add_media(b"\xff\xd8jpeg-bytes", "image/jpeg")
    info = client.get_media_url(media_id, TOKEN)
    assert client.download_media(info.url, TOKEN) == b"\xff\xd8jpeg-bytes"


def test_inbound_messages_are_posted_signed_in_meta_shape(sandbox: Sandbox, receiver: Receiver) -> None:
    media_id = sandbox.add_media(b"jpeg", "image/jpeg")
    wamid, status = sandbox.post_inbound_message(
        PHONE_NUMBER_ID,
        "6281234567890",
        {"type": "image", "image": {"id": media_id, "mime_type": "image/jpeg", "caption": "Bukti transfer \u2705"}},
        profile_name="Budi",
    )
    assert status == 200
    payload, raw, headers = receiver.next()
    assert headers["x-hub-signature-256"] == expected_signature(raw)
    assert b"\\u2705" in raw  # escaped unicode on the wire, like Meta
    value = payload["entry"][0]["changes"][0]["value"]
    assert value["metadata"]["phone_number_id"] == PHONE_NUMBER_ID
    assert value["contacts"] == [{"profile": {"name": "Budi"}, "wa_id": "6281234567890"}]
    (message,) = value["messages"]
    assert (message["id"], message["from"], message["type"]) == (wamid, "6281234567890", "image")
    assert message["image"]["id"] == media_id
    assert "statuses" not in value


def test_client_reads_phone_number_info(sandbox: Sandbox, graph: tuple[GraphClient, list[float]]) -> None:
    client, _ = graph
    sandbox.register_number("555000111", waba_id="999", display_phone_number="6281299990000")
    info = client.get_phone_number("555000111", TOKEN)
    assert (info["id"], info["display_phone_number"], info["quality_rating"]) == ("555000111", "6281299990000", "GREEN")
    assert client.get_phone_number(PHONE_NUMBER_ID, TOKEN)["display_phone_number"] == "6281234500000"
    for unknown in ("123123", "404404"):  # a number no account holds; an unknown media id
        with pytest.raises(GraphError) as caught:
            client.get_phone_number(unknown, TOKEN)
        assert (caught.value.code, caught.value.subcode) == (100, 33)


# -- accounts (SPEC section 11) -----------------------------------------------------------------


def _register(sandbox: Sandbox, **account: str) -> httpx.Response:
    return httpx.post(f"{sandbox.base_url}/_sandbox/accounts", json=account)


def test_seeded_account_answers_ownership_calls_for_any_eaag_token(
    sandbox: Sandbox, graph: tuple[GraphClient, list[float]]
) -> None:
    client, _ = graph
    listed = client.list_phone_numbers(WABA_ID, "EAAG-whatever")
    assert [(n["id"], n["display_phone_number"]) for n in listed] == [(PHONE_NUMBER_ID, "6281234500000")]
    assert client.subscribe_app(WABA_ID, "EAAG-whatever") is True
    assert sandbox.subscribed_apps == [WABA_ID]


def test_registered_account_is_owned_by_its_token_only(
    sandbox: Sandbox, graph: tuple[GraphClient, list[float]]
) -> None:
    client, _ = graph
    created = _register(
        sandbox,
        waba_id="200000000000001",
        phone_number_id="300000000000001",
        display_phone_number="6281200000001",
        token="shop-two-token",
    )
    assert created.status_code == 201, created.text
    assert client.get_phone_number("300000000000001", "shop-two-token")["display_phone_number"] == "6281200000001"
    assert [n["id"] for n in client.list_phone_numbers("200000000000001", "shop-two-token")] == ["300000000000001"]
    # The registered token owns nothing else: not the seeded account, its number, its templates.
    for call in (
        lambda: client.list_phone_numbers(WABA_ID, "shop-two-token"),
        lambda: client.get_phone_number(PHONE_NUMBER_ID, "shop-two-token"),
        lambda: client.subscribe_app(WABA_ID, "shop-two-token"),
        lambda: client.list_templates(WABA_ID, "shop-two-token"),
        lambda: client.send_message(PHONE_NUMBER_ID, "shop-two-token", TEMPLATE_SEND),
    ):
        with pytest.raises(GraphError) as caught:
            call()
        assert (caught.value.code, caught.value.subcode) == (100, 33)
    # And sandbox tokens do not own the registered account.
    with pytest.raises(GraphError) as caught:
        client.send_message("300000000000001", TOKEN, TEMPLATE_SEND)
    assert (caught.value.code, caught.value.subcode) == (100, 33)
    assert sandbox.sent_messages == []
    assert sandbox.subscribed_apps == []


def test_unknown_token_gets_oauth_error_190_in_graph_shape(sandbox: Sandbox) -> None:
    answer = httpx.get(
        f"{sandbox.base_url}/{VERSION}/{PHONE_NUMBER_ID}", headers={"Authorization": "Bearer not-a-meta-token"}
    )
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert (error["type"], error["code"]) == ("OAuthException", 190)


def test_object_not_owned_gets_code_100_subcode_33_in_graph_shape(sandbox: Sandbox) -> None:
    answer = httpx.get(
        f"{sandbox.base_url}/{VERSION}/999999999/phone_numbers", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["type"], error["code"], error["error_subcode"]) == ("GraphMethodException", 100, 33)
    assert "does not exist, cannot be loaded due to missing permissions" in error["message"]


def test_registering_needs_every_field(sandbox: Sandbox) -> None:
    refused = _register(sandbox, waba_id="200000000000001", phone_number_id="300000000000001", token="t")
    assert refused.status_code == 400
    assert (
        _register(sandbox, waba_id="../x", phone_number_id="3", display_phone_number="62", token="t").status_code == 400
    )
