"""Identifiers that make webhook effects exactly-once: inbound message ids derived from the wamid,
and the callback data that names an outbound message in its status webhooks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from relasify.data.messages import MessageLocation, callback_data, inbound_message_id, parse_callback_data


def test_inbound_id_is_stable_and_shaped_like_our_ids() -> None:
    wamid = "wamid.HBgNNjI4MTIzNDU2Nzg5MBUCABIYFjNFQjBBMUIyQzNENEU1RjZBN0I4QzkA"
    first = inbound_message_id(wamid)
    assert first == inbound_message_id(wamid)
    assert first.startswith("msg_")
    assert len(first) == 30
    assert set(first[4:]) <= set("0123456789abcdefghjkmnpqrstvwxyz")


@given(st.text(min_size=1, max_size=80), st.text(min_size=1, max_size=80))
def test_distinct_wamids_get_distinct_ids(a: str, b: str) -> None:
    assert (inbound_message_id(a) == inbound_message_id(b)) == (a == b)


def test_callback_data_round_trip() -> None:
    assert parse_callback_data(callback_data("ws_1", "msg_2")) == MessageLocation("ws_1", "msg_2")


def test_foreign_or_malformed_callback_data_is_ignored() -> None:
    for value in (None, "", "crm:tenant-42:msg-8f1c2a", "rls1:ws", "rls1::msg", "rls1:ws:", "rls1:a:b:c"):
        assert parse_callback_data(value) is None
