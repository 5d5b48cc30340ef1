"""The local stack's parsed-expression cache (relasify_local.moto_expressions): the same expression
string with other values, names and items still updates each item with its own values."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from relasify_local import moto_expressions


@pytest.fixture
def client(moto_account: None) -> Any:
    moto_expressions.install()
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return dynamodb


def test_one_expression_string_serves_every_item_with_its_own_values(client: Any) -> None:
    expression = "SET #s = :s, #n = if_not_exists(#n, :zero) + :inc REMOVE #gone ADD #tags :tag"
    for round_ in range(3):
        for i in range(4):
            client.update_item(
                TableName="t",
                Key={"PK": {"S": f"item{i}"}},
                UpdateExpression=expression,
                ExpressionAttributeNames={"#s": "status", "#n": "n", "#gone": "gone", "#tags": "tags"},
                ExpressionAttributeValues={
                    ":s": {"S": f"status-{i}-{round_}"},
                    ":zero": {"N": "0"},
                    ":inc": {"N": str(i + 1)},
                    ":tag": {"SS": [f"t{round_}"]},
                },
            )
    for i in range(4):
        item = client.get_item(TableName="t", Key={"PK": {"S": f"item{i}"}})["Item"]
        assert item["status"] == {"S": f"status-{i}-2"}
        assert item["n"] == {"N": str(3 * (i + 1))}
        assert sorted(item["tags"]["SS"]) == ["t0", "t1", "t2"]
        assert "gone" not in item
    with pytest.raises(client.exceptions.ClientError, match="attribute value used in expression is not defined"):
        client.update_item(  # a cached expression is still validated against each request's values
            TableName="t",
            Key={"PK": {"S": "item0"}},
            UpdateExpression=expression,
            ExpressionAttributeNames={"#s": "status", "#n": "n", "#gone": "gone", "#tags": "tags"},
            ExpressionAttributeValues={":s": {"S": "x"}},
        )
