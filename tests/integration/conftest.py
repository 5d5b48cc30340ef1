"""Integration fixtures: moto in-process with the tables built from template.yaml."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.responses import DynamoHandler
from relasify import clock
from relasify.data.base import reset_connections
from relasify.settings import Settings, get_settings
from relasify_local import moto_serialization, moto_sqs_limits, moto_transactions
from relasify_local.cfn import create_tables

TABLE_NAME = "relasify-test-table"


# DynamoDB executes each request atomically (a TransactWriteItems checks every condition and
# writes every item as one step); moto's in-process backend does not guard against threads.
# Serialising requests restores that guarantee, so concurrency tests exercise our conditions
# rather than moto's data races.
_dynamodb_request_lock = threading.RLock()
# moto rolls a transaction back by copying every table it names (O(table) per transaction); the
# patch keeps an item-level undo log instead (docs/LOCAL_STACK.md).
moto_transactions.install()
# As the local stack does: attribute values copied into responses (test_moto_serialization.py).
moto_serialization.install()
# As the local stack does: SendMessage over SQS's 256 KiB is refused, as AWS refuses it (issue 19).
moto_sqs_limits.install()
_original_call_action = DynamoHandler.call_action


def atomic_call_action(self: DynamoHandler) -> Any:
    with _dynamodb_request_lock:
        return _original_call_action(self)


@lru_cache(maxsize=1)
def _dynamodb_client() -> Any:
    # Creating a client costs ~0.2 s; moto intercepts any client, whenever it was created.
    return boto3.client("dynamodb")


_connections_checked = threading.Event()


def _forget_foreign_connections() -> None:
    # Once per process: a client cached before this fixture ran (e.g. with AWS_ENDPOINT_URL
    # set) could point elsewhere; later tests reuse the moto-intercepted one (saves ~0.2 s each).
    if not _connections_checked.is_set():
        reset_connections()
        _connections_checked.set()


@pytest.fixture
def moto_account(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An empty in-process moto account (tests that create their own resources)."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-southeast-3")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def ddb_tables(monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A fresh moto DynamoDB with `Table` from the template.

    Yields the settings naming them; the settings cache is reset before and after, and the
    clock is restored afterwards (tests may inject one with `relasify.clock.set_clock`).
    """
    monkeypatch.setenv("TABLE_NAME", TABLE_NAME)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    get_settings.cache_clear()
    _forget_foreign_connections()
    monkeypatch.setattr(DynamoHandler, "call_action", atomic_call_action)
    with mock_aws():
        client = _dynamodb_client()
        create_tables(client, {"Table": TABLE_NAME})
        try:
            yield get_settings()
        finally:
            clock.set_clock(None)
            get_settings.cache_clear()


@pytest.fixture
def requests() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every DynamoDB request made through pynamodb's client while the test runs: (operation, parameters)."""
    from relasify.data.base import connection

    made: list[tuple[str, dict[str, Any]]] = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        made.append((model.name, params))

    client = connection().client
    client.meta.events.register("provide-client-params.dynamodb", record)
    try:
        yield made
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb", record)
