"""The thread's `Timeline` index (moto): thread items (inbound, outbound, notes) are written into it and
into no GSI1; a status update leaves its entry as it was; pages read through it keep their order and
resume a cursor issued by the GSI1 thread before; and the one-off migration moves items written
before the index (GSI1 keys, no timeline keys), which erasure finds in the meantime. A second run
finds nothing to do."""

from __future__ import annotations

from typing import Any

import pytest
from relasify.data import conversations, erasure, outbox, table_scan, timeline, timeline_backfill
from relasify.data import messages as message_store
from relasify.data import models as m
from relasify.data.base import connection
from relasify.data.cursor import encode_cursor
from relasify.services import statuses, webhook
from relasify.settings import get_settings

from tests.integration.test_inbox_write_path import (  # noqa: F401
    BASE_TS,
    WS,
    connected,
    contact_id,
    inbound,
    status,
)

TIMELINE = ("TimelinePK", "TimelineSK")
LEGACY = ("GSI1PK", "GSI1SK")


def _raw(pk: str, sk: str = m.MessageModel.SK_VALUE) -> dict[str, Any]:
    request = {"TableName": get_settings().table_name, "Key": {"PK": {"S": pk}, "SK": {"S": sk}}}
    return connection().dispatch("GetItem", request)["Item"]


def _index(name: str, pk: str) -> list[dict[str, Any]]:
    key = "TimelinePK" if name == "Timeline" else "GSI1PK"
    request = {
        "TableName": get_settings().table_name,
        "IndexName": name,
        "KeyConditionExpression": "#h = :h",
        "ExpressionAttributeNames": {"#h": key},
        "ExpressionAttributeValues": {":h": {"S": pk}},
    }
    return connection().dispatch("Query", request)["Items"]


def _make_legacy(pk: str) -> None:
    """The item as the code before the index wrote it: the same keys as GSI1PK/GSI1SK, no timeline keys."""
    item = _raw(pk)
    connection().dispatch(
        "UpdateItem",
        {
            "TableName": get_settings().table_name,
            "Key": {"PK": {"S": pk}, "SK": {"S": m.MessageModel.SK_VALUE}},
            "UpdateExpression": "SET GSI1PK = :pk, GSI1SK = :sk REMOVE TimelinePK, TimelineSK",
            "ExpressionAttributeValues": {":pk": item["TimelinePK"], ":sk": item["TimelineSK"]},
        },
    )


def _thread(cid: str) -> list[str]:
    return [i.id for i in outbox.conversation_page(WS, cid, limit=50).items]


def _three_items() -> tuple[str, list[str]]:
    """An inbound message, a reply and a note, in that order; the contact id and their message PKs."""
    webhook.process_payload(inbound("Ada stok?", wamid="wamid.TLIN", ts=BASE_TS + 10))
    cid = contact_id()
    reply, created = outbox.put_accepted(
        outbox.NewOutbound(ws=WS, message_id="msg_tlreply", contact_id=cid, type="text", content={"body": "Ada kak"})
    )
    assert created
    note = conversations.add_note(WS, cid, "user_agent", "VIP")
    ids = (message_store.inbound_message_id("wamid.TLIN"), reply.id, note.id)
    return cid, [m.message_pk(WS, i) for i in ids]


@pytest.mark.usefixtures("connected")
def test_thread_items_are_in_the_timeline_only_and_a_status_leaves_their_entry_alone() -> None:
    cid, pks = _three_items()
    for pk in pks:
        item = _raw(pk)
        assert item["TimelinePK"]["S"] == m.conversation_pk(WS, cid)
        assert not set(LEGACY) & set(item)
    entries = _index("Timeline", m.conversation_pk(WS, cid))
    # Keys and the projected attributes only: nothing a status, a reaction or a media copy changes.
    assert {name for e in entries for name in e} == {"PK", "SK", *TIMELINE, "direction", "expires_at"}
    assert [e["direction"]["S"] for e in entries] == ["in", "out", "note"]

    reply_pk = pks[1]
    reply_id = reply_pk.rsplit("#", 1)[-1]
    statuses.apply_pending_statuses(WS, reply_id, "wamid.TL1")
    callback = message_store.callback_data(WS, reply_id)
    webhook.process_payload(status("wamid.TL1", "delivered", callback=callback, ts=BASE_TS + 30))
    assert _raw(reply_pk)["status"]["S"] == "delivered"
    assert _index("Timeline", m.conversation_pk(WS, cid)) == entries  # the entry was not rewritten
    assert conversations.count_inbound_after(WS, cid, None) == 1


@pytest.mark.usefixtures("connected")
def test_pages_keep_their_order_and_resume_a_cursor_of_the_gsi1_thread() -> None:
    for i in range(5):
        webhook.process_payload(inbound(f"m{i}", wamid=f"wamid.P{i}", ts=BASE_TS + 10 * (i + 1)))
    cid = contact_id()
    newest_first = [message_store.inbound_message_id(f"wamid.P{i}") for i in reversed(range(5))]
    first = outbox.conversation_page(WS, cid, limit=2)
    assert [i.id for i in first.items] == newest_first[:2]
    # The same position as the GSI1 thread's Query returned it before the index (same key values).
    last = _raw(m.message_pk(WS, newest_first[1]))
    legacy_key = {"PK": last["PK"], "SK": last["SK"], "GSI1PK": last["TimelinePK"], "GSI1SK": last["TimelineSK"]}
    legacy_cursor = encode_cursor(legacy_key, ws=WS, scope=f"conversation:{cid}")
    assert outbox.conversation_page(WS, cid, limit=2, cursor=first.next_cursor) == outbox.conversation_page(
        WS, cid, limit=2, cursor=legacy_cursor
    )
    rest = outbox.conversation_page(WS, cid, limit=10, cursor=legacy_cursor)
    assert [i.id for i in rest.items] == newest_first[2:]
    assert rest.next_cursor is None
    assert timeline.start_key(None) is None


@pytest.mark.usefixtures("connected")
def test_backfill_moves_items_written_before_the_index_and_erasure_finds_them_meanwhile() -> None:
    cid, pks = _three_items()
    webhook.process_payload(inbound("other", sender="6281234567899", ts=BASE_TS + 40))  # another thread
    before = {pk: _raw(pk) for pk in pks}
    for pk in pks:
        _make_legacy(pk)
    assert _thread(cid) == []  # not in the index yet
    assert conversations.count_inbound_after(WS, cid, None) == 0
    # Erasure reads both indexes until the migration has run.
    assert sorted(i.key[0] for i in erasure.conversation_items(WS, cid)) == sorted(pks)

    assert timeline_backfill.backfill(segments=2) == {"message": 3}

    assert _thread(cid) == [pk.rsplit("#", 1)[-1] for pk in reversed(pks)]
    assert conversations.count_inbound_after(WS, cid, None) == 1
    for pk in pks:
        assert _raw(pk) == before[pk]  # the same item as written with the index: nothing else changed
    assert _index("GSI1", m.conversation_pk(WS, cid)) == []
    assert sorted(i.key[0] for i in erasure.conversation_items(WS, cid)) == sorted(pks)
    assert timeline_backfill.backfill(segments=2) == {}


@pytest.mark.usefixtures("connected")
def test_backfill_leaves_an_item_erased_meanwhile_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    cid, pks = _three_items()
    _make_legacy(pks[0])
    found = [i for i in table_scan.scan({}, 0, 1) if i["PK"]["S"] == pks[0]]
    assert len(found) == 1
    erasure.delete_items([(pks[0], m.MessageModel.SK_VALUE)])  # erased after the Scan read it
    monkeypatch.setattr(table_scan, "scan", lambda request, segment, segments: iter(found))

    assert timeline_backfill.backfill(segments=1) == {"gone": 1}

    request = {"TableName": get_settings().table_name, "Key": {"PK": {"S": pks[0]}, "SK": {"S": "MSG"}}}
    assert "Item" not in connection().dispatch("GetItem", request)  # not re-created by the update
    assert _thread(cid) == [pk.rsplit("#", 1)[-1] for pk in reversed(pks[1:])]
