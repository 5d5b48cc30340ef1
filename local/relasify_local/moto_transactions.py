"""moto's TransactWriteItems without its whole-table copy.

moto (5.x) makes a transaction atomic by `copy.deepcopy`-ing every table the transaction names
before applying it, and swapping the copies back if any item fails. That makes each transaction
cost O(items in the table): a 2-item transaction on a table of a few thousand items takes tens of
milliseconds, where the same two writes sent separately take a few. DynamoDB has no such cost, so
the copy skews every benchmark and slows every test and local-stack request that uses a transaction.

`install()` replaces `DynamoDBBackend.transact_write_items` with the same algorithm (same
validation order, same condition checks, same `TransactionCanceledException` reasons, `ALL_OLD` on
a failed condition, the same unicity check) whose rollback is an item-level undo log: before an
item is written, a deep copy of it (or the fact that it was absent) is recorded; on failure exactly
those items are put back, newest first. Global secondary indexes need nothing more: moto derives
them from the table's items on every query. Stream records the cancelled writes appended are
dropped, as the table copy did.

Atomicity against concurrent requests still needs requests to be serialised, as both moto server
(`relasify_local.aws.make_dynamodb_requests_atomic`) and the in-process test fixtures do.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import logging
from typing import Any

logger = logging.getLogger(__name__)

# sha256 of the moto function source this replacement was ported from (moto 5.2.x). If moto
# changes it, `install()` leaves moto alone and says so rather than run a stale copy of its logic.
PORTED_FROM_SHA256 = "81db2cb7d94e39c90b3a2077e1f4bb41a449c558ef9b1b1e2910fdaa39978ad4"

_installed: dict[str, Any] = {}


def _source_sha256(function: Any) -> str:
    try:
        return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()
    except (OSError, TypeError):  # installed without sources: cannot tell which version it is
        return "source unavailable"


class _UndoLog:
    """Items as they were before this transaction wrote them, restorable newest first."""

    def __init__(self) -> None:
        self._entries: list[tuple[Any, Any, Any, Any]] = []  # (table, hash key, range key, item copy or None)
        self._stream_lengths: dict[int, tuple[Any, int]] = {}

    def record(self, table: Any, hash_key: Any, range_key: Any) -> None:
        current = table.get_item(hash_key, range_key)
        self._entries.append((table, hash_key, range_key, copy.deepcopy(current)))
        shard = table.stream_shard
        if shard is not None and id(shard) not in self._stream_lengths:
            self._stream_lengths[id(shard)] = (shard, len(shard.items))

    def restore(self) -> None:
        for table, hash_key, range_key, before in reversed(self._entries):
            # moto keeps items in `items[hash]` (hash-only tables) or `items[hash][range]`; an empty
            # `items[hash]` left behind is what moto's own reads leave too (it is a defaultdict).
            if range_key is None:
                if before is None:
                    table.items.pop(hash_key, None)
                else:
                    table.items[hash_key] = before
            elif before is None:
                table.items[hash_key].pop(range_key, None)
            else:
                table.items[hash_key][range_key] = before
        for shard, length in self._stream_lengths.values():
            # A shard that handed its records to a Lambda mapping emptied itself; nothing to take back then.
            if len(shard.items) > length:
                del shard.items[length:]
        self._entries.clear()


def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """`DynamoDBBackend.transact_write_items` of moto 5.2, rolled back item by item (see module doc)."""
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.models import get_filter_expression

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    undo = _UndoLog()

    target_items: set[tuple[str, str]] = set()

    def check_unicity(table_name: str, key: dict[str, Any]) -> None:
        item = (str(table_name), str(dict(sorted(key.items()))))
        if item in target_items:
            raise MultipleTransactionsException()
        target_items.add(item)

    errors: list[tuple[str, str, dict[str, Any]] | tuple[None, None, None]] = []  # [(Code, Message, Item), ..]
    for item in transact_items:
        original_item: dict[str, Any] | None = None
        # Check transact writes are not performing multiple operations on the same item
        if len(list(item.keys())) > 1:
            raise TransactWriteSingleOpException

        try:
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")

            table_name = op["TableName"]
            condition_expression = op.get("ConditionExpression")
            expression_attribute_names = op.get("ExpressionAttributeNames")
            expression_attribute_values = op.get("ExpressionAttributeValues")
            return_values_on_condition_check_failure = op.get("ReturnValuesOnConditionCheckFailure")

            if op_type == "Put":
                attrs = op["Item"]
                table = self.get_table(table_name)
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]

            check_unicity(table_name, key)

            current = self.get_item(table_name, key)
            if condition_expression is not None:
                condition_op = get_filter_expression(
                    condition_expression,
                    expression_attribute_names,
                    expression_attribute_values,
                )
                if not condition_op.expr(current):
                    if return_values_on_condition_check_failure == "ALL_OLD" and current:
                        original_item = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original_item)

            if op_type != "ConditionCheck":
                # get_item above validated the key against this table, so these cannot fail.
                table = self.get_table(table_name)
                undo.record(table, *self.get_keys_value(table, key))

            if op_type == "Put":
                attrs = op["Item"]
                self.put_item(
                    table_name,
                    attrs,
                    condition_expression=condition_expression,
                    expression_attribute_names=expression_attribute_names,
                    expression_attribute_values=expression_attribute_values,
                )
            elif op_type == "Delete":
                self.delete_item(
                    table_name,
                    key,
                    condition_expression=condition_expression,
                    expression_attribute_names=expression_attribute_names,
                    expression_attribute_values=expression_attribute_values,
                )
            elif op_type == "Update":
                update_expression = op["UpdateExpression"]
                self.update_item(
                    table_name,
                    key,
                    update_expression=update_expression,
                    condition_expression=condition_expression,
                    expression_attribute_names=expression_attribute_names,
                    expression_attribute_values=expression_attribute_values,
                )
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            # Rollback to the original state, and reraise the error
            undo.restore()
            raise
        except ConditionalCheckFailed as e:
            errors.append(("ConditionalCheckFailed", str(e.message), original_item))  # type: ignore[arg-type]
        except Exception as e:  # moto reports any other failure as this item's cancellation reason
            errors.append((type(e).__name__, str(e), original_item))  # type: ignore[arg-type]

    if any(code is not None for code, _, _ in errors):
        # Rollback to the original state, and reraise the errors
        undo.restore()
        raise TransactionCanceledException(errors)


def original_transact_write_items() -> Any:
    """moto's own implementation (for comparison in tests), whether or not `install()` ran."""
    from moto.dynamodb.models import DynamoDBBackend

    return _installed.get("original", DynamoDBBackend.transact_write_items)


def installed() -> bool:
    from moto.dynamodb.models import DynamoDBBackend

    return DynamoDBBackend.transact_write_items is transact_write_items


def install() -> bool:
    """Use the item-level rollback in every moto DynamoDB backend of this process. Idempotent.

    Returns False (and logs a warning) if moto's function is not the one this was ported from."""
    from moto.dynamodb.models import DynamoDBBackend

    if installed():
        return True
    original = DynamoDBBackend.transact_write_items
    digest = _source_sha256(original)
    if digest != PORTED_FROM_SHA256:
        logger.warning(
            "moto's transact_write_items changed (sha256 %s); keeping moto's whole-table copy. "
            "Re-port relasify_local/moto_transactions.py from the new version.",
            digest,
        )
        return False
    _installed["original"] = original
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    return True


def uninstall() -> None:
    """Give moto its own implementation back (tests comparing the two)."""
    from moto.dynamodb.models import DynamoDBBackend

    if "original" in _installed:
        DynamoDBBackend.transact_write_items = _installed["original"]  # type: ignore[method-assign]
