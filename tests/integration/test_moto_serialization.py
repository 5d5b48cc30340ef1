"""The local stack's DynamoDB response shortcut (relasify_local.moto_serialization) writes exactly what
moto's own serialiser writes, for every kind of attribute value, and items read back through it equal
the items written."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import boto3
from hypothesis import given, settings
from hypothesis import strategies as st
from moto.core.serialize import get_serializer_class
from moto.core.utils import get_service_model
from relasify_local import moto_serialization

from tests.support.moto_tables import create_pk_sk_table

TEXT = st.text(max_size=12)
NAME = st.text(min_size=1, max_size=12)  # an empty name is invalid in DynamoDB (moto mis-serialises it)
NUMBER = st.integers(min_value=-(10**12), max_value=10**12).map(str)


def _attribute_values() -> st.SearchStrategy[dict[str, Any]]:
    scalar = st.one_of(
        TEXT.map(lambda s: {"S": s}),
        NUMBER.map(lambda n: {"N": n}),
        st.booleans().map(lambda b: {"BOOL": b}),
        st.just({"NULL": True}),
        st.lists(TEXT, min_size=1, max_size=3, unique=True).map(lambda v: {"SS": v}),
        st.lists(NUMBER, min_size=1, max_size=3, unique=True).map(lambda v: {"NS": v}),
        st.binary(max_size=8).map(lambda b: {"B": b}),  # moto's path: base64
        st.binary(max_size=8).map(lambda b: {"B": base64.b64encode(b).decode()}),
        st.lists(st.binary(min_size=1, max_size=4), min_size=1, max_size=2, unique=True).map(lambda v: {"BS": v}),
    )
    return st.recursive(
        scalar,
        lambda inner: st.one_of(
            st.dictionaries(NAME, inner, max_size=3).map(lambda m: {"M": m}),
            st.lists(inner, max_size=3).map(lambda values: {"L": values}),
        ),
        max_leaves=8,
    )


ITEMS = st.lists(st.dictionaries(NAME, _attribute_values(), min_size=1, max_size=4), max_size=4)


def _serialize(operation: str, result: dict[str, Any]) -> Any:
    service = get_service_model("dynamodb")
    serializer = get_serializer_class("dynamodb", "json")(operation_model=service.operation_model(operation))
    return json.loads(serializer.serialize(result)["body"])


@settings(max_examples=300, deadline=None)
@given(items=ITEMS, key=st.dictionaries(NAME, _attribute_values(), max_size=2))
def test_the_shortcut_writes_what_motos_serialiser_writes(items: list[dict[str, Any]], key: dict[str, Any]) -> None:
    responses = {
        "Query": {"Items": items, "Count": len(items), "ScannedCount": len(items), "LastEvaluatedKey": key or None},
        "GetItem": {"Item": items[0] if items else None},
        "BatchGetItem": {"Responses": {"t": items}, "UnprocessedKeys": {}},
        "UpdateItem": {"Attributes": items[-1] if items else None},
    }
    for operation, result in responses.items():
        moto_serialization.uninstall()
        try:
            expected = _serialize(operation, result)
        finally:
            moto_serialization.install()
        assert _serialize(operation, result) == expected, operation


def test_unexpected_shapes_take_motos_path() -> None:
    assert moto_serialization.wire_attribute_value({"S": "x", "N": None}) == {"S": "x"}
    assert moto_serialization.wire_attribute_value({"M": {"a": {"L": [{"N": "1"}]}}}) == {
        "M": {"a": {"L": [{"N": "1"}]}}
    }
    for value in (
        {"B": "eA=="},
        {"BS": ["eA=="]},
        {"S": 1},
        {"N": Decimal(1)},
        {"BOOL": 1},
        {"SS": [1]},
        "S",
        {"M": []},
    ):
        assert moto_serialization.wire_attribute_value(value) is None, value
    assert moto_serialization.wire_attribute_value({"L": [{"B": "eA=="}]}) is None  # nested binary too


def test_items_read_back_equal_the_items_written(moto_account: None) -> None:
    moto_serialization.install()
    client = boto3.client("dynamodb")
    create_pk_sk_table(client)
    item = {
        "PK": {"S": "p"},
        "SK": {"S": "s"},
        "name": {"S": "Budi ✓"},
        "count": {"N": "-12.5"},
        "ok": {"BOOL": False},
        "none": {"NULL": True},
        "tags": {"SS": ["a", "b"]},
        "scores": {"NS": ["1", "2"]},
        "blob": {"B": b"\x00\xff"},
        "blobs": {"BS": [b"\x01", b"\x02"]},
        "attributes": {"M": {"city": {"S": "Bandung"}, "nested": {"L": [{"N": "1"}, {"M": {"x": {"BOOL": True}}}]}}},
        "history": {"L": [{"S": "sent"}, {"L": []}, {"M": {}}]},
    }
    client.put_item(TableName="t", Item=item)
    assert client.get_item(TableName="t", Key={"PK": {"S": "p"}, "SK": {"S": "s"}})["Item"] == item
    queried = client.query(
        TableName="t", KeyConditionExpression="PK = :p", ExpressionAttributeValues={":p": {"S": "p"}}
    )["Items"]
    assert queried == [item]
    updated = client.update_item(
        TableName="t",
        Key={"PK": {"S": "p"}, "SK": {"S": "s"}},
        UpdateExpression="SET #c = :c",
        ExpressionAttributeNames={"#c": "count"},
        ExpressionAttributeValues={":c": {"N": "3"}},
        ReturnValues="ALL_NEW",
    )["Attributes"]
    assert updated == {**item, "count": {"N": "3"}}
