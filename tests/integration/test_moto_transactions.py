"""The moto patch behind every in-process and local-stack DynamoDB: TransactWriteItems rolled back
item by item instead of by copying every table (relasify_local/moto_transactions.py).

Each scenario runs twice on a fresh moto account, once with moto's own implementation and once with
the patch, and the outcomes (error code, cancellation reasons with ALL_OLD items, every item of both
tables, GSI query results) must be identical; cancelled transactions must leave every touched item
exactly as before, successful ones must apply every write."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import Item
from relasify_local import moto_transactions
from relasify_local.cfn import create_tables

TABLE = "relasify-tx-table"
# A second table, keyed by `id` alone, for transactions across tables.
IDEMPOTENCY = "relasify-tx-idempotency"


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _seed(client: Any, filler: int = 0) -> None:
    create_tables(client, {"Table": TABLE})
    client.create_table(
        TableName=IDEMPOTENCY,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    client.put_item(
        TableName=TABLE,
        Item={
            "PK": _s("WS#1#MSG#a"),
            "SK": _s("MSG"),
            "GSI1PK": _s("WS#1#CONV#c1"),
            "GSI1SK": _s("2026-01-01T00:00:00Z#a"),
            "status": _s("sent"),
            "status_rank": {"N": "2"},
            "tags": {"L": [_s("x"), {"M": {"k": {"N": "1"}}}]},
        },
    )
    client.put_item(TableName=TABLE, Item={"PK": _s("WS#1#MSG#b"), "SK": _s("MSG"), "GSI2PK": _s("G2"), "n": _s("t")})
    client.put_item(TableName=IDEMPOTENCY, Item={"id": _s("key-1"), "status": _s("COMPLETED")})
    for n in range(filler):
        client.put_item(TableName=TABLE, Item={"PK": _s(f"WS#1#FILL#{n}"), "SK": _s("F"), "v": _s("x" * 50)})


def _state(client: Any) -> dict[str, Any]:
    """Every item of both tables and what each GSI returns for the seeded partitions."""

    def scan(name: str) -> list[dict[str, Any]]:
        items = client.scan(TableName=name, ConsistentRead=True)["Items"]
        return sorted(items, key=repr)

    def gsi(index: str, pk_attr: str, value: str) -> list[dict[str, Any]]:
        return client.query(
            TableName=TABLE,
            IndexName=index,
            KeyConditionExpression="#pk = :v",
            ExpressionAttributeNames={"#pk": pk_attr},
            ExpressionAttributeValues={":v": _s(value)},
        )["Items"]

    return {
        "table": scan(TABLE),
        "idempotency": scan(IDEMPOTENCY),
        "gsi1": gsi("GSI1", "GSI1PK", "WS#1#CONV#c1"),
        "gsi1_new": gsi("GSI1", "GSI1PK", "WS#1#CONV#c2"),
        "gsi2": gsi("GSI2", "GSI2PK", "G2"),
        "count": client.describe_table(TableName=TABLE)["Table"]["ItemCount"],
    }


# --- transaction items -----------------------------------------------------------------------------

PUT_NEW_WITH_GSI = {
    "Put": {
        "TableName": TABLE,
        "Item": {
            "PK": _s("WS#1#MSG#new"),
            "SK": _s("MSG"),
            "GSI1PK": _s("WS#1#CONV#c2"),
            "GSI1SK": _s("2026-01-02T00:00:00Z#new"),
            "status": _s("received"),
        },
        "ConditionExpression": "attribute_not_exists(PK)",
    }
}
UPDATE_A_MOVES_GSI = {
    "Update": {
        "TableName": TABLE,
        "Key": {"PK": _s("WS#1#MSG#a"), "SK": _s("MSG")},
        "UpdateExpression": "SET #s = :s, status_rank = :r, GSI1PK = :g, tags[1].k = :one REMOVE GSI1SK",
        "ConditionExpression": "status_rank < :r",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":s": _s("read"), ":r": {"N": "4"}, ":g": _s("WS#1#CONV#c2"), ":one": {"N": "9"}},
    }
}
UPDATE_CREATES_ITEM = {
    "Update": {
        "TableName": TABLE,
        "Key": {"PK": _s("WS#1#BILLING"), "SK": _s("2026-01")},
        "UpdateExpression": "ADD billed :one",
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    }
}
DELETE_IDEMPOTENCY = {"Delete": {"TableName": IDEMPOTENCY, "Key": {"id": _s("key-1")}}}
DELETE_B = {"Delete": {"TableName": TABLE, "Key": {"PK": _s("WS#1#MSG#b"), "SK": _s("MSG")}}}
FAILING_CHECK_ALL_OLD = {
    "ConditionCheck": {
        "TableName": TABLE,
        "Key": {"PK": _s("WS#1#MSG#b"), "SK": _s("MSG")},
        "ConditionExpression": "attribute_not_exists(PK)",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
}
FAILING_PUT = {
    "Put": {
        "TableName": IDEMPOTENCY,
        "Item": {"id": _s("key-1"), "status": _s("INPROGRESS")},
        "ConditionExpression": "attribute_not_exists(id)",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
}
# Fails inside the update (ADD to a string), after the item was read: a non-condition reason.
FAILING_UPDATE_TYPE = {
    "Update": {
        "TableName": TABLE,
        "Key": {"PK": _s("WS#1#MSG#b"), "SK": _s("MSG")},
        "UpdateExpression": "ADD n :one",
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    }
}
MISSING_TABLE_PUT = {"Put": {"TableName": "no-such-table", "Item": {"PK": _s("x"), "SK": _s("y")}}}

SCENARIOS: dict[str, list[dict[str, Any]]] = {
    "success across two tables": [PUT_NEW_WITH_GSI, UPDATE_A_MOVES_GSI, UPDATE_CREATES_ITEM, DELETE_IDEMPOTENCY],
    "success with delete and check": [
        DELETE_B,
        {
            "ConditionCheck": {
                **FAILING_CHECK_ALL_OLD["ConditionCheck"],
                "Key": {"PK": _s("WS#1#MSG#a"), "SK": _s("MSG")},
                "ConditionExpression": "attribute_exists(PK)",
            }
        },
    ],
    "last check fails": [
        PUT_NEW_WITH_GSI,
        UPDATE_A_MOVES_GSI,
        UPDATE_CREATES_ITEM,
        DELETE_IDEMPOTENCY,
        FAILING_CHECK_ALL_OLD,
    ],
    "first put fails, later writes applied then undone": [FAILING_PUT, PUT_NEW_WITH_GSI, UPDATE_A_MOVES_GSI, DELETE_B],
    "update fails mid-transaction": [UPDATE_A_MOVES_GSI, FAILING_UPDATE_TYPE, PUT_NEW_WITH_GSI],
    "unknown table": [PUT_NEW_WITH_GSI, DELETE_IDEMPOTENCY, MISSING_TABLE_PUT],
    "same item twice (validation error)": [
        UPDATE_A_MOVES_GSI,
        DELETE_IDEMPOTENCY,
        {"Delete": {"TableName": TABLE, "Key": {"PK": _s("WS#1#MSG#a"), "SK": _s("MSG")}}},
    ],
}


@pytest.fixture
def moto_account() -> Iterator[Callable[[], Any]]:
    """A factory of fresh moto accounts (each call resets moto's state) and a DynamoDB client."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="ap-southeast-3")

        def fresh() -> Any:
            for name in client.list_tables()["TableNames"]:
                client.delete_table(TableName=name)
            return client

        yield fresh


def _run(client: Any, items: list[dict[str, Any]], filler: int = 0) -> dict[str, Any]:
    _seed(client, filler)
    before = _state(client)
    outcome: dict[str, Any] = {"before": before}
    try:
        client.transact_write_items(TransactItems=copy.deepcopy(items))
        outcome["error"] = None
    except ClientError as exc:
        outcome["error"] = exc.response["Error"]["Code"]
        outcome["message"] = exc.response["Error"].get("Message")
        outcome["reasons"] = exc.response.get("CancellationReasons")
    outcome["after"] = _state(client)
    return outcome


def _with_moto_original(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", moto_transactions.original_transact_write_items())


def test_the_patch_is_installed_for_in_process_tests() -> None:
    assert moto_transactions.installed()
    assert moto_transactions.original_transact_write_items() is not moto_transactions.transact_write_items


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_same_outcome_as_moto_without_the_table_copy(
    name: str, moto_account: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    patched = _run(moto_account(), SCENARIOS[name])
    with monkeypatch.context() as m:
        _with_moto_original(m)
        original = _run(moto_account(), SCENARIOS[name])
    assert patched == original
    if original["error"] is not None:  # cancelled: every touched item exactly as before, GSIs included
        assert patched["after"] == patched["before"]
    else:
        assert patched["after"] != patched["before"]


def test_cancelled_transaction_reports_reasons_and_restores_every_item(moto_account: Callable[[], Any]) -> None:
    outcome = _run(moto_account(), SCENARIOS["last check fails"])
    assert outcome["error"] == "TransactionCanceledException"
    assert [r["Code"] for r in outcome["reasons"]] == ["None", "None", "None", "None", "ConditionalCheckFailed"]
    assert outcome["reasons"][4]["Item"]["n"] == _s("t")  # ALL_OLD of the failed check
    assert outcome["after"] == outcome["before"]
    assert not any(i["PK"] == _s("WS#1#BILLING") for i in outcome["after"]["table"])  # created by update, undone
    assert outcome["after"]["gsi1"][0]["status"] == _s("sent")  # the in-place update of `a` was undone


def test_successful_transaction_applies_every_write(moto_account: Callable[[], Any]) -> None:
    outcome = _run(moto_account(), SCENARIOS["success across two tables"])
    after = outcome["after"]
    assert outcome["error"] is None
    assert after["idempotency"] == []
    assert after["gsi1"] == []  # `a` moved to conversation c2 and lost GSI1SK
    assert {i["PK"]["S"] for i in after["gsi1_new"]} == {"WS#1#MSG#new"}
    message_a = next(i for i in after["table"] if i["PK"] == _s("WS#1#MSG#a"))
    assert message_a["status"] == _s("read")
    assert message_a["tags"]["L"][1]["M"]["k"] == {"N": "9"}
    assert next(i for i in after["table"] if i["PK"] == _s("WS#1#BILLING"))["billed"] == {"N": "1"}


def _items_copied(client: Any, filler: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """How many stored items a 2-item transaction deep-copies, on a table holding `filler` more items."""
    _seed(client, filler)
    copied = 0
    real_deepcopy = Item.__deepcopy__

    def counting_deepcopy(self: Item, memo: dict[int, Any]) -> Item:
        nonlocal copied
        copied += 1
        return real_deepcopy(self, memo)

    with monkeypatch.context() as m:
        m.setattr(Item, "__deepcopy__", counting_deepcopy)
        client.transact_write_items(TransactItems=[PUT_NEW_WITH_GSI, UPDATE_A_MOVES_GSI])
    return copied


def test_transaction_cost_does_not_grow_with_the_table(
    moto_account: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    small = _items_copied(moto_account(), 0, monkeypatch)
    large = _items_copied(moto_account(), 300, monkeypatch)
    assert small == large <= 3  # the two written items (+ moto's own stream copy in update_item)
    with monkeypatch.context() as m:
        _with_moto_original(m)
        assert _items_copied(moto_account(), 300, monkeypatch) > 300  # what the patch avoids: the whole table
