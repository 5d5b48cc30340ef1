"""Every log line of a full connect-and-send flow (connect a number, create a contact, inbound
webhook, send a text and a template, status webhooks to `read`) is captured at the file
descriptor level; none carries the access token, a phone number, a name or a message body.
The token is in no API response either."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator

import pytest
from relasify.observability import logger as app_logger

from tests.integration.api.test_send_support import AGENT, OWNER, TOKEN, SendingEnv, sending_environment
from tests.support.api import ApiClient

PHONE_DIGITS = "81234567890"  # national significant number of the customer in every format
NAME = "Budi Santoso"
EMAIL = "budi.santoso@example.com"
TEXT_BODY = "Paket ke Jalan Merdeka 17 sudah dikirim"


@pytest.fixture
def env(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[SendingEnv]:
    yield from sending_environment(api, monkeypatch)


def _personal_data_hits(text: str) -> list[str]:
    hits = []
    digits_only = re.sub(r"[\s\-().+]", "", text)
    if PHONE_DIGITS in digits_only:
        hits.append("phone")
    for needle, label in ((TOKEN, "token"), (NAME, "name"), (EMAIL, "email"), (TEXT_BODY, "message body")):
        if needle in text:
            hits.append(label)
    return hits


def test_connect_and_send_flow_logs_no_personal_data(
    env: SendingEnv, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app_logger.setLevel("DEBUG")  # our own debug lines must be clean too
    responses: list[bytes] = []
    try:
        api, ws = env.api, env.ws
        # (the number was connected with the token by the fixture; reconnect to log a token change too)
        connect = {
            "waba_id": "102345678901234",
            "phone_number_id": "109876543210987",
            "display_phone_number": "6281234500000",
            "access_token": TOKEN,
        }
        for response in (
            api.put(f"/v1/workspaces/{ws}/whatsapp", connect, as_user=OWNER),
            api.get(f"/v1/workspaces/{ws}/whatsapp", as_user=OWNER),
        ):
            assert response.status == 200, response.body
            responses.append(response.body)

        created = api.post(
            f"/v1/workspaces/{ws}/contacts",
            {"phone": "0812-3456-7890", "name": NAME, "email": EMAIL},
            as_user=AGENT,
        )
        assert created.status == 201, created.body
        responses.append(created.body)
        contact_id = created.json["id"]

        # The customer writes in (opens the service window), signed like Meta, processed like the queue worker.
        _, status = env.sandbox.post_inbound_message(
            "109876543210987", "6281234567890", {"type": "text", "text": {"body": TEXT_BODY}}, profile_name=NAME
        )
        assert status == 200

        text = api.post(
            f"/v1/workspaces/{ws}/messages",
            {"contact_id": contact_id, "type": "text", "text": {"body": TEXT_BODY}},
            as_user=AGENT,
            headers={"idempotency-key": "log-test-1"},
        )
        assert text.status == 201, text.body
        responses.append(text.body)
        env.approved_template()
        template = api.post(
            f"/v1/workspaces/{ws}/messages",
            {
                "to": "+62 812 3456 7890",
                "type": "template",
                "template": {
                    "name": "order_update",
                    "language": {"code": "id"},
                    "components": [{"type": "body", "parameters": [{"type": "text", "text": NAME}]}],
                },
            },
            as_user=AGENT,
            headers={"idempotency-key": "log-test-2"},
        )
        assert template.status == 201, template.body
        responses.append(template.body)

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = api.get(f"/v1/workspaces/{ws}/messages/{template.json['id']}", as_user=AGENT)
            if got.json["status"] == "read":
                break
            time.sleep(0.05)
        assert got.json["status"] == "read", got.body
        conversation = api.get(f"/v1/workspaces/{ws}/contacts/{contact_id}/messages", as_user=AGENT)
        assert conversation.status == 200
        responses.append(conversation.body)
    finally:
        app_logger.setLevel("INFO")

    captured = capfd.readouterr()
    lines = [*captured.out.splitlines(), *captured.err.splitlines()]
    lines += [caplog_formatter(record) for record in caplog.records]
    assert len(lines) > 5, "the flow should have logged something"
    leaks = [(hits, line[:200]) for line in lines if (hits := _personal_data_hits(line))]
    assert leaks == []
    assert all(TOKEN.encode() not in body for body in responses)


def caplog_formatter(record: logging.LogRecord) -> str:
    return f"{record.name} {record.getMessage()} {record.__dict__}"
