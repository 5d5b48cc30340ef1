"""The local stack's partition Query (relasify_local.moto_queries) answers exactly as moto's own:
same items, same order, same LastEvaluatedKey, for every key condition, direction and limit."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.dynamodb.models.table import Table
from relasify_local import moto_queries

from tests.support.moto_tables import create_pk_sk_table

SORT_KEYS = ["AUDIT#1", "AUDIT#2", "CONTACT#a", "CONTACT#b", "CONTACT#c", "COUNT#0", "META", "RCPT#a", "TAG#x"]
CONDITIONS = [
    ("PK = :p", {}),
    ("PK = :p AND begins_with(SK, :s)", {":s": {"S": "CONTACT#"}}),
    ("PK = :p AND begins_with(SK, :s)", {":s": {"S": "COUNT#"}}),
    ("PK = :p AND begins_with(SK, :s)", {":s": {"S": "NOPE#"}}),
    ("PK = :p AND SK BETWEEN :a AND :b", {":a": {"S": "AUDIT#2"}, ":b": {"S": "CONTACT#b"}}),
    ("PK = :p AND SK > :a", {":a": {"S": "CONTACT#b"}}),
]


@pytest.fixture
def table(moto_account: None) -> Iterator[Any]:
    installed = getattr(Table.query, "_relasify_partition_query", False)
    client = boto3.client("dynamodb")
    create_pk_sk_table(client)
    for pk, sk in itertools.product(["WS#1", "WS#2"], SORT_KEYS):
        client.put_item(TableName="t", Item={"PK": {"S": pk}, "SK": {"S": sk}, "n": {"N": "1"}})
    yield client
    moto_queries.install() if installed else moto_queries.uninstall()


def _answers(client: Any) -> list[Any]:
    answers = []
    for (condition, values), limit, forward in itertools.product(CONDITIONS, [None, 1, 2, 3, 50], [True, False]):
        kwargs: dict[str, Any] = {
            "TableName": "t",
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": {":p": {"S": "WS#1"}, **values},
            "ScanIndexForward": forward,
        }
        if limit:
            kwargs["Limit"] = limit
        pages, start = [], None
        while True:
            page = client.query(**kwargs, **({"ExclusiveStartKey": start} if start else {}))
            pages.append((page["Items"], page.get("LastEvaluatedKey"), page["Count"]))
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        answers.append(((condition, limit, forward), pages))
    return answers


def test_partition_queries_answer_as_moto_does(table: Any) -> None:
    moto_queries.uninstall()
    plain = _answers(table)
    moto_queries.install()
    patched = _answers(table)
    assert patched == plain
    assert len(plain) == len(CONDITIONS) * 5 * 2
