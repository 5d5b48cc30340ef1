"""Bare tables for the tests of the local stack's moto patches (not the template's schema: those
tests check moto's behaviour on any table, with keys named as ours)."""

from __future__ import annotations

from typing import Any


def create_pk_sk_table(client: Any, name: str = "t") -> None:
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
