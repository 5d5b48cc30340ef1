"""Transactions on the single table, and reading why a write was refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.transactions import TransactWrite

Key = tuple[str, str]


@dataclass(frozen=True)
class Failure:
    code: str  # ConditionalCheckFailed | TransactionConflict | ...
    item: dict[str, Any] | None  # the stored item (raw DynamoDB JSON) when ALL_OLD was asked for


class KeyedTransactWrite(TransactWrite):
    """A TransactWrite that can say which of its items caused a cancellation, by key.

    DynamoDB reports cancellation reasons by position, and pynamodb sends the items grouped by
    kind (condition checks, deletes, puts, updates), not in call order; so positions are
    mapped back to keys from the operations themselves.
    """

    def failures(self, exc: TransactWriteError) -> dict[Key, Failure]:
        ops = [*self._condition_check_items, *self._delete_items, *self._put_items, *self._update_items]
        out: dict[Key, Failure] = {}
        for op, reason in zip(ops, exc.cancellation_reasons, strict=False):
            if reason is None or reason.code in (None, "None"):
                continue
            key = op.get("Key") or op.get("Item") or {}
            out[(key["PK"]["S"], key["SK"]["S"])] = Failure(code=reason.code, item=reason.raw_item)
        return out


def cancellation_codes(exc: TransactWriteError) -> list[str | None]:
    """The codes of a cancelled transaction, positionally (for "was any item in conflict?")."""
    return [reason.code if reason is not None else None for reason in exc.cancellation_reasons]


def is_condition_failure(exc: BaseException) -> bool:
    """A single-item write refused by its condition expression."""
    return isinstance(exc, PynamoDBException) and exc.cause_response_code == "ConditionalCheckFailedException"
