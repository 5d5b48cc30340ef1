"""The one-off migration to the `InboxByStatus` index (moto): conversations and contacts written
before it (GSI1/GSI2 keys, no inbox key) are found by the inbox after it, and shed their old keys;
a second run finds nothing to do."""

from __future__ import annotations

from typing import Any

import pytest
from relasify.data import inbox_backfill, inbox_index
from relasify.data import models as m
from relasify.data.base import connection
from relasify.services import webhook
from relasify.settings import get_settings

from tests.integration.test_inbox_write_path import WS, connected, contact_id, inbound  # noqa: F401

LEGACY = ("GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK")


def _raw(pk: str, sk: str) -> dict[str, Any]:
    request = {"TableName": get_settings().table_name, "Key": {"PK": {"S": pk}, "SK": {"S": sk}}}
    return connection().dispatch("GetItem", request)["Item"]


def _make_legacy(pk: str, sk: str, keys: dict[str, str]) -> None:
    """The item as the code before the index wrote it: GSI1/GSI2 keys, no inbox key."""
    values = {f":{name}": {"S": value} for name, value in keys.items()}
    sets = ", ".join(f"{name} = :{name}" for name in keys)
    connection().dispatch(
        "UpdateItem",
        {
            "TableName": get_settings().table_name,
            "Key": {"PK": {"S": pk}, "SK": {"S": sk}},
            "UpdateExpression": f"SET {sets} REMOVE InboxPK, InboxSK",
            "ExpressionAttributeValues": values,
        },
    )


def _open_ids() -> list[str]:
    page = inbox_index.list_page(WS, [inbox_index.stream(WS, "open")], limit=10, cursor=None, scope="t")
    return [c.id for c in page.items]


@pytest.mark.usefixtures("connected")
def test_backfill_puts_old_conversations_in_the_inbox_and_drops_old_index_keys() -> None:
    webhook.process_payload(inbound("halo"))
    cid = contact_id()
    conv_key = (m.conversation_pk(WS, cid), m.ConversationModel.SK_VALUE)
    sort_key = _raw(*conv_key)["InboxSK"]["S"]
    _make_legacy(
        *conv_key,
        {
            "GSI1PK": m.inbox_pk(WS, "open"),
            "GSI1SK": sort_key,
            "GSI2PK": m.inbox_pk(WS, "open") + "#A#none",
            "GSI2SK": sort_key,
        },
    )
    contact_key = (m.ws_pk(WS), f"{m.ContactModel.SK_PREFIX}{cid}")
    _make_legacy(*contact_key, {"GSI1PK": f"WS#{WS}#PHONE", "GSI1SK": f"+62812#{cid}"})
    before = _raw(*conv_key)
    assert _open_ids() == []  # not in the index yet

    assert inbox_backfill.backfill(segments=2) == {"conversation": 1, "contact": 1}

    assert _open_ids() == [cid]
    after = _raw(*conv_key)
    assert (after["InboxPK"]["S"], after["InboxSK"]["S"]) == (m.inbox_pk(WS, "open"), sort_key)
    assert not set(LEGACY) & (set(after) | set(_raw(*contact_key)))
    # Nothing else changed: no version bump, no content touched.
    assert {k: v for k, v in after.items() if not k.startswith("Inbox")} == {
        k: v for k, v in before.items() if k not in LEGACY
    }
    assert inbox_backfill.backfill(segments=2) == {}


@pytest.mark.usefixtures("connected")
def test_backfill_computes_the_key_of_a_conversation_without_any_index_key() -> None:
    webhook.process_payload(inbound("halo"))
    cid = contact_id()
    conv_key = (m.conversation_pk(WS, cid), m.ConversationModel.SK_VALUE)
    expected = (_raw(*conv_key)["InboxPK"]["S"], _raw(*conv_key)["InboxSK"]["S"])
    connection().dispatch(
        "UpdateItem",
        {
            "TableName": get_settings().table_name,
            "Key": {"PK": {"S": conv_key[0]}, "SK": {"S": conv_key[1]}},
            "UpdateExpression": "REMOVE InboxPK, InboxSK",
        },
    )
    assert _open_ids() == []
    assert inbox_backfill.backfill(segments=1) == {"conversation": 1}
    assert (_raw(*conv_key)["InboxPK"]["S"], _raw(*conv_key)["InboxSK"]["S"]) == expected
    assert _open_ids() == [cid]
