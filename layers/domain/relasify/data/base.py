"""The pynamodb base of the single table: key attributes, indexes, retention stamping and the
read-side expiry filter every repository uses.

Configuration is resolved at call time, not import time: the table name comes from
`relasify.settings.get_settings()` on every access (tests swap it with `cache_clear()`), and
region/endpoint are left to botocore, which reads `AWS_DEFAULT_REGION` and
`AWS_ENDPOINT_URL` (the local stack's moto server) from the environment by itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.connection import Connection, TableConnection
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection
from pynamodb.models import Model

from relasify import clock, retention
from relasify.data import aws_clients
from relasify.data.tx import KeyedTransactWrite
from relasify.settings import get_settings

M = TypeVar("M", bound="TableModel")
BATCH_GET_ATTEMPTS = 5
BATCH_GET_MAX_KEYS = 100  # DynamoDB's limit per BatchGetItem


class _TableNameFromSettings:
    """`Meta.table_name` read from settings on every access, so a settings reset takes effect."""

    def __get__(self, instance: object, owner: type | None = None) -> str:
        return get_settings().table_name


class GSI1(GlobalSecondaryIndex["TableModel"]):
    class Meta:
        index_name = "GSI1"
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True, attr_name="GSI1PK")
    gsi1sk = UnicodeAttribute(range_key=True, attr_name="GSI1SK")


class GSI2(GlobalSecondaryIndex["TableModel"]):
    class Meta:
        index_name = "GSI2"
        projection = AllProjection()

    gsi2pk = UnicodeAttribute(hash_key=True, attr_name="GSI2PK")
    gsi2sk = UnicodeAttribute(range_key=True, attr_name="GSI2SK")


class ByExpiry(GlobalSecondaryIndex["TableModel"]):
    """Sparse keys-only index of items carrying a TTL; the retention sweep queries it per day/shard."""

    class Meta:
        index_name = "ByExpiry"
        projection = KeysOnlyProjection()

    expiry_bucket = UnicodeAttribute(hash_key=True, attr_name="expiry_bucket")
    expires_at = NumberAttribute(range_key=True, attr_name="expires_at")


# What the inbox listings filter on, besides the keys: an entry is rewritten only when one of these
# (or its keys) changes, never for a status tick or a new preview.
INBOX_PROJECTED = ["assignee_sub", "unread_count", "snoozed_until", "expires_at"]


class InboxByStatus(GlobalSecondaryIndex["TableModel"]):
    """Sparse: conversations only (`relasify.data.conversations`), `WS#<ws>#INBOX#<status>` /
    `<last activity iso>#<cid>`. Declared here with the other indexes: the table connection shared by
    every model knows the indexes of this base class only."""

    class Meta:
        index_name = "InboxByStatus"
        projection = IncludeProjection(INBOX_PROJECTED)

    inbox_pk = UnicodeAttribute(hash_key=True, attr_name="InboxPK")
    inbox_sk = UnicodeAttribute(range_key=True, attr_name="InboxSK")


# What the thread's reads filter on, besides the keys: attributes set by the message's put and never
# changed after it, so a status update (or a reaction, a media copy) rewrites no index entry.
TIMELINE_PROJECTED = ["direction", "expires_at"]


class Timeline(GlobalSecondaryIndex["TableModel"]):
    """Sparse: thread items only (messages and notes, `relasify.data.timeline`), `WS#<ws>#CONV#<cid>` /
    `<iso ts>#<mid>`; the items themselves are read by key after the Query."""

    class Meta:
        index_name = "Timeline"
        projection = IncludeProjection(TIMELINE_PROJECTED)

    timeline_pk = UnicodeAttribute(hash_key=True, attr_name="TimelinePK")
    timeline_sk = UnicodeAttribute(range_key=True, attr_name="TimelineSK")


# One TableConnection (one botocore client) per table name, shared by every model class:
# they all have the same key schema, and a client per class would slow cold starts.
_connections: dict[str, TableConnection] = {}
_connections_lock = threading.Lock()


def reset_connections() -> None:
    """Forget cached connections and the botocore session they share with the boto3 clients (tests
    that switch endpoints or moto mocks between runs)."""
    with _connections_lock:
        _connections.clear()
    aws_clients.reset()


class TableModel(Model):
    """Base of every item type in the single table. Not a table of its own."""

    class Meta:
        table_name = _TableNameFromSettings()
        # None: botocore resolves region (AWS_DEFAULT_REGION) and endpoint (AWS_ENDPOINT_URL).
        region = None
        host = None
        max_retry_attempts = 3
        # Above the broadcast worker's send threads (25) plus the container's other callers: with
        # fewer pooled connections, botocore opens (and discards) a new TLS connection per request.
        max_pool_connections = 32

    data_class: ClassVar[retention.DataClass]

    pk = UnicodeAttribute(hash_key=True, attr_name="PK")
    sk = UnicodeAttribute(range_key=True, attr_name="SK")
    gsi1pk = UnicodeAttribute(null=True, attr_name="GSI1PK")
    gsi1sk = UnicodeAttribute(null=True, attr_name="GSI1SK")
    gsi2pk = UnicodeAttribute(null=True, attr_name="GSI2PK")
    gsi2sk = UnicodeAttribute(null=True, attr_name="GSI2SK")
    inbox_pk = UnicodeAttribute(null=True, attr_name="InboxPK")  # conversations only
    inbox_sk = UnicodeAttribute(null=True, attr_name="InboxSK")
    timeline_pk = UnicodeAttribute(null=True, attr_name="TimelinePK")  # messages and notes only
    timeline_sk = UnicodeAttribute(null=True, attr_name="TimelineSK")
    # TTL (epoch seconds). A plain NumberAttribute: retention computes epoch ints already.
    expires_at = NumberAttribute(null=True, attr_name="expires_at")
    expiry_bucket = UnicodeAttribute(null=True, attr_name="expiry_bucket")
    created_at = UTCDateTimeAttribute(null=True)
    updated_at = UTCDateTimeAttribute(null=True)

    gsi1 = GSI1()
    gsi2 = GSI2()
    by_expiry = ByExpiry()
    inbox_by_status = InboxByStatus()
    timeline = Timeline()

    @classmethod
    def _get_connection(cls) -> TableConnection:
        name = cls.Meta.table_name
        conn = _connections.get(name)
        if conn is None:
            with _connections_lock:
                conn = _connections.get(name)
                if conn is None:
                    cls._connection = None
                    conn = super()._get_connection()
                    with aws_clients.creation_lock():
                        # The container's one botocore session (relasify.data.aws_clients), not one of
                        # pynamodb's own: pynamodb keeps its session per thread in `_local` and has no
                        # argument for it. Its client is made here, under the lock boto3's are made under.
                        conn.connection._local.session = aws_clients.botocore_session()
                        conn.connection.client  # noqa: B018 - made now, from the shared session
                    _connections[name] = conn
        return conn

    # --- write-side hook -------------------------------------------------------------------
    def stamp_for_write(self) -> None:
        """Timestamps and retention: every put (save, TransactWrite, batch) passes through here."""
        now = clock.now()
        if self.created_at is None:
            self.created_at = now
        self.updated_at = now
        if self.expires_at is None:
            expires = retention.expires_at_for(self.data_class, start=now)
            if expires is not None:
                self.expires_at = expires
        if self.expires_at is not None and self.expiry_bucket is None:
            self.expiry_bucket = retention.expiry_bucket(int(self.expires_at), f"{self.pk}#{self.sk}")

    @classmethod
    def stamps_for_upsert(cls, pk: str, sk: str) -> list[Action]:
        """`stamp_for_write` for an UpdateItem that may create the item: timestamps, and the
        retention of the class from the item's first write (kept on later updates)."""
        now = clock.now()
        actions = [cls.created_at.set(cls.created_at | now), cls.updated_at.set(now)]
        expires = retention.expires_at_for(cls.data_class, start=now)
        if expires is not None:
            bucket = retention.expiry_bucket(expires, f"{pk}#{sk}")
            actions += [cls.expires_at.set(cls.expires_at | expires), cls.expiry_bucket.set(cls.expiry_bucket | bucket)]
        return actions

    def serialize(self, null_check: bool = True) -> dict[str, dict[str, Any]]:
        # save(), TransactWrite.save() and BatchWrite all serialize the item: the one hook point.
        self.stamp_for_write()
        return super().serialize(null_check=null_check)

    @classmethod
    def touch(cls) -> Action:
        """Update action that bumps `updated_at`; add it to every `update()`."""
        return cls.updated_at.set(clock.now())

    # --- read-side expiry -------------------------------------------------------------------
    @property
    def is_expired(self) -> bool:
        return retention.is_expired(int(self.expires_at) if self.expires_at is not None else None)

    @classmethod
    def live_condition(cls) -> Condition:
        """`expires_at` absent or in the future: expired items are never returned."""
        return cls.expires_at.does_not_exist() | (cls.expires_at > clock.epoch())

    @classmethod
    def get_live(cls: type[M], hash_key: str, range_key: str, *, consistent_read: bool = False) -> M | None:
        """Get an item; a missing or expired one (TTL deletion lags) reads as None."""
        try:
            item = cls.get(hash_key, range_key, consistent_read=consistent_read)
        except cls.DoesNotExist:
            return None
        return None if item.is_expired else item


def and_live(model: type[TableModel], condition: Condition | None) -> Condition:
    """Combine a caller's filter with the expiry filter."""
    live = model.live_condition()
    return live if condition is None else (condition & live)


def connection() -> Connection:
    """The low-level connection of the table, for transactions."""
    return TableModel._get_connection().connection


def batch_get_raw(keys: list[tuple[str, str]], *, consistent: bool) -> dict[tuple[str, str], dict[str, Any]]:
    """Raw items of up to 100 keys of any item types in one BatchGetItem (re-sending unprocessed keys)."""
    table = get_settings().table_name
    pending: list[dict[str, Any]] = [{"PK": {"S": pk}, "SK": {"S": sk}} for pk, sk in keys]
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for attempt in range(BATCH_GET_ATTEMPTS):
        request = {table: {"Keys": pending, "ConsistentRead": consistent}}
        response = connection().dispatch("BatchGetItem", {"RequestItems": request})
        for item in response.get("Responses", {}).get(table, []):
            found[(item["PK"]["S"], item["SK"]["S"])] = item
        pending = response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
        if not pending:
            return found
        time.sleep(min(0.05 * 2**attempt, 1.0))
    raise RuntimeError("BatchGetItem kept returning unprocessed keys")


def transaction() -> KeyedTransactWrite:
    """A TransactWrite on the single table (all-or-nothing; conditions on any item)."""
    return KeyedTransactWrite(connection=connection())


@dataclass(frozen=True)
class QueryPage(Generic[M]):
    items: list[M]
    last_evaluated_key: dict[str, Any] | None


def query_page(
    model: type[M],
    hash_key: str,
    range_key_condition: Condition | None = None,
    *,
    index: GlobalSecondaryIndex[Any] | None = None,
    filter_condition: Condition | None = None,
    limit: int,
    exclusive_start_key: dict[str, Any] | None = None,
    newest_first: bool = False,
) -> QueryPage[M]:
    """One page of a Query with expired items filtered out.

    DynamoDB applies `Limit` before the filter, so a page that lost items to the expiry filter
    is topped up by a further request; in the common case (nothing expired) a page is one Query.
    The returned key resumes exactly after the last item returned.
    """
    kwargs: dict[str, Any] = {
        "range_key_condition": range_key_condition,
        "filter_condition": and_live(model, filter_condition),
        "limit": limit,
        "last_evaluated_key": exclusive_start_key,
        "scan_index_forward": not newest_first,
    }
    results = index.query(hash_key, **kwargs) if index is not None else model.query(hash_key, **kwargs)
    items = list(results)
    return QueryPage(items=items, last_evaluated_key=results.last_evaluated_key)


def query_all(
    model: type[M],
    hash_key: str,
    range_key_condition: Condition | None = None,
    *,
    index: GlobalSecondaryIndex[Any] | None = None,
    filter_condition: Condition | None = None,
    newest_first: bool = False,
) -> Iterator[M]:
    """Every live item of a partition (bounded partitions only: members, tags of one contact...)."""
    kwargs: dict[str, Any] = {
        "range_key_condition": range_key_condition,
        "filter_condition": and_live(model, filter_condition),
        "scan_index_forward": not newest_first,
    }
    yield from index.query(hash_key, **kwargs) if index is not None else model.query(hash_key, **kwargs)


def utc(value: datetime | None) -> datetime | None:
    """Normalise a datetime to aware UTC (pynamodb returns aware UTC already)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def sortable_time(at: datetime) -> str:
    """Fixed-width UTC timestamp (a naive one taken as UTC): sorts lexicographically in time order."""
    aware = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return aware.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def chunks(values: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for value in values:
        batch.append(value)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def plain_value(value: Any) -> Any:
    """pynamodb raw MapAttribute/ListAttribute values -> plain JSON-like Python values."""
    if hasattr(value, "as_dict"):
        return {k: plain_value(v) for k, v in value.as_dict().items()}
    if isinstance(value, dict):
        return {k: plain_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_value(v) for v in value]
    return value
