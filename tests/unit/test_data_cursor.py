"""Pagination cursors: opaque, URL-safe, bound to workspace and listing, tamper-evident."""

from __future__ import annotations

import base64
import json

import pytest
from relasify.data.cursor import decode_cursor, encode_cursor
from relasify.errors import BadCursor
from relasify.settings import get_settings

KEY = {"PK": {"S": "WS#w1"}, "SK": {"S": "CONTACT#c9"}, "GSI1PK": {"S": "WS#w1#PHONE"}}


def test_round_trip_is_url_safe() -> None:
    cursor = encode_cursor(KEY, ws="w1", scope="contacts")
    assert cursor is not None
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    assert decode_cursor(cursor, ws="w1", scope="contacts") == KEY


def test_no_next_page_means_no_cursor() -> None:
    assert encode_cursor(None, ws="w1", scope="contacts") is None
    assert decode_cursor(None, ws="w1", scope="contacts") is None
    assert decode_cursor("", ws="w1", scope="contacts") is None


def test_cursor_from_another_workspace_is_rejected() -> None:
    cursor = encode_cursor(KEY, ws="w1", scope="contacts")
    with pytest.raises(BadCursor):
        decode_cursor(cursor, ws="w2", scope="contacts")


def test_cursor_from_another_listing_is_rejected() -> None:
    cursor = encode_cursor(KEY, ws="w1", scope="contacts")
    with pytest.raises(BadCursor):
        decode_cursor(cursor, ws="w1", scope="audit")


def test_tampered_payload_is_rejected() -> None:
    cursor = encode_cursor(KEY, ws="w1", scope="contacts")
    assert cursor is not None
    payload_text, signature = cursor.split(".")
    payload = json.loads(base64.urlsafe_b64decode(payload_text + "=" * (-len(payload_text) % 4)))
    payload["ws"] = "w2"  # rebinding to another workspace without the key
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    with pytest.raises(BadCursor):
        decode_cursor(f"{forged}.{signature}", ws="w2", scope="contacts")


@pytest.mark.parametrize("garbage", ["x", "abc.def", "....", "%%%.%%%", "a" * 5000, "eyJ2IjoxfQ.", ".sig"])
def test_garbage_is_rejected(garbage: str) -> None:
    with pytest.raises(BadCursor):
        decode_cursor(garbage, ws="w1", scope="contacts")


def test_cursor_signed_with_another_key_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    cursor = encode_cursor(KEY, ws="w1", scope="contacts")
    monkeypatch.setenv("CURSOR_SIGNING_KEY", "rotated")
    get_settings.cache_clear()
    try:
        with pytest.raises(BadCursor):
            decode_cursor(cursor, ws="w1", scope="contacts")
    finally:
        monkeypatch.delenv("CURSOR_SIGNING_KEY")
        get_settings.cache_clear()
