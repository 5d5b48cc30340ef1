"""Signing and erasure keys from SSM SecureString (relasify.data.secrets), as deployed; the plain
settings value only when no parameter is named."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from relasify.data import cursor, secrets, tombstones
from relasify.settings import get_settings


@pytest.fixture
def ssm(moto_account: None) -> Iterator[object]:
    client = boto3.client("ssm")
    client.put_parameter(Name="/t/cursor-key", Value="cursor-key-from-ssm", Type="SecureString")
    client.put_parameter(Name="/t/erasure-key", Value="erasure-key-from-ssm", Type="SecureString")
    parameters.clear_caches()
    get_settings.cache_clear()
    yield client
    parameters.clear_caches()
    get_settings.cache_clear()


def test_named_parameters_supply_the_keys(ssm: object, monkeypatch: pytest.MonkeyPatch) -> None:
    plain_cursor = cursor.encode_cursor({"PK": {"S": "WS#w#X"}}, ws="w", scope="s")
    plain_digest = tombstones.sender_digest("w", "wa_id", "6281200000001")

    monkeypatch.setenv("CURSOR_SIGNING_KEY_PARAMETER", "/t/cursor-key")
    monkeypatch.setenv("ERASURE_HASH_KEY_PARAMETER", "/t/erasure-key")
    get_settings.cache_clear()
    assert secrets.cursor_signing_key() == "cursor-key-from-ssm"
    assert secrets.erasure_hash_key() == "erasure-key-from-ssm"
    signed = cursor.encode_cursor({"PK": {"S": "WS#w#X"}}, ws="w", scope="s")
    assert signed != plain_cursor
    assert cursor.decode_cursor(signed, ws="w", scope="s") == {"PK": {"S": "WS#w#X"}}
    assert tombstones.sender_digest("w", "wa_id", "6281200000001") != plain_digest


def test_a_cursor_signed_with_another_key_is_refused(ssm: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from relasify.errors import BadCursor

    forged = cursor.encode_cursor({"PK": {"S": "WS#w#X"}}, ws="w", scope="s")  # the public dev key
    monkeypatch.setenv("CURSOR_SIGNING_KEY_PARAMETER", "/t/cursor-key")
    get_settings.cache_clear()
    with pytest.raises(BadCursor):
        cursor.decode_cursor(forged, ws="w", scope="s")


def test_without_a_parameter_name_the_plain_value_is_used(ssm: object) -> None:
    assert secrets.cursor_signing_key() == get_settings().cursor_signing_key
    assert secrets.erasure_hash_key() == get_settings().erasure_hash_key
