"""The inbox end to end on the local stack: two customers write in through the sandbox (signed webhooks,
the receiver, the queue, the processor), an admin assigns one to an agent, the agent reads it (a read
receipt reaches the sandbox), notes, replies and resolves; the customer writes again and it reopens.
A webhook delivered twice and statuses out of order leave the counts exact."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.polling import wait_for

pytestmark = pytest.mark.e2e

OWNER = "inbox-owner-e2e@example.com"
AGENT = "inbox-agent-e2e@example.com"
FIRST, SECOND = "6281277770001", "6281277770002"


def test_the_inbox_day(local_stack: Any) -> None:
    sandbox = local_stack.sandbox_url
    with local_stack.client(headers=local_stack.auth_headers(OWNER)) as http:
        ws = http.post("/v1/workspaces", json={"name": "Toko Inbox"}).json()["id"]
        phone_number_id = local_stack.connect_whatsapp(http, ws)
        assert http.post(f"/v1/workspaces/{ws}/members", json={"email": AGENT, "role": "agent"}).status_code == 201
        base = f"/v1/workspaces/{ws}/conversations"

        def write_in(sender: str, text: str) -> str:
            posted = httpx.post(
                f"{sandbox}/_sandbox/inbound", json={"phone_number_id": phone_number_id, "from": sender, "text": text}
            )
            assert posted.status_code == 200, posted.text
            assert posted.json()["webhook_status"] == 200
            return posted.json()["wamid"]

        write_in(FIRST, "Kak, paket saya belum sampai")
        second_wamid = write_in(SECOND, "Halo, mau tanya harga")
        listed = wait_for(lambda: http.get(base).json(), lambda body: len(body["items"]) == 2)
        assert [i["contact"]["phone"] for i in listed["items"]] == [f"+{SECOND}", f"+{FIRST}"], local_stack.log_tail()
        assert [i["unread_count"] for i in listed["items"]] == [1, 1]
        assert listed["counts"] == {"open": 2, "pending": 0, "snoozed": 0, "mine": 0, "unassigned": 2}
        second = listed["items"][0]["id"]

        with local_stack.client(headers=local_stack.auth_headers(AGENT)) as agent_http:
            assert agent_http.get(f"/v1/workspaces/{ws}/members").status_code == 200  # joins (invitation)
            members = http.get(f"/v1/workspaces/{ws}/members").json()["items"]  # emails: admins only
            agent_id = next(m["user_id"] for m in members if m["email"] == AGENT)
            assigned = http.patch(f"{base}/{second}", json={"assignee": agent_id})
            assert assigned.status_code == 200, assigned.text
            mine = agent_http.get(f"{base}?assignee=me").json()
            assert [i["id"] for i in mine["items"]] == [second]
            assert mine["counts"]["mine"] == 1

            read = agent_http.post(f"{base}/{second}/read", json={"receipt": True})
            assert read.status_code == 200, read.text
            assert read.json()["conversation"]["unread_count"] == 0
            sent = httpx.get(f"{sandbox}/_sandbox/sent-messages").json()["data"]
            receipts = [s for s in sent if s["phone_number_id"] == phone_number_id and s.get("status") == "read"]
            assert [r["message_id"] for r in receipts] == [second_wamid]

            note = agent_http.post(f"{base}/{second}/notes", json={"body": "Kirim daftar harga terbaru"})
            assert note.status_code == 201, note.text
            thread = agent_http.get(f"{base}/{second}/messages").json()["items"]
            inbound_id = next(i["id"] for i in thread if i["direction"] == "in")
            reply = agent_http.post(
                f"/v1/workspaces/{ws}/messages",
                json={
                    "contact_id": second,
                    "type": "text",
                    "text": {"body": "Baik kak, ini daftar harganya"},
                    "context": {"message_id": inbound_id},
                },
                headers={"Idempotency-Key": "inbox-reply-1"},
            )
            assert reply.status_code == 201, reply.text
            sent = httpx.get(f"{sandbox}/_sandbox/sent-messages").json()["data"]
            ours = [s for s in sent if s["phone_number_id"] == phone_number_id]
            assert [s.get("type") for s in ours] == [None, "text"]  # the receipt, then the reply: the note never
            assert ours[1]["context"] == {"message_id": second_wamid}
            # the reply's statuses (sent, delivered, read from the sandbox) reach last_message
            done = wait_for(
                lambda: agent_http.get(f"{base}/{second}").json(),
                lambda c: c["last_message"]["status"] == "read",
            )
            assert done["last_message"]["direction"] == "out", local_stack.log_tail()
            thread = agent_http.get(f"{base}/{second}/messages").json()["items"]
            assert [i["direction"] for i in thread] == ["out", "note", "in"]
            assert thread[0]["reply_to"] == inbound_id
            assert thread[0]["sender"] == {"type": "user", "id": agent_id}

            resolved = agent_http.patch(f"{base}/{second}", json={"status": "resolved"})
            assert resolved.json()["status"] == "resolved"
            write_in(SECOND, "Kak, satu lagi")
            reopened = wait_for(lambda: agent_http.get(f"{base}/{second}").json(), lambda c: c["status"] == "open")
            assert (reopened["status"], reopened["unread_count"]) == ("open", 1)

        # The same webhook delivered twice: counted once.
        wamid = "wamid.E2E-DUP-" + uuid.uuid4().hex
        first = listed["items"][1]["id"]
        for _ in range(2):
            _post_inbound_copy(sandbox, phone_number_id, FIRST, wamid)
        counted = wait_for(lambda: http.get(f"{base}/{first}").json(), lambda c: c["unread_count"] >= 2)
        assert counted["unread_count"] == 2
        wait_for(lambda: None, lambda _: False, timeout=1.5)  # the second copy has had time to be processed
        assert http.get(f"{base}/{first}").json()["unread_count"] == 2
        assert http.get(base).json()["counts"]["open"] == 2


def _post_inbound_copy(sandbox: str, phone_number_id: str, sender: str, wamid: str) -> None:
    """One more delivery of the same message (same wamid), signed by the sandbox like any webhook."""
    response = httpx.post(
        f"{sandbox}/_sandbox/inbound",
        json={"phone_number_id": phone_number_id, "from": sender, "text": "Dobel", "wamid": wamid},
    )
    assert response.status_code == 200, response.text
