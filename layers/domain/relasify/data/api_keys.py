"""API keys of a workspace (SPEC section 5c): two items per key, written and deleted together.

- the key: PK `WS#<ws>`, SK `APIKEY#<id>`: name, role, the secret's SHA-256, who created it, when it
  was last used. In the workspace's partition, so listing is one Query and the closure stamp
  (`data/sweep.workspace_account_keys`) reaches it (and, through `key_hash`, the lookup item below);
- the lookup: PK `APIKEY#<sha256 of the secret>`, SK `APIKEY` -> the workspace and key id. The only
  item the API authorizer reads (one GetItem; its IAM policy allows GetItem on `APIKEY#*` keys only).

Revoking deletes both items in one transaction: the authorizer no longer finds the secret, and the
role guard (which reads the key item with the workspace on every request) refuses a cached
authorization at once. The secret itself is never stored.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar

from pydantic import BaseModel
from pynamodb.attributes import UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import TransactWriteError, UpdateError

from relasify import clock
from relasify.data import models as m
from relasify.data.base import TableModel, batch_get_raw, query_all, transaction
from relasify.data.tx import cancellation_codes, is_condition_failure
from relasify.retention import DataClass

KEY_SK_PREFIX = "APIKEY#"
LOOKUP_PK_PREFIX = "APIKEY#"
LOOKUP_SK = "APIKEY"
MAX_KEYS_PER_WORKSPACE = 50


class ApiKeyModel(TableModel):
    """PK `WS#<ws>`, SK `APIKEY#<id>`."""

    data_class: ClassVar[DataClass] = DataClass.ACCOUNT

    ws_id = UnicodeAttribute()
    key_id = UnicodeAttribute()
    name = UnicodeAttribute()
    role = UnicodeAttribute()  # agent | admin (never owner)
    key_hash = UnicodeAttribute()  # hex SHA-256 of the secret: names the lookup item
    created_by = UnicodeAttribute(null=True)
    last_used_at = UTCDateTimeAttribute(null=True)


class ApiKeyLookupModel(TableModel):
    """PK `APIKEY#<sha256 hex>`, SK `APIKEY`: which key of which workspace the secret is."""

    data_class: ClassVar[DataClass] = DataClass.ACCOUNT

    ws_id = UnicodeAttribute()
    key_id = UnicodeAttribute()


class ApiKey(BaseModel):
    id: str
    ws: str
    name: str
    role: str
    created_by: str | None = None
    created_at: datetime | None = None
    last_used_at: datetime | None = None


class KeyRef(BaseModel):
    """What the authorizer learns from a secret: whose key it is."""

    ws: str
    key_id: str


def key_sk(key_id: str) -> str:
    return f"{KEY_SK_PREFIX}{key_id}"


def lookup_key(key_hash: str) -> tuple[str, str]:
    return f"{LOOKUP_PK_PREFIX}{key_hash}", LOOKUP_SK


def _record(item: ApiKeyModel) -> ApiKey:
    return ApiKey(
        id=item.key_id,
        ws=item.ws_id,
        name=item.name,
        role=item.role,
        created_by=item.created_by,
        created_at=item.created_at,
        last_used_at=item.last_used_at,
    )


def create(ws: str, *, key_id: str, key_hash: str, name: str, role: str, created_by: str | None) -> ApiKey:
    item = ApiKeyModel(m.ws_pk(ws), key_sk(key_id), ws_id=ws, key_id=key_id, name=name, role=role, key_hash=key_hash)
    item.created_by = created_by
    lookup = ApiKeyLookupModel(*lookup_key(key_hash), ws_id=ws, key_id=key_id)
    with transaction() as tx:
        tx.save(item, condition=ApiKeyModel.pk.does_not_exist())
        tx.save(lookup, condition=ApiKeyLookupModel.pk.does_not_exist())
    return _record(item)


def list_keys(ws: str) -> list[ApiKey]:
    items = query_all(ApiKeyModel, m.ws_pk(ws), ApiKeyModel.sk.startswith(KEY_SK_PREFIX))
    return sorted((_record(i) for i in items), key=lambda k: (k.created_at or datetime.min, k.id))


def count_keys(ws: str) -> int:
    return sum(1 for _ in query_all(ApiKeyModel, m.ws_pk(ws), ApiKeyModel.sk.startswith(KEY_SK_PREFIX)))


def revoke(ws: str, key_id: str) -> bool:
    """Delete the key and its lookup item together. False when there was no such key."""
    item = ApiKeyModel.get_live(m.ws_pk(ws), key_sk(key_id), consistent_read=True)
    if item is None:
        return False
    try:
        with transaction() as tx:
            tx.delete(item, condition=ApiKeyModel.pk.exists())
            tx.delete(ApiKeyLookupModel(*lookup_key(item.key_hash)))
    except TransactWriteError as exc:
        if "ConditionalCheckFailed" in cancellation_codes(exc):
            return False  # revoked concurrently
        raise
    return True


def find_by_hash(key_hash: str) -> KeyRef | None:
    """The authorizer's one read: GetItem of the lookup item (eventually consistent: a key is used
    long after it was created, and revocation is also enforced by `get_active_key`)."""
    item = ApiKeyLookupModel.get_live(*lookup_key(key_hash))
    return KeyRef(ws=item.ws_id, key_id=item.key_id) if item else None


def get_active_key(ws: str, key_id: str) -> ApiKey | None:
    """The key of an ACTIVE workspace (revoked key, closed or missing workspace: None), from one
    consistent BatchGetItem of the workspace and the key: the role guard's read for a key caller,
    the same cost as a member's, and it sees a revocation made a moment ago."""
    workspace_key = (m.ws_pk(ws), m.WorkspaceModel.SK_VALUE)
    api_key = (m.ws_pk(ws), key_sk(key_id))
    found = batch_get_raw([workspace_key, api_key], consistent=True)
    raw_workspace, raw_key = found.get(workspace_key), found.get(api_key)
    if raw_workspace is None or raw_key is None:
        return None
    workspace = m.WorkspaceModel.from_raw_data(raw_workspace)
    item = ApiKeyModel.from_raw_data(raw_key)
    if workspace.is_expired or workspace.status != "active" or item.is_expired:
        return None
    return _record(item)


def touch_last_used(ws: str, key_id: str, *, older_than: timedelta) -> None:
    """Set `last_used_at` to now unless it is more recent than `older_than` (conditional, so two
    containers racing write once). A key gone meanwhile is left alone."""
    now = clock.now()
    item = ApiKeyModel(m.ws_pk(ws), key_sk(key_id))
    try:
        item.update(
            actions=[ApiKeyModel.last_used_at.set(now)],
            condition=ApiKeyModel.pk.exists()
            & (ApiKeyModel.last_used_at.does_not_exist() | (ApiKeyModel.last_used_at < now - older_than)),
        )
    except UpdateError as exc:
        if not is_condition_failure(exc):
            raise
