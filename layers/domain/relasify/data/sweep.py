"""Data access of the retention sweep: expired keys through the sparse `ByExpiry` index, verified
batch deletes, the sweep checkpoint, the queue of workspace closures awaiting their TTL stamp, and
the stamping itself.

Nothing here scans the table: expired items are found per expiry day and shard
(`EXP#<day>#<shard>`, `expires_at <= cutoff`), closed workspaces through their own key prefixes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import UpdateError

from relasify import retention
from relasify.data import api_keys, contact_search
from relasify.data import models as m
from relasify.data.base import BATCH_GET_MAX_KEYS, TableModel, chunks, connection
from relasify.data.tx import is_condition_failure
from relasify.retention import DataClass
from relasify.settings import get_settings

BATCH_WRITE_MAX = 25  # DynamoDB BatchWriteItem limit
_MAX_BATCH_ATTEMPTS = 8
_BACKOFF_BASE_SECONDS = 0.05
_BACKOFF_CAP_SECONDS = 2.0

SWEEP_STATE_PK = "SWEEP#STATE"
CLOSURES_PK = "SWEEP#CLOSURES"

Key = tuple[str, str]


class SweepCheckpointModel(TableModel):
    """PK `SWEEP#STATE`, SK `CHECKPOINT`: every expiry bucket before (`next_day`, `next_shard`) has
    been swept. System state, not personal data: no retention window (class account, never closed)."""

    data_class: ClassVar[DataClass] = DataClass.ACCOUNT
    SK_VALUE: ClassVar[str] = "CHECKPOINT"

    next_day = UnicodeAttribute()  # YYYY-MM-DD
    next_shard = NumberAttribute(default=0)


class PendingClosureModel(TableModel):
    """PK `SWEEP#CLOSURES`, SK `<ws>`: a closed workspace whose items still need their TTL stamp."""

    data_class: ClassVar[DataClass] = DataClass.ACCOUNT

    ws_id = UnicodeAttribute()
    closed_at = UTCDateTimeAttribute()
    stamped_count = NumberAttribute(default=0)  # progress: keys already handled, in enumeration order


class _AnyItem(TableModel):
    """Key-level handle on an item of any type (conditional TTL stamps); never written whole."""

    data_class: ClassVar[DataClass] = DataClass.ACCOUNT


# --- classification ------------------------------------------------------------------------------


def classify(pk: str, sk: str) -> DataClass:
    """The retention class of an item from its keys alone (the index is keys-only)."""
    if pk.startswith("WAMID#"):
        return DataClass.OPERATIONAL if sk.startswith(m.PendingStatusModel.MARKER_SK) else DataClass.MESSAGE_CONTENT
    if pk.startswith(("DEDUPE#", "DELETED_USER#")):
        return DataClass.OPERATIONAL
    if pk.startswith("USAGE#"):
        return DataClass.USAGE
    if pk.startswith("SECURITY#"):
        return DataClass.SECURITY
    if pk.startswith("WS#"):
        parts = pk.split("#")
        kind = parts[2] if len(parts) > 2 else ""
        if kind in ("MSG", "CONV", "MEDIA"):  # messages and notes, conversations (preview), media uploads
            return DataClass.MESSAGE_CONTENT
        if kind == "AUDIT":
            return DataClass.SECURITY
        if kind == "BILLING":
            return DataClass.BILLING
        if kind == "WHLOG":  # outgoing-webhook delivery attempts (data/outgoing_webhooks.py)
            return DataClass.USAGE
        if kind == "BCAST" and sk.startswith(m.BroadcastRecipientModel.SK_PREFIX):
            return DataClass.MESSAGE_CONTENT
        if kind in ("ERASED", "EXPORT"):
            return DataClass.OPERATIONAL
    return DataClass.ACCOUNT


def message_location(pk: str, sk: str) -> tuple[str, str] | None:
    """(ws, message id) when the key is a message item (its media lives at `media/<ws>/<mid>`)."""
    if sk != m.MessageModel.SK_VALUE:
        return None
    parts = pk.split("#")
    if len(parts) == 4 and parts[0] == "WS" and parts[2] == "MSG":
        return parts[1], parts[3]
    return None


def workspace_of_meta(pk: str, sk: str) -> str | None:
    """The workspace id when the key is a workspace's own item (`WS#<ws>` / `META`)."""
    parts = pk.split("#")
    if sk == m.WorkspaceModel.SK_VALUE and len(parts) == 2 and parts[0] == "WS":
        return parts[1]
    return None


# --- checkpoint ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    day: date
    shard: int = 0


def get_checkpoint() -> Checkpoint | None:
    item = SweepCheckpointModel.get_live(SWEEP_STATE_PK, SweepCheckpointModel.SK_VALUE, consistent_read=True)
    return Checkpoint(date.fromisoformat(item.next_day), int(item.next_shard or 0)) if item else None


def set_checkpoint(next_day: date, next_shard: int = 0) -> None:
    SweepCheckpointModel(
        SWEEP_STATE_PK, SweepCheckpointModel.SK_VALUE, next_day=next_day.isoformat(), next_shard=next_shard
    ).save()


# --- expired keys ------------------------------------------------------------------------------------


def bucket_name(day: date, shard: int) -> str:
    return f"EXP#{day.isoformat()}#{shard}"


def expired_key_pages(day: date, shard: int, cutoff: int, *, page_size: int = 500) -> Iterator[list[Key]]:
    """Pages of keys in one index bucket whose TTL passed at or before `cutoff` (epoch seconds; the
    sweep's now minus its grace period). Keys-only index: tiny reads."""
    table = get_settings().table_name
    conn = connection()
    start: dict[str, Any] | None = None
    while True:
        response = conn.query(
            table,
            bucket_name(day, shard),
            range_key_condition=TableModel.expires_at <= cutoff,
            index_name=TableModel.by_expiry.Meta.index_name,
            exclusive_start_key=start,
            limit=page_size,
        )
        keys = [(item["PK"]["S"], item["SK"]["S"]) for item in response.get("Items", [])]
        if keys:
            yield keys
        start = response.get("LastEvaluatedKey")
        if not start:
            return


def still_expired(keys: list[Key], cutoff: int) -> list[Key]:
    """The keys whose item, read consistently, still expired at or before `cutoff`: the index is
    eventually consistent, and an item may have been rewritten live since it was indexed. Only
    these are deleted."""
    table = get_settings().table_name
    conn = connection()
    out: list[Key] = []
    for batch in chunks(keys, BATCH_GET_MAX_KEYS):
        pending: list[dict[str, Any]] = [{"PK": {"S": pk}, "SK": {"S": sk}} for pk, sk in batch]
        for attempt in range(_MAX_BATCH_ATTEMPTS):
            request = {table: {"Keys": pending, "ConsistentRead": True, "ProjectionExpression": "PK, SK, expires_at"}}
            response = conn.dispatch("BatchGetItem", {"RequestItems": request})
            for item in response.get("Responses", {}).get(table, []):
                expires = item.get("expires_at", {}).get("N")
                if expires is not None and retention.is_expired(int(float(expires)), cutoff):
                    out.append((item["PK"]["S"], item["SK"]["S"]))
            pending = response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
            if not pending:
                break
            _backoff(attempt)
        else:
            raise RuntimeError("BatchGetItem kept returning unprocessed keys")
    return out


def delete_keys(keys: Iterable[Key]) -> int:
    """Delete items by key with BatchWriteItem (25 per request), resending UnprocessedItems with
    jittered exponential backoff. Returns how many delete requests were accepted."""
    table = get_settings().table_name
    conn = connection()
    deleted = 0
    for batch in chunks(keys, BATCH_WRITE_MAX):
        pending: list[dict[str, Any]] = [
            {"DeleteRequest": {"Key": {"PK": {"S": pk}, "SK": {"S": sk}}}} for pk, sk in batch
        ]
        for attempt in range(_MAX_BATCH_ATTEMPTS):
            response = conn.dispatch("BatchWriteItem", {"RequestItems": {table: pending}})
            unprocessed = response.get("UnprocessedItems", {}).get(table, [])
            deleted += len(pending) - len(unprocessed)
            pending = unprocessed
            if not pending:
                break
            _backoff(attempt)
        else:
            raise RuntimeError("BatchWriteItem kept returning unprocessed items")
    return deleted


def _backoff(attempt: int) -> None:
    # Full jitter: spreads retries of concurrent writers under throttling.
    time.sleep(random.uniform(0, min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2**attempt)))  # noqa: S311


# --- closures ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingClosure:
    ws: str
    closed_at: datetime
    stamped_count: int = 0


def register_closure(ws: str, closed_at: datetime) -> None:
    """Queue a workspace for its TTL stamp. Written before the workspace is marked closed, so a
    closure can never be missed (the sweep drops entries whose workspace is still active)."""
    PendingClosureModel(CLOSURES_PK, ws, ws_id=ws, closed_at=closed_at).save()


def pending_closures() -> list[PendingClosure]:
    items = PendingClosureModel.query(CLOSURES_PK, consistent_read=True)
    return [PendingClosure(ws=i.ws_id, closed_at=i.closed_at, stamped_count=int(i.stamped_count or 0)) for i in items]


def save_closure_progress(ws: str, stamped_count: int) -> None:
    """Remember how far stamping got, so a workspace larger than one run's budget still completes."""
    item = PendingClosureModel(CLOSURES_PK, ws)
    try:
        item.update(
            actions=[PendingClosureModel.stamped_count.set(stamped_count)], condition=PendingClosureModel.pk.exists()
        )
    except UpdateError as exc:
        if not is_condition_failure(exc):
            raise


def clear_closure(ws: str) -> None:
    PendingClosureModel(CLOSURES_PK, ws).delete()


_INDEX_HASH_KEYS = {"GSI1": "GSI1PK", "Timeline": "TimelinePK"}


def raw_query(pk: str, *, index: str | None = None, projection: str | None = None) -> Iterator[dict[str, Any]]:
    """Every item of one partition (raw attribute maps), paging through Query. Expired ones included:
    the stamp/erase paths must see them too."""
    table = get_settings().table_name
    conn = connection()
    start: dict[str, Any] | None = None
    while True:
        kwargs: dict[str, Any] = {"TableName": table, "ExclusiveStartKey": start} if start else {"TableName": table}
        if index:
            kwargs["IndexName"] = index
            kwargs["KeyConditionExpression"] = "#h = :h"
            kwargs["ExpressionAttributeNames"] = {"#h": _INDEX_HASH_KEYS[index]}
        else:
            kwargs["KeyConditionExpression"] = "#h = :h"
            kwargs["ExpressionAttributeNames"] = {"#h": "PK"}
        kwargs["ExpressionAttributeValues"] = {":h": {"S": pk}}
        if projection:
            names = {f"#p{i}": name for i, name in enumerate(projection.split(","))}
            kwargs["ExpressionAttributeNames"].update(names)
            kwargs["ProjectionExpression"] = ", ".join(names)
        response = conn.dispatch("Query", kwargs)
        yield from response.get("Items", [])
        start = response.get("LastEvaluatedKey")
        if not start:
            return


def _s(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value.get("S") if value else None


def workspace_account_keys(ws: str) -> Iterator[Key]:
    """Every account-class item of a workspace, found through its key prefixes (docs/DATA_MODEL.md):
    the `WS#<ws>` partition (workspace, members, invitations, connection, contacts, templates,
    canned replies and their shortcut markers, API keys), each API key's lookup item, each contact's
    uniqueness markers, tag items and search words, the phone routing item, every broadcast
    partition (found through GSI1 `WS#<ws>#BCASTS`) and every import job partition (GSI1
    `WS#<ws>#IMPORTS`; row errors are kept on the job item).

    Items of the other classes carry their own TTL from the write (messages, broadcast recipients,
    wamid pointers: 90 days; dedupe markers, early statuses: 8 days; erasure tombstones: 22 days; rate-limit
    slots: minutes), so they expire no later than closure + 90 days without a stamp. Usage logs,
    the security log and billing records keep their own, longer windows (privacy policy section 7;
    billing records by law) and hold no message content."""
    projection = "PK,SK,phone,wa_id,user_id,tags,phone_number_id,ws,name,email,key_hash"
    for item in raw_query(m.ws_pk(ws), projection=projection):
        pk, sk = item["PK"]["S"], item["SK"]["S"]
        yield pk, sk
        if sk.startswith(m.ContactModel.SK_PREFIX):
            contact_id = sk[len(m.ContactModel.SK_PREFIX) :]
            for kind in ("phone", "wa_id", "user_id"):
                value = _s(item, kind)
                if value:
                    yield m.contact_unique_pk(ws, kind, value), m.ContactUniqueModel.SK_VALUE
            for tag in item.get("tags", {}).get("L", []):
                if tag.get("S"):
                    yield m.contact_tag_pk(ws, tag["S"]), f"{m.ContactModel.SK_PREFIX}{contact_id}"
            # Its search words (data/contact_search.py), derived from the same fields.
            yield from contact_search.word_keys(ws, contact_id, _s(item, "name"), _s(item, "email"), _s(item, "phone"))
        elif sk.startswith(api_keys.KEY_SK_PREFIX):
            # The key's lookup item (data/api_keys.py), named by the secret's hash kept on the key.
            key_hash = _s(item, "key_hash")
            if key_hash:
                yield api_keys.lookup_key(key_hash)
        elif sk == m.WhatsAppConnectionModel.SK_VALUE:
            phone_number_id = _s(item, "phone_number_id")
            if phone_number_id:
                yield m.phone_route_pk(phone_number_id), m.PhoneRouteModel.SK_VALUE
    for broadcast in raw_query(m.broadcasts_index_pk(ws), index="GSI1", projection="PK"):
        for item in raw_query(broadcast["PK"]["S"], projection="PK,SK"):
            yield item["PK"]["S"], item["SK"]["S"]
    for job in raw_query(m.imports_index_pk(ws), index="GSI1", projection="PK"):
        for item in raw_query(job["PK"]["S"], projection="PK,SK"):
            yield item["PK"]["S"], item["SK"]["S"]


def stamp_expiry(key: Key, expires_at: int, *, ws: str) -> bool:
    """Give an existing item the TTL `expires_at` (and its index bucket) unless it already expires
    sooner. A phone routing item is stamped only while it still routes to `ws`. False if unchanged."""
    pk, sk = key
    model = _AnyItem
    condition = model.pk.exists() & (model.expires_at.does_not_exist() | (model.expires_at > expires_at))
    if pk.startswith("PHONEID#"):
        condition &= m.PhoneRouteModel.ws == ws
    try:
        _AnyItem(pk, sk).update(
            actions=[
                model.expires_at.set(expires_at),
                model.expiry_bucket.set(retention.expiry_bucket(expires_at, f"{pk}#{sk}")),
            ],
            condition=condition,
        )
    except UpdateError as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def delete_phone_route(phone_number_id: str, *, ws: str) -> None:
    """Free a closed workspace's number: webhooks for it stop landing in the closed workspace."""
    try:
        m.PhoneRouteModel(m.phone_route_pk(phone_number_id), m.PhoneRouteModel.SK_VALUE).delete(
            condition=m.PhoneRouteModel.ws == ws
        )
    except Exception as exc:
        if not is_condition_failure(exc):
            raise


def membership_key(ws: str, sub: str) -> Key:
    return m.ws_pk(ws), f"{m.MembershipModel.SK_PREFIX}{sub}"
