"""No personal data in any log line, end to end: a dedicated local stack (its whole output captured in one
file) runs a full flow over HTTP with distinctive test data — workspace, WhatsApp connection with a token,
contacts with names, phones and emails, a CSV import, a signed inbound webhook, a text send whose status
webhooks come back from the sandbox, a contact export, a CSV export and an erasure. Then every line of the
stack's log is searched for every phone (in every common format), name, email, message body and token."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import phonenumbers
import pytest

from tests.e2e.polling import wait_for

pytestmark = pytest.mark.e2e

APP_SECRET = "dev-app-secret"
WABA_ID = "102345678901234"
OWNER = "kinanti.pemilik.canary@example.net"
ADMIN = "yudhistira.admin.canary@example.net"
ACCESS_TOKEN = "EAAG-canary-token-7Q2XK9PLZ"
CONTACTS = [
    {"phone": "+6281398765431", "name": "Wiraswasta Kusumawardhani", "email": "kusumawardhani.canary@example.org"},
    {"phone": "+6285712340987", "name": "Gemintang Prawiranegara", "email": "gemintang.canary@example.org"},
]
IMPORTED = {"phone": "+6287755501234", "name": "Importina Sasmitaningrum", "email": "importina.canary@example.org"}
INBOUND_TEXT = "Canary inbound zanzibar kelapa 4821"
OUTBOUND_TEXT = "Canary outbound quetzal durian 9137"
PROFILE_NAME = "Profilia Wahyuningtyas"


def _phone_formats(e164: str) -> set[str]:
    number = phonenumbers.parse(e164)
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    international = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    significant = phonenumbers.national_significant_number(number)
    return {
        e164,
        e164.lstrip("+"),  # the WhatsApp id
        "0" + significant,
        significant,
        national,
        international,
        national.replace(" ", "").replace("-", ""),
        json.dumps(e164)[1:-1],  # as it sits in JSON
    }


def _inbound_webhook(phone_number_id: str, wa_id: str, wamid: str) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "6281234500000", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": PROFILE_NAME}, "wa_id": wa_id}],
        "messages": [
            {
                "from": wa_id,
                "id": wamid,
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": INBOUND_TEXT},
            }
        ],
    }
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "changes": [{"field": "messages", "value": value}]}],
    }
    # Non-ASCII escaped like Meta's own bodies; the signature covers these exact bytes.
    return json.dumps(payload, ensure_ascii=True).encode()


def _sign(body: bytes) -> str:
    return "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()


def test_a_full_flow_leaves_no_personal_data_in_any_log_line(local_stack_factory: Any) -> None:
    stack = local_stack_factory("pii-logs")
    owner_token = stack.token(OWNER)
    admin_token = stack.token(ADMIN)
    secrets: dict[str, str] = {"access token": ACCESS_TOKEN, "owner bearer": owner_token, "admin bearer": admin_token}
    with httpx.Client(base_url=stack.base_url, headers={"authorization": f"Bearer {owner_token}"}, timeout=30) as http:
        ws = http.post("/v1/workspaces", json={"name": "Toko Kanari"}).json()["id"]
        assert http.get("/v1/me", headers={"authorization": f"Bearer {admin_token}"}).status_code == 200
        assert http.post(f"/v1/workspaces/{ws}/members", json={"email": ADMIN, "role": "admin"}).status_code == 201
        phone_number_id = str(100000000000000 + uuid.uuid4().int % 10**14)
        stack.register_whatsapp_account(WABA_ID, phone_number_id, ACCESS_TOKEN)
        connect = {
            "waba_id": WABA_ID,
            "phone_number_id": phone_number_id,
            "display_phone_number": "6281234500000",
            "access_token": ACCESS_TOKEN,
        }
        assert http.put(f"/v1/workspaces/{ws}/whatsapp", json=connect).status_code == 200, stack.log_tail()

        ids = []
        for contact in CONTACTS:
            created = http.post(f"/v1/workspaces/{ws}/contacts", json={**contact, "tags": ["kanari"]})
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        duplicate = http.post(f"/v1/workspaces/{ws}/contacts", json=CONTACTS[0])  # a refusal path too
        assert duplicate.status_code == 409, duplicate.text
        invalid = http.post(f"/v1/workspaces/{ws}/contacts", json={"phone": "+62813987654319999", "name": "X"})
        assert invalid.status_code in (400, 422)
        found = http.get(f"/v1/workspaces/{ws}/contacts", params={"q": CONTACTS[0]["name"][:8]})
        assert found.status_code == 200

        csv = f"phone,name,email\n{IMPORTED['phone']},{IMPORTED['name']},{IMPORTED['email']}\n0812,Bad Row,\n"
        imported = http.post(
            f"/v1/workspaces/{ws}/contacts/imports", content=csv.encode(), headers={"content-type": "text/csv"}
        )
        assert imported.status_code in (201, 202), imported.text
        job = wait_for(
            lambda: http.get(f"/v1/workspaces/{ws}/contacts/imports/{imported.json()['id']}").json(),
            lambda j: j["status"] in ("completed", "failed"),
        )
        assert job["status"] == "completed", (job, stack.log_tail())

        # The customer writes first (a signed inbound webhook): the service window opens.
        wa_id = CONTACTS[0]["phone"].lstrip("+")
        body = _inbound_webhook(phone_number_id, wa_id, f"wamid.canary{uuid.uuid4().hex}")
        posted = httpx.post(
            f"{stack.base_url}/webhooks/whatsapp",
            content=body,
            headers={"content-type": "application/json", "x-hub-signature-256": _sign(body)},
        )
        assert posted.status_code == 200, posted.text
        conversation = wait_for(
            lambda: http.get(f"/v1/workspaces/{ws}/contacts/{ids[0]}/messages").json()["items"],
            lambda items: len(items) == 1,
        )
        assert conversation, stack.log_tail()

        send = {"contact_id": ids[0], "type": "text", "text": {"body": OUTBOUND_TEXT}}
        sent = http.post(f"/v1/workspaces/{ws}/messages", json=send, headers={"idempotency-key": "canary-1"})
        assert sent.status_code == 201, sent.text
        message_id = sent.json()["id"]
        final = wait_for(
            lambda: http.get(f"/v1/workspaces/{ws}/messages/{message_id}").json(),
            lambda m: m["status"] == "read",
        )
        assert final["status"] == "read", (final, stack.log_tail())
        refused = http.post(
            f"/v1/workspaces/{ws}/messages",
            json={"contact_id": ids[1], "type": "text", "text": {"body": OUTBOUND_TEXT}},
            headers={"idempotency-key": "canary-2"},
        )
        assert refused.status_code == 409  # outside the service window: a refusal path

        exported = http.get(f"/v1/workspaces/{ws}/contacts/{ids[0]}/export")
        assert exported.status_code == 200, exported.text
        assert INBOUND_TEXT in exported.text  # the export itself does carry the data
        listing = http.get(f"/v1/workspaces/{ws}/contacts/export", params={"format": "csv"})
        assert listing.status_code == 202, listing.text
        deadline = time.monotonic() + 60  # the worker writes the file: its log lines are part of the capture
        while http.get(listing.headers["location"]).json()["status"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        erased = http.post(f"/v1/workspaces/{ws}/contacts/{ids[0]}/erase", json={})
        assert erased.status_code == 200, erased.text
        assert http.get(f"/v1/workspaces/{ws}/contacts/{ids[0]}").status_code == 404
        denied = http.get(f"/v1/workspaces/{ws}/contacts", headers={"authorization": "Bearer not-a-token"})
        assert denied.status_code == 401

    time.sleep(1.0)  # let the pollers log the last webhook deliveries
    assert stack.stop() is not None
    log = stack.log_path.read_text(errors="replace")
    lines = log.splitlines()
    assert len(lines) > 20, "the stack logged (almost) nothing: the capture is broken"
    assert message_id in log or ws in log, "the flow's ids are not in the log: wrong file"

    for person in [*CONTACTS, IMPORTED]:
        secrets |= {f"phone {fmt}": fmt for fmt in _phone_formats(person["phone"])}
        secrets[f"name {person['name']}"] = person["name"]
        secrets[f"email {person['email']}"] = person["email"]
        for part in person["name"].split():
            secrets[f"name part {part}"] = part
    secrets |= {
        "owner email": OWNER,
        "admin email": ADMIN,
        "inbound body": INBOUND_TEXT,
        "outbound body": OUTBOUND_TEXT,
        "profile name": PROFILE_NAME,
        "token tail": ACCESS_TOKEN[-12:],
        "owner bearer signature": owner_token.rsplit(".", 1)[-1],
    }
    leaks = [
        f"{label!r} in line {number}: {line[:300]}"
        for number, line in enumerate(lines, start=1)
        for label, secret in secrets.items()
        if secret.lower() in line.lower()
    ]
    assert not leaks, f"{len(leaks)} log lines carry personal data or secrets:\n" + "\n".join(leaks[:20])
