"""Helpers of the sending tests: a sandbox Graph API whose status webhooks are applied in-process
by the webhook service, a connected workspace, contacts and approved templates."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from relasify import clock
from relasify.data import templates as template_store
from relasify.data.contacts import contact_repository
from relasify.data.records import ConsentEvent, Contact, NewContact
from relasify.settings import get_settings
from relasify_local.sandbox import Sandbox

from tests.support.api import APP_SECRET, ApiClient

OWNER = "owner@example.com"
AGENT = "agent@example.com"
PHONE_NUMBER_ID = "109876543210987"
WABA_ID = "102345678901234"
TOKEN = "EAAG-sandbox-token-1"


class _WebhookSink(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _SinkHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/webhooks/whatsapp"


class _SinkHandler(BaseHTTPRequestHandler):
    server: _WebhookSink

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        status = 200
        try:
            from relasify.services.webhook import process_payload

            process_payload(raw)
            with self.server.lock:
                self.server.payloads.append(json.loads(raw))
        except Exception as exc:  # the sandbox retries a failed delivery, like Meta
            status = 500
            with self.server.lock:
                self.server.errors.append(type(exc).__name__)
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class SendingEnv:
    api: ApiClient
    sandbox: Sandbox
    sink: _WebhookSink
    ws: str

    def post_message(self, body: dict[str, Any], key: str | None, *, user: str = AGENT) -> Any:
        headers = {"idempotency-key": key} if key is not None else {}
        return self.api.post(f"/v1/workspaces/{self.ws}/messages", body, as_user=user, headers=headers)

    def contact(
        self,
        phone: str = "+6281234567890",
        *,
        inbound_hours_ago: float | None = 1.0,
        tags: list[str] | None = None,
        name: str | None = "Budi",
        attributes: dict[str, Any] | None = None,
        opted_out: bool = False,
        restricted: bool = False,
        unreachable: bool = False,
    ) -> Contact:
        repo = contact_repository()
        consent = None
        if opted_out:
            consent = ConsentEvent(status="opted_out", source="api", at=clock.now())
        contact = repo.create(
            self.ws,
            NewContact(
                phone=phone,
                wa_id=phone.lstrip("+"),
                name=name,
                tags=tags or [],
                attributes=attributes or {},
                consent=consent,
            ),
        )
        if inbound_hours_ago is not None:
            repo.record_inbound(self.ws, contact.id, clock.now() - timedelta(hours=inbound_hours_ago))
        if restricted:
            repo.set_restricted(self.ws, contact.id, True)
        if unreachable:
            repo.set_unreachable(self.ws, contact.id, True)
        return repo.get(self.ws, contact.id)  # type: ignore[return-value]

    def approved_template(
        self,
        name: str = "order_update",
        *,
        language: str = "id",
        category: str = "UTILITY",
        body_params: int = 1,
        header: dict[str, Any] | None = None,
    ) -> None:
        text = "Halo " + " ".join(f"{{{{{i + 1}}}}}" for i in range(body_params))
        template_store.put_submitted(
            self.ws,
            name=name,
            language=language,
            category=category,
            components=([header] if header else []) + [{"type": "BODY", "text": text}],
            meta_template_id="123",
            status="APPROVED",
        )

    def sends(self) -> list[dict[str, Any]]:
        return self.sandbox.sent_messages


def template_body(contact_id: str, name: str = "order_update", params: tuple[str, ...] = ("Budi",)) -> dict[str, Any]:
    body: dict[str, Any] = {
        "contact_id": contact_id,
        "type": "template",
        "template": {"name": name, "language": {"code": "id"}},
    }
    if params:
        body["template"]["components"] = [{"type": "body", "parameters": [{"type": "text", "text": p} for p in params]}]
    return body


def problem_slug(response: Any) -> str:
    return str(response.json["type"]).rsplit("/", 1)[-1]


def sending_environment(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[SendingEnv]:
    """Body of the `env` fixture of the sending test modules (`yield from` it)."""
    from relasify.data import broadcasts as broadcast_store
    from relasify.whatsapp.graph import reset_graph_client

    sink = _WebhookSink()
    sink_thread = threading.Thread(target=sink.serve_forever, kwargs={"poll_interval": 0.05})
    sink_thread.start()
    sandbox = Sandbox(webhook_url=sink.url, app_secret=APP_SECRET, status_delay_seconds=0.05).start()
    try:
        monkeypatch.setenv("GRAPH_API_BASE_URL", sandbox.base_url)
        monkeypatch.setenv("GRAPH_TIMEOUT_SECONDS", "1")
        get_settings.cache_clear()
        reset_graph_client()
        broadcast_store.reset_for_tests()
        ws = api.create_workspace(OWNER)
        api.add_member(ws, OWNER, AGENT, "agent")
        connect = {
            "waba_id": WABA_ID,
            "phone_number_id": PHONE_NUMBER_ID,
            "display_phone_number": "6281234500000",
            "access_token": TOKEN,
        }
        assert api.put(f"/v1/workspaces/{ws}/whatsapp", connect, as_user=OWNER).status == 200
        yield SendingEnv(api=api, sandbox=sandbox, sink=sink, ws=ws)
    finally:
        sandbox.stop()
        sink.shutdown()
        sink.server_close()
        sink_thread.join()
        reset_graph_client()
        broadcast_store.reset_for_tests()


def drain_broadcast_queue(max_rounds: int = 200) -> int:
    """Run the broadcast worker on every queued job, a batch of up to 10 at a time as the worker
    gets them, until the queue is empty; returns jobs run. A failed job fails the test."""
    from relasify.services import broadcast_pipeline

    sqs = boto3.client("sqs")
    url = get_settings().broadcast_queue_url
    handled = 0
    for _ in range(max_rounds):
        response = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = response.get("Messages", [])
        if not messages:
            return handled
        outcomes = broadcast_pipeline.run_jobs([message["Body"] for message in messages])
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                raise outcome
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            handled += 1
    raise AssertionError("broadcast queue did not drain")
