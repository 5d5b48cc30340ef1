"""moto's table Query without its whole-table walk.

moto (5.x) answers a Query on a table's own key by walking (and sorting) every item of the table and
keeping those whose hash key matches: O(items in the table) per Query. DynamoDB reads one partition,
so a Query costs O(items returned). On a table of a few thousand items that walk dominates every
request of a benchmark or of the local stack.

`install()` makes a table-key Query (no index) walk only the items stored under its hash key; queries
on an index, or without a hash key, are moto's own. A `begins_with` sort-key condition without a Limit
narrows the walk to that key range, as DynamoDB's sorted partition does. The result is the same items in the same order:
moto still filters, sorts and pages them. Requests must be serialised (the local stack's moto server
and the in-process fixtures do), since the partition is handed to moto through the table object.
"""

from __future__ import annotations

from typing import Any

# Table.query(self, hash_key, range_comparison, range_objs, limit, start_key, forward, projection, index_name, ...)
_INDEX_NAME_POSITION = 7


def install() -> None:
    """Idempotent."""
    from moto.dynamodb.models.table import Table

    if getattr(Table.query, "_relasify_partition_query", False):
        return
    original_query = Table.query

    def partition_query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name") or (
            args[_INDEX_NAME_POSITION - 1] if len(args) >= _INDEX_NAME_POSITION else None
        )
        if index_name or hash_key is None:
            return original_query(self, hash_key, *args, **kwargs)
        bucket = self.items.get(hash_key)
        partition = list(bucket.values()) if isinstance(bucket, dict) else ([bucket] if bucket else [])
        range_comparison, range_values, limit = (args[0], args[1], args[2]) if len(args) >= 3 else (None, None, None)
        range_comparison = kwargs.get("range_comparison", range_comparison)
        range_values = kwargs.get("range_objs", range_values)
        limit = kwargs.get("limit", limit)
        # Not with a Limit: moto decides LastEvaluatedKey by the items it walked past the limit, and a
        # narrowed walk would drop the key DynamoDB returns when a page ends exactly at the limit.
        if range_comparison == "BEGINS_WITH" and range_values and not limit:
            # The sort-key range, as DynamoDB reads it (moto applies the condition again afterwards).
            prefix = range_values[0].value
            partition = [
                item
                for item in partition
                if item.range_key is not None and str(item.range_key.value).startswith(prefix)
            ]
        self.all_items = lambda: partition  # the instance attribute shadows the whole-table walk
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    partition_query._relasify_partition_query = True  # type: ignore[attr-defined]
    partition_query._relasify_original = original_query  # type: ignore[attr-defined]
    Table.query = partition_query  # type: ignore[method-assign]


def uninstall() -> None:
    """Back to moto's own Query (tests comparing the two). Idempotent."""
    from moto.dynamodb.models.table import Table

    original = getattr(Table.query, "_relasify_original", None)
    if original is not None:
        Table.query = original  # type: ignore[method-assign]
