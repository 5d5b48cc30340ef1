"""Reading pynamodb write failures: which condition failed, and why a transaction was cancelled."""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import PynamoDBException, TransactWriteError


def cancellation_codes(exc: TransactWriteError) -> list[str | None]:
    """One code per transaction item, in order (None for items that did not cause it), e.g.
    `ConditionalCheckFailed` or `TransactionConflict`."""
    return [reason.code if reason is not None else None for reason in exc.cancellation_reasons]


def cancellation_items(exc: TransactWriteError) -> list[dict[str, Any] | None]:
    """The stored item of each failed condition, when the item was written with
    `return_values_on_condition_failure=ALL_OLD` (raw DynamoDB JSON)."""
    return [reason.raw_item if reason is not None else None for reason in exc.cancellation_reasons]


def is_condition_failure(exc: BaseException) -> bool:
    """A single-item write refused by its condition expression."""
    return isinstance(exc, PynamoDBException) and exc.cause_response_code == "ConditionalCheckFailedException"
