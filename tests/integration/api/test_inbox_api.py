"""The inbox routes over HTTP (in-process gateway, moto, the WhatsApp sandbox): listing with counts,
assignment rules, snooze, read state with WhatsApp read receipts, notes, replies and the thread."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from relasify import clock
from relasify.services import webhook

from tests.integration.api.test_send_support import AGENT, OWNER, PHONE_NUMBER_ID, SendingEnv, sending_environment
from tests.support.api import ApiClient

OTHER_AGENT = "agent2@example.com"
_seq = itertools.count(1)


@pytest.fixture
def env(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[SendingEnv]:
    yield from sending_environment(api, monkeypatch)


def customer_writes(text: str, sender: str, *, wamid: str | None = None, ts: int | None = None) -> str:
    """An inbound message webhook, applied by the processor service (what the queue worker runs)."""
    wamid = wamid or f"wamid.API{next(_seq)}"
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102345678901234",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "6281234500000", "phone_number_id": PHONE_NUMBER_ID},
                            "contacts": [{"profile": {"name": f"Pelanggan {sender[-4:]}"}, "wa_id": sender}],
                            "messages": [
                                {
                                    "from": sender,
                                    "id": wamid,
                                    "timestamp": str(ts or int(clock.now().timestamp())),
                                    "type": "text",
                                    "text": {"body": text},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    webhook.process_payload(payload)
    return wamid


def call(env: SendingEnv, method: str, path: str, body: Any = None, *, user: str = AGENT) -> Any:
    return env.api.request(method, f"/v1/workspaces/{env.ws}{path}", json_body=body, as_user=user)


def user_id(env: SendingEnv, email: str) -> str:
    members = call(env, "GET", "/members", user=OWNER).json["items"]
    return next(m["user_id"] for m in members if m["email"] == email)


def two_customers(env: SendingEnv) -> tuple[str, str]:
    customer_writes("Kak, paket saya belum sampai", "6281211110001", ts=int(clock.now().timestamp()) - 60)
    customer_writes("Halo, mau tanya harga", "6281211110002", ts=int(clock.now().timestamp()) - 30)
    items = call(env, "GET", "/conversations").json["items"]
    by_phone = {i["contact"]["phone"]: i["id"] for i in items}
    return by_phone["+6281211110001"], by_phone["+6281211110002"]


def test_the_inbox_lists_conversations_newest_first_with_counts(env: SendingEnv) -> None:
    first, second = two_customers(env)
    listed = call(env, "GET", "/conversations")
    assert listed.status == 200, listed.body
    body = listed.json
    assert [i["id"] for i in body["items"]] == [second, first]
    assert [i["unread_count"] for i in body["items"]] == [1, 1]
    item = body["items"][0]
    assert item["status"] == "open"
    assert item["assignee"] is None
    assert item["contact"] == {"id": second, "name": "Pelanggan 0002", "phone": "+6281211110002"}
    assert item["last_message"]["preview"] == "Halo, mau tanya harga"
    assert item["last_message"]["direction"] == "in"
    window = datetime.fromisoformat(item["window_expires_at"]) - datetime.fromisoformat(item["last_inbound_at"])
    assert window == timedelta(hours=24)
    assert body["counts"] == {"open": 2, "pending": 0, "snoozed": 0, "mine": 0, "unassigned": 2}
    # paging: one per page, the cursor continues, then ends
    page1 = call(env, "GET", "/conversations?limit=1").json
    page2 = call(env, "GET", f"/conversations?limit=1&cursor={page1['next_cursor']}").json
    assert [page1["items"][0]["id"], page2["items"][0]["id"]] == [second, first]
    assert page2["next_cursor"] is None
    # a cursor of another listing is refused
    assert call(env, "GET", f"/conversations?status=all&limit=1&cursor={page1['next_cursor']}").status == 400
    assert call(env, "GET", "/conversations?status=closed").status == 422


def test_assignment_rules(env: SendingEnv) -> None:
    env.api.add_member(env.ws, OWNER, OTHER_AGENT, "agent")
    first, _ = two_customers(env)
    agent, other = user_id(env, AGENT), user_id(env, OTHER_AGENT)
    # an agent may not assign someone else (403, nothing changed)
    refused = call(env, "PATCH", f"/conversations/{first}", {"assignee": other})
    assert refused.status == 403
    assert call(env, "GET", f"/conversations/{first}").json["assignee"] is None
    # not a member: 422
    assert call(env, "PATCH", f"/conversations/{first}", {"assignee": "user_nobody"}, user=OWNER).status == 422
    # an admin (here the owner) assigns the agent
    assigned = call(env, "PATCH", f"/conversations/{first}", {"assignee": agent}, user=OWNER)
    assert assigned.status == 200
    assert assigned.json["assignee"] == agent
    mine = call(env, "GET", "/conversations?assignee=me").json
    assert [i["id"] for i in mine["items"]] == [first]
    assert mine["counts"]["mine"] == 1
    assert mine["counts"]["unassigned"] == 1
    assert [i["id"] for i in call(env, "GET", "/conversations?assignee=me", user=OTHER_AGENT).json["items"]] == []
    # the other agent cannot unassign a colleague, the agent can unassign themselves
    assert call(env, "PATCH", f"/conversations/{first}", {"assignee": None}, user=OTHER_AGENT).status == 403
    assert call(env, "PATCH", f"/conversations/{first}", {"assignee": None}).json["assignee"] is None
    # and may take it themselves
    assert call(env, "PATCH", f"/conversations/{first}", {"assignee": agent}).json["assignee"] == agent
    assert [i["id"] for i in call(env, "GET", f"/conversations?assignee={agent}").json["items"]] == [first]


def test_status_and_snooze(env: SendingEnv) -> None:
    first, second = two_customers(env)
    assert call(env, "PATCH", f"/conversations/{first}", {"status": "snoozed"}).status == 422
    past = (clock.now() - timedelta(minutes=1)).isoformat()
    assert call(env, "PATCH", f"/conversations/{first}", {"status": "snoozed", "snoozed_until": past}).status == 422
    assert call(env, "PATCH", f"/conversations/{first}", {"snoozed_until": past}).status == 422
    until = clock.now() + timedelta(hours=2)
    snoozed = call(env, "PATCH", f"/conversations/{first}", {"status": "snoozed", "snoozed_until": until.isoformat()})
    assert snoozed.status == 200
    assert snoozed.json["status"] == "snoozed"
    body = call(env, "GET", "/conversations").json
    assert [i["id"] for i in body["items"]] == [second]
    assert body["counts"]["snoozed"] == 1
    assert body["counts"]["open"] == 1
    assert [i["id"] for i in call(env, "GET", "/conversations?status=snoozed").json["items"]] == [first]
    # the snooze ends by itself: later, the list shows it open again, without any write
    real_now = clock.now()
    clock.set_clock(lambda: real_now + timedelta(hours=3))
    try:
        body = call(env, "GET", "/conversations").json
        assert sorted(i["id"] for i in body["items"]) == sorted([first, second])
        assert body["counts"]["snoozed"] == 0
        assert body["counts"]["open"] == 2
        assert call(env, "GET", f"/conversations/{first}").json["status"] == "open"
    finally:
        clock.set_clock(None)
    resolved = call(env, "PATCH", f"/conversations/{second}", {"status": "resolved"})
    assert resolved.json["status"] == "resolved"
    assert [i["id"] for i in call(env, "GET", "/conversations?status=resolved").json["items"]] == [second]
    customer_writes("Masih ada?", "6281211110002")
    reopened = call(env, "GET", f"/conversations/{second}").json
    assert (reopened["status"], reopened["unread_count"]) == ("open", 2)


def test_read_with_receipt_and_typing_reaches_whatsapp(env: SendingEnv) -> None:
    first, _ = two_customers(env)
    wamid = customer_writes("Satu lagi", "6281211110001")
    assert call(env, "GET", f"/conversations/{first}").json["unread_count"] == 2
    read = call(env, "POST", f"/conversations/{first}/read", {"receipt": True, "typing": True})
    assert read.status == 200, read.body
    assert read.json["receipt_sent"] is True
    assert read.json["conversation"]["unread_count"] == 0
    receipts = [s for s in env.sends() if s.get("status") == "read"]
    assert receipts == [
        {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": wamid,
            "typing_indicator": {"type": "text"},
            "phone_number_id": PHONE_NUMBER_ID,
        }
    ]
    # without receipt nothing goes to WhatsApp
    customer_writes("Tolong dicek", "6281211110001")
    quiet = call(env, "POST", f"/conversations/{first}/read", {})
    assert quiet.json["receipt_sent"] is False
    assert quiet.json["conversation"]["unread_count"] == 0
    assert len([s for s in env.sends() if s.get("status") == "read"]) == 1
    # up to a message: the ones after it stay unread
    thread = call(env, "GET", f"/conversations/{first}/messages").json["items"]
    oldest = thread[-1]["id"]
    partial = call(env, "POST", f"/conversations/{first}/read", {"up_to_message_id": oldest})
    assert partial.json["conversation"]["unread_count"] == 2
    assert call(env, "POST", f"/conversations/{first}/read", {"up_to_message_id": "msg_unknown"}).status == 422


def test_notes_and_replies_in_the_thread(env: SendingEnv) -> None:
    first, _ = two_customers(env)
    agent = user_id(env, AGENT)
    inbound = call(env, "GET", f"/conversations/{first}/messages").json["items"][0]
    sends_before = len(env.sends())
    note = call(env, "POST", f"/conversations/{first}/notes", {"body": "Cek resi di gudang dulu"})
    assert note.status == 201, note.body
    assert (note.json["type"], note.json["direction"], note.json["author"]) == ("note", "note", agent)
    assert len(env.sends()) == sends_before  # never sent
    assert call(env, "POST", f"/conversations/{first}/notes", {"body": ""}).status == 422
    reply = env.post_message(
        {
            "contact_id": first,
            "type": "text",
            "text": {"body": "Sedang kami cek kak"},
            "context": {"message_id": inbound["id"]},
        },
        "reply-1",
    )
    assert reply.status in (200, 201), reply.body
    graph = [s for s in env.sends() if s.get("type") == "text"][-1]
    assert graph["context"] == {"message_id": inbound["wamid"]}
    thread = call(env, "GET", f"/conversations/{first}/messages")
    assert thread.status == 200
    items = thread.json["items"]
    assert [i["direction"] for i in items] == ["out", "note", "in"]
    assert items[0]["sender"] == {"type": "user", "id": agent}
    assert items[0]["reply_to"] == inbound["id"]
    assert items[1]["sender"] is None
    assert items[1]["author"] == agent
    same = call(env, "GET", f"/contacts/{first}/messages").json["items"]
    assert [i["id"] for i in same] == [i["id"] for i in items]
    # `since`: only what is newer than the page already shown
    since = thread.json["since_cursor"]
    assert call(env, "GET", f"/conversations/{first}/messages?since={since}").json["items"] == []
    # Meta's timestamps are whole seconds: this one is after the reply
    customer_writes("Terima kasih", "6281211110001", ts=int(clock.now().timestamp()) + 2)
    newer = call(env, "GET", f"/conversations/{first}/messages?since={since}").json
    assert [i["content"]["body"] for i in newer["items"]] == ["Terima kasih"]
    assert call(env, "GET", f"/conversations/{first}/messages?since={newer['since_cursor']}").json["items"] == []
    conversation = call(env, "GET", f"/conversations/{first}").json
    assert conversation["last_message"]["preview"] == "Terima kasih"
    # a reply to a message id of nobody: 422, nothing sent
    count = len(env.sends())
    bad = env.post_message(
        {"contact_id": first, "type": "text", "text": {"body": "x"}, "context": {"message_id": "msg_nope"}}, "reply-2"
    )
    assert bad.status == 422
    assert len(env.sends()) == count


def test_unknown_conversation_is_404(env: SendingEnv) -> None:
    assert call(env, "GET", "/conversations/ct_missing").status == 404
    assert call(env, "PATCH", "/conversations/ct_missing", {"status": "resolved"}).status == 404
    assert call(env, "POST", "/conversations/ct_missing/read", {}).status == 404
    assert call(env, "POST", "/conversations/ct_missing/notes", {"body": "x"}).status == 404


def test_unread_filter(env: SendingEnv) -> None:
    first, second = two_customers(env)
    call(env, "POST", f"/conversations/{first}/read", {})
    assert [i["id"] for i in call(env, "GET", "/conversations?unread=true").json["items"]] == [second]


def test_export_includes_the_conversation_and_notes_and_erasure_deletes_them(env: SendingEnv) -> None:
    from relasify.data import models as m

    first, second = two_customers(env)
    call(env, "POST", f"/conversations/{first}/notes", {"body": "Catatan internal"})
    exported = call(env, "GET", f"/contacts/{first}/export", user=OWNER)
    assert exported.status == 200, exported.body
    assert exported.json["conversation"]["last_message"]["preview"] == "Kak, paket saya belum sampai"
    assert [msg["direction"] for msg in exported.json["messages"]] == ["note", "in"]
    assert call(env, "POST", f"/contacts/{first}/erase", {}, user=OWNER).status in (200, 204)
    assert call(env, "GET", f"/conversations/{first}").status == 404
    with pytest.raises(m.ConversationModel.DoesNotExist):
        m.ConversationModel.get(m.conversation_pk(env.ws, first), "CONV")
    assert [i["id"] for i in call(env, "GET", "/conversations").json["items"]] == [second]
