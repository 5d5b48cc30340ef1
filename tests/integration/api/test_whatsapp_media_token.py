"""The Graph token goes only to Meta's media hosts over HTTPS (or the configured Graph base URL, the
local sandbox): a download URL in Meta's answer that points anywhere else is refused before any
request, the media is marked failed, and the URL is not logged."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from relasify.data import messages as message_store
from relasify.services.webhook import process_payload
from relasify_local.cfn import REPO_ROOT, load_template
from relasify_local.runtime import functions_from_template
from relasify_local.sandbox import Sandbox

from tests.support.api import ApiClient

OWNER = "owner@example.com"
WABA = "102345678901234"
NUMBER = "109876543210987"
TOKEN = "EAAG-media-owner-token"
SECRET_QUERY = "oh=secret-media-signature"


class _RecordingServer(ThreadingHTTPServer):
    """Stands in for wherever a forged media URL points: records every request it gets."""

    daemon_threads = True

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.seen.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"jpg")

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def elsewhere() -> Iterator[_RecordingServer]:
    server = _RecordingServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def _inbound_image(media_id: str) -> dict[str, Any]:
    message = {
        "from": "6281234567890",
        "id": f"wamid.media-{media_id}",
        "timestamp": str(int(time.time())),
        "type": "image",
        "image": {"id": media_id, "mime_type": "image/jpeg"},
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "6281234500000", "phone_number_id": NUMBER},
        "contacts": [{"profile": {"name": "Budi"}, "wa_id": "6281234567890"}],
        "messages": [message],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA, "changes": [{"field": "messages", "value": value}]}],
    }


def _run_media_worker() -> list[dict[str, Any]]:
    worker = functions_from_template(load_template(), REPO_ROOT)["MediaWorkerFunction"]
    sqs, url = boto3.client("sqs"), os.environ["MEDIA_QUEUE_URL"]
    jobs: list[dict[str, Any]] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1).get("Messages") or []:
        record = {
            "messageId": messages[0]["MessageId"],
            "receiptHandle": messages[0]["ReceiptHandle"],
            "body": messages[0]["Body"],
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:ap-southeast-3:123456789012:media",
            "awsRegion": "ap-southeast-3",
        }
        assert worker.invoke({"Records": [record]}) == {"batchItemFailures": []}  # given up, not retried
        sqs.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])
        jobs.append(json.loads(messages[0]["Body"]))
    return jobs


@pytest.mark.parametrize(
    "url_of",
    [
        pytest.param(lambda port: f"http://127.0.0.1:{port}/v/t59/media?{SECRET_QUERY}", id="plain-http-elsewhere"),
        pytest.param(
            lambda port: f"http://lookaside.fbsbx.com/whatsapp_business/attachments/?{SECRET_QUERY}",
            id="meta-host-over-http",
        ),
        pytest.param(lambda port: f"https://lookaside.fbsbx.com.evil.example/m?{SECRET_QUERY}", id="lookalike-host"),
        pytest.param(lambda port: f"https://evil.example:{port}/m?{SECRET_QUERY}", id="https-non-meta"),
    ],
)
def test_media_url_outside_metas_hosts_never_gets_the_token(
    api: ApiClient,
    graph_sandbox: Sandbox,
    elsewhere: _RecordingServer,
    url_of: Any,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    ws = api.create_workspace(OWNER)
    body = {"waba_id": WABA, "phone_number_id": NUMBER, "display_phone_number": "6281234500000", "access_token": TOKEN}
    assert api.put(f"/v1/workspaces/{ws}/whatsapp", body, as_user=OWNER).status == 200
    url = url_of(elsewhere.server_address[1])
    media_id = graph_sandbox.add_media(b"jpg", url=url)

    process_payload(_inbound_image(media_id))
    jobs = _run_media_worker()

    assert [job["media_id"] for job in jobs] == [media_id]
    assert elsewhere.seen == []  # no request at all, so none with Authorization
    # The media look-up itself went to the Graph base URL, with the token, as it should.
    lookups = [r for r in graph_sandbox.requests if r["path"].endswith(f"/{media_id}")]
    assert [r["status"] for r in lookups] == [200]
    message = message_store.get_message(ws, jobs[0]["message_id"], consistent=True)
    assert message is not None
    assert (message.media_s3_key, message.media_error) == (None, "untrusted-url")
    logged = caplog.text + "".join(capfd.readouterr())
    assert "media URL refused" in logged
    assert SECRET_QUERY not in logged
    assert TOKEN not in logged


def test_media_from_the_configured_graph_base_url_is_copied(api: ApiClient, graph_sandbox: Sandbox) -> None:
    """The local sandbox serves media under the Graph base URL: the one non-Meta origin trusted."""
    ws = api.create_workspace(OWNER)
    body = {"waba_id": WABA, "phone_number_id": NUMBER, "display_phone_number": "6281234500000", "access_token": TOKEN}
    assert api.put(f"/v1/workspaces/{ws}/whatsapp", body, as_user=OWNER).status == 200
    media_id = graph_sandbox.add_media(b"\xff\xd8jpeg")

    process_payload(_inbound_image(media_id))
    (job,) = _run_media_worker()

    message = message_store.get_message(ws, job["message_id"], consistent=True)
    assert message is not None
    assert message.media_error is None
    assert message.media_s3_key == f"media/{ws}/{job['message_id']}"
