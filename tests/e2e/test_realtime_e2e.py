"""Real-time updates end to end on the local stack (SPEC section 5b): a client connects to the
WebSocket API with a one-use ticket; a customer writes in (sandbox, signed webhook, receiver, queue,
processor) and the client is pushed `message.created` through the table's stream, the publisher and
the management API; the reply's status webhooks push `message.updated`, a note `note.created`. A
client of another workspace, and a member removed meanwhile, receive none of it. A reused or unknown
ticket is refused at the handshake. After a disconnect, `changes?since=` returns exactly what was
missed."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.e2e.polling import wait_for

pytestmark = pytest.mark.e2e

OWNER = "realtime-owner-e2e@example.com"
AGENT = "realtime-agent-e2e@example.com"
OTHER = "realtime-other-e2e@example.com"
CUSTOMER = "6281288880001"
SETTLE_SECONDS = 2.5  # the feed serves events older than 2 s (relasify.data.changes.SETTLE)


def _ticket(stack: Any, email: str) -> str:
    answer = httpx.post(f"{stack.base_url}/v1/realtime/tickets", headers=stack.auth_headers(email), timeout=10)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["url"] == stack.realtime_url
    assert body["expires_in"] == 60
    return str(body["ticket"])


@contextmanager
def _socket(stack: Any, ticket: str) -> Iterator[ClientConnection]:
    with connect(f"{stack.realtime_url}/?ticket={ticket}", open_timeout=10) as socket:
        yield socket


def _receive(socket: ClientConnection, until: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Events received until `until(events)` holds or `timeout` passes (then what was received)."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not until(events) and time.monotonic() < deadline:
        try:
            events.append(json.loads(socket.recv(timeout=max(0.01, deadline - time.monotonic()))))
        except TimeoutError:
            break
    return events


def _quiet(socket: ClientConnection, seconds: float = 1.5) -> list[dict[str, Any]]:
    """Everything that arrives until nothing has for `seconds`."""
    events: list[dict[str, Any]] = []
    while True:
        try:
            events.append(json.loads(socket.recv(timeout=seconds)))
        except TimeoutError:
            return events


def test_pushes_follow_the_changes_and_the_feed_replays_what_was_missed(local_stack: Any) -> None:
    sandbox = local_stack.sandbox_url
    with (
        local_stack.client(headers=local_stack.auth_headers(OWNER)) as http,
        local_stack.client(headers=local_stack.auth_headers(OTHER)) as other_http,
        local_stack.client(headers=local_stack.auth_headers(AGENT)) as agent_http,
    ):
        ws = http.post("/v1/workspaces", json={"name": "Toko Realtime"}).json()["id"]
        other_ws = other_http.post("/v1/workspaces", json={"name": "Toko Lain"}).json()["id"]
        phone_number_id = local_stack.connect_whatsapp(http, ws, "EAAG-e2e-realtime")
        assert http.post(f"/v1/workspaces/{ws}/members", json={"email": AGENT, "role": "agent"}).status_code == 201
        assert agent_http.get(f"/v1/workspaces/{ws}/members").status_code == 200  # joins
        agent_id = next(
            m["user_id"] for m in http.get(f"/v1/workspaces/{ws}/members").json()["items"] if m["email"] == AGENT
        )
        start = http.get(f"/v1/workspaces/{ws}/changes").json()["next_since"]

        # A ticket is one use; an unknown one is refused too (expiry: tests/integration/api/test_realtime_api.py).
        ticket = _ticket(local_stack, OWNER)
        with (
            _socket(local_stack, ticket) as mine,
            _socket(local_stack, _ticket(local_stack, OTHER)) as theirs,
            _socket(local_stack, _ticket(local_stack, AGENT)) as removed,
        ):
            for bad in (ticket, "rt_" + "x" * 43):
                with pytest.raises(InvalidStatus) as refused:
                    connect(f"{local_stack.realtime_url}/?ticket={bad}", open_timeout=10).close()
                assert refused.value.response.status_code == 403
            with pytest.raises(InvalidStatus):
                connect(local_stack.realtime_url, open_timeout=10).close()

            # The agent is removed: from now on it receives nothing of this workspace.
            assert http.delete(f"/v1/workspaces/{ws}/members/{agent_id}").status_code in (200, 204)

            posted = httpx.post(
                f"{sandbox}/_sandbox/inbound",
                json={"phone_number_id": phone_number_id, "from": CUSTOMER, "text": "Kak, ada stok?"},
            )
            assert posted.status_code == 200, posted.text
            created = _receive(mine, lambda e: any(x["type"] == "message.created" for x in e))
            assert [e["type"] for e in created] == ["message.created"], local_stack.log_tail()
            conversation = created[0]["conversation_id"]
            assert created[0]["workspace_id"] == ws
            assert set(created[0]) == {"seq", "workspace_id", "type", "conversation_id", "message_id"}
            inbound_id = created[0]["message_id"]
            assert http.get(f"/v1/workspaces/{ws}/messages/{inbound_id}").status_code == 200

            reply = http.post(
                f"/v1/workspaces/{ws}/messages",
                json={"contact_id": conversation, "type": "text", "text": {"body": "Ada kak"}},
                headers={"Idempotency-Key": str(uuid.uuid4())},
            )
            assert reply.status_code in (200, 201, 202), reply.text
            reply_id = reply.json()["id"]
            note = http.post(f"/v1/workspaces/{ws}/conversations/{conversation}/notes", json={"body": "cek gudang"})
            assert note.status_code == 201, note.text
            pushed = created + _quiet(mine)
            kinds = [(e["type"], e.get("message_id")) for e in pushed]
            assert ("message.created", reply_id) in kinds
            assert ("note.created", note.json()["id"]) in kinds
            assert ("message.updated", reply_id) in kinds, kinds  # the sandbox's status webhooks
            assert {e["conversation_id"] for e in pushed} == {conversation}
            seqs = [e["seq"] for e in pushed]
            assert len(set(seqs)) == len(seqs)

            # Another workspace's client and the removed member got none of it.
            assert _quiet(theirs, 0.5) == []
            assert _quiet(removed, 0.1) == []

        # Disconnected: what happens now is replayed by the feed, exactly.
        last = max(seqs)
        assert (
            http.patch(f"/v1/workspaces/{ws}/conversations/{conversation}", json={"status": "pending"}).status_code
            == 200
        )
        httpx.post(
            f"{sandbox}/_sandbox/inbound",
            json={"phone_number_id": phone_number_id, "from": CUSTOMER, "text": "Jadi berapa?"},
        )
        missed = wait_for(
            lambda: http.get(f"/v1/workspaces/{ws}/changes?since={last}").json(),
            lambda body: len(body["items"]) >= 2,
        )
        time.sleep(SETTLE_SECONDS)
        missed = http.get(f"/v1/workspaces/{ws}/changes?since={last}").json()
        assert [i["type"] for i in missed["items"]] == ["conversation.updated", "message.created"], missed
        assert all(i["conversation_id"] == conversation for i in missed["items"])
        # ... and the feed from the start is what was pushed, then what was missed.
        everything = http.get(f"/v1/workspaces/{ws}/changes?since={start}").json()["items"]
        assert [i["seq"] for i in everything] == sorted(seqs) + [i["seq"] for i in missed["items"]]
        assert other_http.get(f"/v1/workspaces/{other_ws}/changes?since={start}").json()["items"] == []
