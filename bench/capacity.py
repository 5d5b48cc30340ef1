"""DynamoDB capacity of one request, computed from item sizes by DynamoDB's published rules.

moto reports a fixed ConsumedCapacity per operation, so the bench reads the items moto stores (its
backend, not botocore, so nothing is counted twice) and applies the rules itself: the request
counter (`bench.aws_counter`) charges each request what this module computes. Also here: the kind
of each written item (docs/DATA_MODEL.md) and what the retention sweep will pay for the items left
with an expiry.

Capacity rules applied (DynamoDB developer guide, "Read/write capacity mode"):
- write: 1 WCU per started 1 KB of the larger of the item before and after (Put/Update), of the
  deleted item (Delete); a refused conditional write still costs its units; every global secondary
  index the write touches costs 1 WCU per started 1 KB of the projected index entry (keys, projected
  attributes, 100 bytes overhead), 2 writes when the index key changes; transactions cost double.
- read: 1 RCU per started 4 KB strongly consistent, half eventually consistent; a Query sums
  the sizes of every item it evaluated (filtered-out items included) before rounding; BatchGetItem
  rounds per item; transactions cost double.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096
INDEX_ENTRY_OVERHEAD_BYTES = 100
DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
EXPIRY_BUCKET_ATTRIBUTE = "expiry_bucket"  # the hash key of the sparse `ByExpiry` index the sweep reads

# --- item sizes ----------------------------------------------------------------------------------


def _number_size(value: str) -> int:
    # DynamoDB: about one byte per two significant digits, plus one byte.
    digits = value.lstrip("-").replace(".", "").lstrip("0").rstrip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def attribute_value_size(value: dict[str, Any]) -> int:
    """Bytes of one attribute value in wire format ({"S": ...}, {"M": {...}}, ...)."""
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(inner.encode("utf-8"))
    if kind == "N":
        return _number_size(str(inner))
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(v.encode("utf-8")) for v in inner)
    if kind == "NS":
        return sum(_number_size(str(v)) for v in inner)
    if kind == "BS":
        return sum(len(v) for v in inner)
    if kind == "L":
        return 3 + sum(1 + attribute_value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode("utf-8")) + attribute_value_size(v) for k, v in inner.items())
    return 0


def item_size(attributes: dict[str, Any] | None) -> int:
    """Bytes of one item in wire format: attribute names plus values."""
    if not attributes:
        return 0
    return sum(len(name.encode("utf-8")) + attribute_value_size(value) for name, value in attributes.items())


def _units(size: int, unit: int) -> int:
    return max(1, math.ceil(size / unit))


# --- moto backend lookups (no botocore call, so nothing is counted twice) --------------------------


def _moto_table(region: str, name: str) -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    try:
        return dynamodb_backends[DEFAULT_ACCOUNT_ID][region].get_table(name)
    except Exception:
        return None


def _stored_item(table: Any, key: dict[str, Any]) -> dict[str, Any] | None:
    from moto.dynamodb.models.dynamo_type import DynamoType

    if table is None or table.hash_key_attr not in key:
        return None
    hash_key = DynamoType(key[table.hash_key_attr])
    range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr in key else None
    try:
        item = table.get_item(hash_key, range_key)
    except Exception:
        return None
    if item is None:
        return None
    return _plain_wire(item.to_json()["Attributes"])


def _plain_wire(value: Any) -> Any:
    # moto keeps nested DynamoType objects in to_json(); flatten them to wire dicts.
    from moto.dynamodb.models.dynamo_type import DynamoType

    if isinstance(value, DynamoType):
        return _plain_wire(value.to_json())
    if isinstance(value, dict):
        return {k: _plain_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_wire(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    return value


def _key_of(table: Any, item: dict[str, Any]) -> dict[str, Any]:
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    return {n: item[n] for n in names if n in item}


def _index_write_units(table: Any, before: dict[str, Any] | None, after: dict[str, Any] | None) -> int:
    """WCU the global secondary indexes add to one item write."""
    if table is None:
        return 0
    units = 0
    table_keys = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    for index in table.global_indexes:
        index_keys = list(index.schema_key_attrs)
        was_in = before is not None and all(k in before for k in index_keys)
        is_in = after is not None and all(k in after for k in index_keys)
        if not was_in and not is_in:
            continue
        projection = (index.projection or {}).get("ProjectionType", "ALL")

        # INCLUDE: the keys and the listed attributes are projected; the entry is rewritten only
        # when one of those changes.
        included = set((index.projection or {}).get("NonKeyAttributes", [])) if projection == "INCLUDE" else None

        def projected(
            item: dict[str, Any],
            keys: list[str] = index_keys,
            kind: str = projection,
            extra: set[str] | None = included,
        ) -> dict[str, Any]:
            if kind == "KEYS_ONLY":
                return {k: item[k] for k in {*table_keys, *keys} if k in item}
            if extra is not None:
                return {k: v for k, v in item.items() if k in {*table_keys, *keys, *extra}}
            return item

        def entry_size(item: dict[str, Any], project: Any = projected) -> int:
            return INDEX_ENTRY_OVERHEAD_BYTES + item_size(project(item))

        if was_in and is_in:
            key_changed = any(before[k] != after[k] for k in index_keys)  # type: ignore[index]
            if key_changed:
                units += _units(entry_size(before), WRITE_UNIT_BYTES) + _units(entry_size(after), WRITE_UNIT_BYTES)  # type: ignore[arg-type]
            elif projection != "KEYS_ONLY" and projected(before) != projected(after):  # type: ignore[arg-type]
                units += _units(entry_size(after), WRITE_UNIT_BYTES)  # type: ignore[arg-type]
        else:
            units += _units(entry_size(after if is_in else before), WRITE_UNIT_BYTES)  # type: ignore[arg-type]
    return units


# --- capacity of one request ----------------------------------------------------------------------


def request_capacity(
    region: str, operation: str, params: dict[str, Any], before: Any, response: Any
) -> tuple[float, float, Counter[str]]:
    """(WCU, RCU, WCU by written item kind) of one DynamoDB request. `before` holds the item states
    `items_before_write` read before the call; `response` is None when the call failed."""
    by_kind: Counter[str] = Counter()
    if operation in ("GetItem", "PutItem", "UpdateItem", "DeleteItem"):
        table = _moto_table(region, params.get("TableName", ""))
        key = params.get("Key") or (_key_of(table, params["Item"]) if table is not None and "Item" in params else {})
        if operation == "GetItem":
            size = item_size(_stored_item(table, key))
            return 0.0, _units(size, READ_UNIT_BYTES) * (1.0 if params.get("ConsistentRead") else 0.5), by_kind
        old = before
        new = None if operation == "DeleteItem" else _stored_item(table, key)
        if response is None:  # refused by its condition: charged, nothing written
            units = float(_units(max(item_size(old), item_size(params.get("Item"))), WRITE_UNIT_BYTES))
            by_kind[item_kind(key)] += units
            return units, 0.0, by_kind
        units = float(
            _units(max(item_size(old), item_size(new)), WRITE_UNIT_BYTES) + _index_write_units(table, old, new)
        )
        by_kind[item_kind(key)] += units
        return units, 0.0, by_kind
    if operation in ("Query", "Scan"):
        if response is None:
            return 0.0, 0.5, by_kind
        table = _moto_table(region, params.get("TableName", ""))
        index = next((i for i in getattr(table, "global_indexes", []) if i.name == params.get("IndexName")), None)
        # An index that projects part of the item returns (and reads) only that part.
        keys_only = index is not None and (index.projection or {}).get("ProjectionType") in ("KEYS_ONLY", "INCLUDE")
        sizes = []
        for item in response.get("Items", []):
            full = None if keys_only or table is None else _stored_item(table, _key_of(table, item))
            sizes.append(item_size(full or item))
        count, scanned = response.get("Count", len(sizes)), response.get("ScannedCount", len(sizes))
        total = sum(sizes)
        if scanned > count:  # filtered-out items were read too: assume they are of the average size
            average = total / count if count else 400
            total += average * (scanned - count)
        factor = 1.0 if params.get("ConsistentRead") else 0.5
        return 0.0, _units(int(total), READ_UNIT_BYTES) * factor, by_kind
    if operation == "BatchGetItem":
        rcu = 0.0
        for name, request in params.get("RequestItems", {}).items():
            table = _moto_table(region, name)
            factor = 1.0 if request.get("ConsistentRead") else 0.5
            for key in request.get("Keys", []):
                rcu += _units(item_size(_stored_item(table, key)), READ_UNIT_BYTES) * factor
        return 0.0, rcu, by_kind
    if operation == "BatchWriteItem":
        wcu = 0.0
        for (name, requests), olds in zip(params.get("RequestItems", {}).items(), before or [], strict=False):
            table = _moto_table(region, name)
            for request, old in zip(requests, olds, strict=False):
                new = request["PutRequest"]["Item"] if "PutRequest" in request else None
                units = _units(max(item_size(old), item_size(new)), WRITE_UNIT_BYTES) + _index_write_units(
                    table, old, new
                )
                wcu += units
                by_kind[item_kind(request.get("PutRequest", {}).get("Item") or request["DeleteRequest"]["Key"])] += (
                    units
                )
        return wcu, 0.0, by_kind
    if operation == "TransactWriteItems":
        wcu = 0.0
        for entry, (table, key, old) in zip(params.get("TransactItems", []), before or [], strict=False):
            (kind, body), *_ = entry.items()
            if kind == "ConditionCheck":
                units = 2 * _units(item_size(old), WRITE_UNIT_BYTES)
                wcu += units
                by_kind[item_kind(key)] += units
                continue
            new = None if kind == "Delete" else (body.get("Item") if kind == "Put" else _stored_item(table, key))
            if response is None:
                new = old
            units = 2 * (
                _units(max(item_size(old), item_size(new)), WRITE_UNIT_BYTES) + _index_write_units(table, old, new)
            )
            wcu += units
            by_kind[item_kind(key)] += units
        return wcu, 0.0, by_kind
    if operation == "TransactGetItems":
        rcu = 0.0
        for entry in params.get("TransactItems", []):
            body = entry.get("Get", {})
            rcu += 2 * _units(
                item_size(_stored_item(_moto_table(region, body.get("TableName", "")), body.get("Key", {}))),
                READ_UNIT_BYTES,
            )
        return 0.0, rcu, by_kind
    return 0.0, 0.0, by_kind


def items_before_write(region: str, operation: str, params: dict[str, Any]) -> Any:
    """Item states a write replaces, read from moto before the call."""
    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        table = _moto_table(region, params.get("TableName", ""))
        key = params.get("Key") or (_key_of(table, params["Item"]) if table is not None and "Item" in params else {})
        return _stored_item(table, key)
    if operation == "BatchWriteItem":
        out = []
        for name, requests in params.get("RequestItems", {}).items():
            table = _moto_table(region, name)
            olds = []
            for request in requests:
                body = request.get("PutRequest", {}).get("Item") or request.get("DeleteRequest", {}).get("Key", {})
                olds.append(_stored_item(table, _key_of(table, body) if table is not None else {}))
            out.append(olds)
        return out
    if operation == "TransactWriteItems":
        out = []
        for entry in params.get("TransactItems", []):
            (_kind, body), *_ = entry.items()
            table = _moto_table(region, body.get("TableName", ""))
            key = body.get("Key") or (_key_of(table, body["Item"]) if table is not None and "Item" in body else {})
            out.append((table, key, _stored_item(table, key)))
        return out
    return None


# --- item kinds -----------------------------------------------------------------------------------


def item_kind(key: dict[str, Any]) -> str:
    """A written item's kind from its key (docs/DATA_MODEL.md): the segment after the workspace in
    `WS#<ws>#<KIND>#...` partitions, the sort key's prefix in the workspace partition itself, else
    the partition key's prefix (`CHG`, `WAMID`, `USAGE`, `BUDGET`, ...)."""
    if "PK" not in key:  # the idempotency table (Powertools), keyed by `id`
        return "IDEMPOTENCY" if "id" in key else "?"
    pk = str(key.get("PK", {}).get("S", ""))
    sk = str(key.get("SK", {}).get("S", ""))
    parts = pk.split("#")
    if parts[0] == "WS":
        return parts[2] if len(parts) > 2 else sk.split("#")[0]
    return parts[0] or "?"


def written_kinds(operation: str, params: dict[str, Any]) -> list[str]:
    """The kinds of the items a DynamoDB write request writes (one entry per item)."""
    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        return [item_kind(params.get("Key") or params.get("Item") or {})]
    if operation == "BatchWriteItem":
        return [
            item_kind(r.get("PutRequest", {}).get("Item") or r.get("DeleteRequest", {}).get("Key") or {})
            for requests in params.get("RequestItems", {}).values()
            for r in requests
        ]
    if operation == "TransactWriteItems":
        kinds = []
        for entry in params.get("TransactItems", []):
            (action, body), *_ = entry.items()
            if action != "ConditionCheck":
                kinds.append(item_kind(body.get("Key") or body.get("Item") or {}))
        return kinds
    return []


# --- items left with a retention expiry -----------------------------------------------------------


@dataclass(frozen=True)
class ExpiringItem:
    """An item the retention sweep will find in the `ByExpiry` index once it expires, and what
    deleting it costs there: its delete (1 WCU per started KB, plus its index entries), the
    consistent re-read before the delete, and its share of the keys-only index Query."""

    kind: str
    delete_wcu: int
    recheck_rcu: float
    query_rcu: float


def _written_keys(operation: str, params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(table, key) of every item a DynamoDB write request writes."""
    region_free: list[tuple[str, dict[str, Any]]] = []
    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        region_free.append((params.get("TableName", ""), params.get("Key") or params.get("Item") or {}))
    elif operation == "BatchWriteItem":
        for name, requests in params.get("RequestItems", {}).items():
            for r in requests:
                region_free.append(
                    (name, r.get("PutRequest", {}).get("Item") or r.get("DeleteRequest", {}).get("Key") or {})
                )
    elif operation == "TransactWriteItems":
        for entry in params.get("TransactItems", []):
            (action, body), *_ = entry.items()
            if action != "ConditionCheck":
                region_free.append((body.get("TableName", ""), body.get("Key") or body.get("Item") or {}))
    return region_free


def expiring_items(region: str, operation: str, params: dict[str, Any]) -> list[tuple[str, ExpiringItem | None]]:
    """After a write: each written item (keyed by table and key) with what its sweep will cost if it
    now carries a retention expiry, at its new size, else None."""
    out: list[tuple[str, ExpiringItem | None]] = []
    for name, given in _written_keys(operation, params):
        table = _moto_table(region, name)
        if table is None:
            continue
        key = _key_of(table, given)
        item_key = name + json.dumps(key, sort_keys=True)
        stored = _stored_item(table, key)
        expiring = None
        if stored is not None and EXPIRY_BUCKET_ATTRIBUTE in stored:
            size = item_size(stored)
            index_entry = INDEX_ENTRY_OVERHEAD_BYTES + item_size(
                {k: v for k, v in stored.items() if k in (*key, EXPIRY_BUCKET_ATTRIBUTE, "expires_at")}
            )
            expiring = ExpiringItem(
                kind=item_kind(key),
                delete_wcu=_units(size, WRITE_UNIT_BYTES) + _index_write_units(table, stored, None),
                recheck_rcu=float(_units(size, READ_UNIT_BYTES)),  # consistent BatchGetItem, rounded per item
                query_rcu=0.5 * index_entry / READ_UNIT_BYTES,  # eventually consistent, summed before rounding
            )
        out.append((item_key, expiring))
    return out
