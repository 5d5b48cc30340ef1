"""Integration fixtures: moto in-process with the tables built from template.yaml."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from relasify import clock
from relasify.settings import Settings, get_settings
from relasify_local.cfn import create_tables

TABLE_NAME = "relasify-test-table"
IDEMPOTENCY_TABLE_NAME = "relasify-test-idempotency"


@pytest.fixture
def ddb_tables(monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A fresh moto DynamoDB with `Table` and `IdempotencyTable` from the template.

    Yields the settings naming them; the settings cache is reset before and after, and the
    clock is restored afterwards (tests may inject one with `relasify.clock.set_clock`).
    """
    monkeypatch.setenv("TABLE_NAME", TABLE_NAME)
    monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", IDEMPOTENCY_TABLE_NAME)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    get_settings.cache_clear()
    with mock_aws():
        client = boto3.client("dynamodb")
        create_tables(client, {"Table": TABLE_NAME, "IdempotencyTable": IDEMPOTENCY_TABLE_NAME})
        try:
            yield get_settings()
        finally:
            clock.set_clock(None)
            get_settings.cache_clear()
