"""Real-time updates over HTTP (SPEC section 5b): the change feed written in the same transaction as
each change, read back with `GET .../changes?since=`, and one-use WebSocket tickets."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from relasify import clock
from relasify.data import changes as feed
from relasify.data import realtime as realtime_store
from relasify.settings import get_settings

from tests.integration.api.test_inbox_api import call, customer_writes
from tests.integration.api.test_send_support import AGENT, OWNER, SendingEnv, sending_environment
from tests.support.api import ApiClient

OUTSIDER = "outsider@example.com"
CUSTOMER = "6281211119001"


@pytest.fixture
def env(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[SendingEnv]:
    monkeypatch.setattr(feed, "SETTLE", timedelta(0))  # tests read back at once (one test keeps it)
    yield from sending_environment(api, monkeypatch)


def changes(env: SendingEnv, since: str | None = None, *, user: str = AGENT, limit: int | None = None) -> Any:
    query = []
    if since is not None:
        query.append(f"since={since}")
    if limit is not None:
        query.append(f"limit={limit}")
    return call(env, "GET", "/changes" + ("?" + "&".join(query) if query else ""), user=user)


def conversation_of(env: SendingEnv) -> str:
    return call(env, "GET", "/conversations").json["items"][0]["id"]


def test_each_change_writes_one_event_in_order(env: SendingEnv) -> None:
    start = changes(env).json["next_since"]
    customer_writes("Kak, paket saya belum sampai", CUSTOMER)
    conversation = conversation_of(env)
    note = call(env, "POST", f"/conversations/{conversation}/notes", {"body": "cek resi"}).json
    assert call(env, "PATCH", f"/conversations/{conversation}", {"status": "pending"}).status == 200
    assert call(env, "POST", f"/conversations/{conversation}/read", {}).status == 200
    page = changes(env, start)
    assert page.status == 200
    items = page.json["items"]
    assert [i["type"] for i in items] == [
        "message.created",
        "note.created",
        "conversation.updated",
        "conversation.updated",
    ]
    assert all(i["workspace_id"] == env.ws and i["conversation_id"] == conversation for i in items)
    assert items[1]["message_id"] == note["id"]
    assert items[2].get("message_id") is None  # a conversation event names no message
    seqs = [i["seq"] for i in items]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 4
    assert page.json["next_since"] >= seqs[-1]  # the settle horizon: nothing more up to it
    # Ids only: no content of any kind travels in an event.
    assert all(set(i) <= {"seq", "workspace_id", "type", "conversation_id", "message_id"} for i in items)
    assert "paket" not in page.body.decode()
    assert "resi" not in page.body.decode()
    # Following next_since: nothing new, the cursor stays.
    again = changes(env, page.json["next_since"]).json
    assert again["items"] == []
    assert again["next_since"] >= page.json["next_since"]


def test_a_duplicate_delivery_writes_no_second_event(env: SendingEnv) -> None:
    start = changes(env).json["next_since"]
    customer_writes("halo", CUSTOMER, wamid="wamid.DUP1")
    customer_writes("halo", CUSTOMER, wamid="wamid.DUP1")
    assert [i["type"] for i in changes(env, start).json["items"]] == ["message.created"]


def test_the_event_item_is_in_the_same_transaction_as_the_change(
    env: SendingEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused transaction (here: the event item cannot be written) leaves neither the message
    nor the conversation: the event and the change are one write."""
    start = changes(env).json["next_since"]

    def broken(ws: str, event_type: str, conversation_id: str, message_id: str | None = None) -> Any:
        item = feed.ChangeEventModel(feed.change_pk(ws), "x" * 2000, ws_id=ws, seq="x", event_type=event_type)
        item.conversation_id = "y" * 500_000  # over DynamoDB's 400 KB item limit: the transaction fails
        return item

    monkeypatch.setattr(feed, "event_item", broken)
    with pytest.raises(Exception):  # noqa: B017, PT011 - the write itself fails, whatever its type
        customer_writes("hilang?", CUSTOMER, wamid="wamid.TX1")
    monkeypatch.undo()
    monkeypatch.setattr(feed, "SETTLE", timedelta(0))
    assert call(env, "GET", "/conversations").json["items"] == []
    assert changes(env, start).json["items"] == []


def test_pages_follow_next_since(env: SendingEnv) -> None:
    start = changes(env).json["next_since"]
    for n in range(5):
        customer_writes(f"pesan {n}", CUSTOMER)
    first = changes(env, start, limit=2).json
    second = changes(env, first["next_since"], limit=2).json
    third = changes(env, second["next_since"], limit=2).json
    seen = [i["seq"] for page in (first, second, third) for i in page["items"]]
    assert len(first["items"]) == 2
    assert len(second["items"]) == 2
    assert len(third["items"]) == 1
    assert seen == sorted(seen)
    assert len(set(seen)) == 5
    assert [i["seq"] for i in changes(env, start).json["items"]] == seen


def test_unsettled_events_wait(env: SendingEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """An event younger than SETTLE is not served yet (a writer with an older seq may still commit)."""
    start = changes(env).json["next_since"]
    customer_writes("baru saja", CUSTOMER)
    monkeypatch.setattr(feed, "SETTLE", timedelta(minutes=5))
    assert changes(env, start).json == {"items": [], "next_since": start}  # start is past the horizon
    monkeypatch.setattr(feed, "SETTLE", timedelta(0))
    assert len(changes(env, start).json["items"]) == 1


def test_changes_older_than_48_hours_are_gone(env: SendingEnv) -> None:
    old = feed.seq_at(clock.now() - timedelta(hours=48, minutes=1), last=False)
    answer = changes(env, old)
    assert answer.status == 410
    assert answer.json["type"].endswith("/changes-expired")
    recent = feed.seq_at(clock.now() - timedelta(hours=47), last=False)
    assert changes(env, recent).status == 200


@pytest.mark.parametrize("since", ["abc", "0" * 25, "I" * 26, "0" * 27, "01arz3ndektsv4rrffq69g5fa!"])
def test_a_malformed_since_is_a_422(env: SendingEnv, since: str) -> None:
    answer = changes(env, since)
    assert answer.status == 422
    assert answer.content_type.startswith("application/problem+json")


def test_another_workspace_sees_none_of_the_events(env: SendingEnv) -> None:
    start = changes(env).json["next_since"]
    customer_writes("rahasia toko A", CUSTOMER)
    mine = changes(env, start).json["items"]
    assert len(mine) == 1
    other = env.api.create_workspace(OUTSIDER)
    theirs = env.api.get(f"/v1/workspaces/{other}/changes?since={start}", as_user=OUTSIDER)
    assert theirs.status == 200
    assert theirs.json["items"] == []
    # ... and the outsider cannot read this workspace's feed at all (not a member: 404).
    assert env.api.get(f"/v1/workspaces/{env.ws}/changes?since={start}", as_user=OUTSIDER).status == 404


# --- tickets -------------------------------------------------------------------------------------------


def _table_items() -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb").Table(get_settings().table_name)
    return table.scan()["Items"]


def test_a_ticket_is_one_use_and_stored_only_as_a_hash(env: SendingEnv) -> None:
    answer = env.api.post("/v1/realtime/tickets", None, as_user=AGENT)
    assert answer.status == 201
    body = answer.json
    assert body["expires_in"] == 60
    assert body["url"] == "ws://127.0.0.1:3001"
    ticket = body["ticket"]
    stored = [i for i in _table_items() if str(i["PK"]).startswith("RTTICKET#")]
    assert [i["PK"] for i in stored] == ["RTTICKET#" + hashlib.sha256(ticket.encode()).hexdigest()]
    assert ticket not in repr(_table_items())
    expires = int(stored[0]["expires_at"])
    assert abs(expires - (clock.epoch() + 60)) <= 2
    agent_sub = stored[0]["sub"]
    assert realtime_store.consume_ticket(ticket) == agent_sub
    assert realtime_store.consume_ticket(ticket) is None  # used
    assert realtime_store.consume_ticket("rt_" + "A" * 43) is None  # never issued
    assert not [i for i in _table_items() if str(i["PK"]).startswith("RTTICKET#")]


def test_an_expired_ticket_is_refused(env: SendingEnv) -> None:
    ticket = env.api.post("/v1/realtime/tickets", None, as_user=OWNER).json["ticket"]
    now = clock.now()
    clock.set_clock(lambda: now + timedelta(seconds=61))
    assert realtime_store.consume_ticket(ticket) is None


def test_a_ticket_needs_a_token(env: SendingEnv) -> None:
    answer = env.api.request("POST", "/v1/realtime/tickets")
    assert answer.status == 401
    assert not [i for i in _table_items() if str(i["PK"]).startswith("RTTICKET#")]


def _reaction(env: SendingEnv, target_wamid: str, emoji: str) -> None:
    from relasify.services import webhook

    from tests.integration.api.test_send_support import PHONE_NUMBER_ID

    webhook.process_payload(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102345678901234",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "6281234500000",
                                    "phone_number_id": PHONE_NUMBER_ID,
                                },
                                "contacts": [{"profile": {"name": "Pelanggan"}, "wa_id": CUSTOMER}],
                                "messages": [
                                    {
                                        "from": CUSTOMER,
                                        "id": f"wamid.REACT{emoji.encode().hex()}",
                                        "timestamp": str(clock.epoch()),
                                        "type": "reaction",
                                        "reaction": {"message_id": target_wamid, "emoji": emoji},
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
    )


def test_a_reply_its_statuses_and_a_reaction_are_events_of_the_message(env: SendingEnv) -> None:
    import time

    start = changes(env).json["next_since"]
    customer_writes("Ada stok?", CUSTOMER)
    conversation = conversation_of(env)
    sent = env.post_message({"contact_id": conversation, "type": "text", "text": {"body": "Ada kak"}}, "k-rt-1")
    assert sent.status in (200, 201, 202), sent.body
    reply_id = sent.json["id"]
    deadline = time.monotonic() + 10
    updates: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        env.sandbox.wait_until_idle()
        items = changes(env, start).json["items"]
        updates = [i for i in items if i["type"] == "message.updated" and i["message_id"] == reply_id]
        if len(updates) >= 2:  # sent, delivered (the sandbox's statuses)
            break
        time.sleep(0.1)
    items = changes(env, start).json["items"]
    assert [(i["type"], i.get("message_id") == reply_id) for i in items[:2]] == [
        ("message.created", False),
        ("message.created", True),
    ]
    assert len(updates) >= 2
    assert all(i["conversation_id"] == conversation for i in items)
    # A reaction on the reply is one more update of it.
    wamid = env.api.get(f"/v1/workspaces/{env.ws}/messages/{reply_id}", as_user=AGENT).json["wamid"]
    before = len(updates)
    _reaction(env, wamid, "\U0001f44d")
    after = [i for i in changes(env, start).json["items"] if i["type"] == "message.updated"]
    assert len([i for i in after if i["message_id"] == reply_id]) == before + 1
