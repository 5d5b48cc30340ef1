"""Broadcasts: the broadcast item, one recipient item per contact (the dedupe), sharded counters,
and the broadcast queue.

- A recipient is claimed with a conditional put (`attribute_not_exists`): a contact reached through
  two tags, or a redelivered expansion job, is queued once.
- Counters live in `COUNT#<n>` items under the broadcast partition; each increment is an atomic
  `ADD` on one random shard, so thousands of concurrent workers and webhooks never queue behind
  one item; a read sums the shards (one Query).
- The worker's hot path batches (docs/SENDING.md "Requests per broadcast message"): a page of
  claims, or a chunk's skips, is one transaction with ONE counter update carrying the page's sums
  (`claim_many`, `settle_many`); a sent message's wamid, its recipient and its count are one
  transaction (`record_sent`). A transaction refused by a condition changes nothing, and the
  one-by-one path then decides item by item, so batching never changes an outcome.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import Field
from pynamodb.exceptions import PutError, TransactWriteError, UpdateError

from relasify import clock
from relasify.data import aws_clients
from relasify.data import models as m
from relasify.data.base import chunks, query_all, query_page, transaction, utc
from relasify.data.cursor import decode_cursor, encode_cursor
from relasify.data.ids import new_id
from relasify.data.messages import _plain, delete_wamid_pointer, set_wamid
from relasify.data.records import Contact, Page, Record
from relasify.data.tx import cancellation_codes, is_condition_failure
from relasify.settings import get_settings

BroadcastStatus = Literal["queued", "scheduled", "running", "completed", "cancelled", "failed"]
ACTIVE_STATUSES: tuple[str, ...] = ("queued", "scheduled", "running")
COUNTER_SHARDS = 10
COUNT_FIELDS = ("queued", "sent", "delivered", "read", "failed", "skipped")
SQS_MAX_DELAY_SECONDS = 900
EXPANSION_DONE = "done"  # the broadcast item's cursor once every audience page is claimed
MAX_TRANSACTION_ITEMS = 100  # DynamoDB's limit per TransactWriteItems
TRANSACTION_CONFLICT_ATTEMPTS = 4  # a counter shard in another transaction at that instant: try again


class Broadcast(Record):
    id: str
    ws: str
    template_name: str
    language: str
    audience: dict[str, Any] = Field(default_factory=dict)
    parameters: list[Any] = Field(default_factory=list)
    header: dict[str, Any] | None = None
    scheduled_at: datetime | None = None
    status: str = "queued"
    expanded: bool = False  # the whole audience is claimed (the expansion cursor reached its end)
    total: int = 0
    counter_shards: int = COUNTER_SHARDS
    created_by: str | None = None
    cancelled_at: datetime | None = None
    completed_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Counts(Record):
    queued: int = 0
    sent: int = 0
    delivered: int = 0
    read: int = 0
    failed: int = 0
    skipped: int = 0
    skipped_reasons: dict[str, int] = Field(default_factory=dict)


class Recipient(Record):
    contact_id: str
    status: str
    message_id: str | None = None
    skip_reason: str | None = None
    claimed_by: str | None = None


def _broadcast(item: m.BroadcastModel) -> Broadcast:
    return Broadcast(
        id=item.broadcast_id,
        ws=item.ws_id,
        template_name=item.template_name,
        language=item.language,
        audience=_plain(item.audience) or {},
        parameters=_plain(item.parameters) or [],
        header=_plain(item.header) or None,
        scheduled_at=utc(item.scheduled_at),
        status=item.status,
        expanded=item.cursor == EXPANSION_DONE,
        total=int(item.total or 0),
        counter_shards=int(item.counter_shards or 1),
        created_by=item.created_by,
        cancelled_at=utc(item.cancelled_at),
        completed_at=utc(item.completed_at),
        created_at=utc(item.created_at),
        updated_at=utc(item.updated_at),
    )


def _meta_key(ws: str, broadcast_id: str) -> tuple[str, str]:
    return m.broadcast_pk(ws, broadcast_id), m.BroadcastModel.SK_VALUE


# --- broadcast item ----------------------------------------------------------------------------


def create_broadcast(
    ws: str,
    *,
    template_name: str,
    language: str,
    audience: dict[str, Any],
    parameters: list[Any],
    header: dict[str, Any] | None = None,
    scheduled_at: datetime | None,
    created_by: str | None,
) -> Broadcast:
    broadcast_id = new_id("bc")
    now = clock.now()
    item = m.BroadcastModel(
        *_meta_key(ws, broadcast_id),
        ws_id=ws,
        broadcast_id=broadcast_id,
        template_name=template_name,
        language=language,
        audience=audience,
        parameters=parameters,
        header=header,
        scheduled_at=scheduled_at,
        status="scheduled" if scheduled_at and scheduled_at > now else "queued",
        counter_shards=COUNTER_SHARDS,
        created_by=created_by,
    )
    item.gsi1pk = m.broadcasts_index_pk(ws)
    item.gsi1sk = f"{now.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{broadcast_id}"
    item.save(condition=m.BroadcastModel.pk.does_not_exist())
    return _broadcast(item)


def get_broadcast(ws: str, broadcast_id: str, *, consistent: bool = False) -> Broadcast | None:
    item = m.BroadcastModel.get_live(*_meta_key(ws, broadcast_id), consistent_read=consistent)
    return _broadcast(item) if item else None


def list_broadcasts(ws: str, *, limit: int = 50, cursor: str | None = None) -> Page[Broadcast]:
    scope = "broadcasts"
    page = query_page(
        m.BroadcastModel,
        m.broadcasts_index_pk(ws),
        index=m.BroadcastModel.gsi1,
        limit=max(1, min(limit, 100)),
        exclusive_start_key=decode_cursor(cursor, ws=ws, scope=scope),
        newest_first=True,
    )
    return Page(
        items=[_broadcast(i) for i in page.items],
        next_cursor=encode_cursor(page.last_evaluated_key, ws=ws, scope=scope),
    )


def transition(ws: str, broadcast_id: str, to: str, *, allowed_from: Iterable[str]) -> bool:
    """Move the broadcast to `to` if its status is one of `allowed_from` (one conditional write)."""
    model = m.BroadcastModel
    item = model(*_meta_key(ws, broadcast_id))
    actions: list[Any] = [model.status.set(to), model.touch()]
    if to == "cancelled":
        actions.append(model.cancelled_at.set(clock.now()))
    if to == "completed":
        actions.append(model.completed_at.set(clock.now()))
    try:
        item.update(actions=actions, condition=model.pk.exists() & model.status.is_in(*allowed_from))
    except UpdateError as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def add_total(ws: str, broadcast_id: str, count: int) -> None:
    if count:
        model = m.BroadcastModel
        model(*_meta_key(ws, broadcast_id)).update(actions=[model.total.add(count), model.touch()])


# --- recipients ----------------------------------------------------------------------------------


def claim_recipient(
    ws: str, broadcast_id: str, contact_id: str, *, status: str = "queued", skip_reason: str | None = None
) -> bool:
    """The dedupe: one recipient item per contact per broadcast. False if the contact is in already."""
    item = m.BroadcastRecipientModel(
        m.broadcast_pk(ws, broadcast_id),
        f"{m.BroadcastRecipientModel.SK_PREFIX}{contact_id}",
        ws_id=ws,
        broadcast_id=broadcast_id,
        contact_id=contact_id,
        status=status,
        skip_reason=skip_reason,
    )
    try:
        item.save(condition=m.BroadcastRecipientModel.pk.does_not_exist())
    except PutError as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def claim_and_count(
    ws: str,
    broadcast_id: str,
    contact_id: str,
    *,
    status: str = "queued",
    skip_reason: str | None = None,
    claimed_by: str | None = None,
    **deltas: int,
) -> bool:
    """`claim_recipient` and its count in one transaction. False if the contact is in already."""
    item = m.BroadcastRecipientModel(
        m.broadcast_pk(ws, broadcast_id),
        f"{m.BroadcastRecipientModel.SK_PREFIX}{contact_id}",
        ws_id=ws,
        broadcast_id=broadcast_id,
        contact_id=contact_id,
        status=status,
        skip_reason=skip_reason,
        claimed_by=claimed_by,
    )
    shard, shard_actions = _counter_update(ws, broadcast_id, skipped_reason=skip_reason, deltas=deltas)
    try:
        with transaction() as tx:
            tx.save(item, condition=m.BroadcastRecipientModel.pk.does_not_exist())
            tx.update(shard, actions=shard_actions)
    except TransactWriteError as exc:
        if "ConditionalCheckFailed" in cancellation_codes(exc):
            return False
        raise
    return True


def get_recipient(ws: str, broadcast_id: str, contact_id: str) -> Recipient | None:
    item = m.BroadcastRecipientModel.get_live(
        m.broadcast_pk(ws, broadcast_id), f"{m.BroadcastRecipientModel.SK_PREFIX}{contact_id}", consistent_read=True
    )
    if item is None:
        return None
    return Recipient(
        contact_id=item.contact_id, status=item.status, message_id=item.message_id, skip_reason=item.skip_reason
    )


def settle_recipient(
    ws: str,
    broadcast_id: str,
    contact_id: str,
    status: str,
    *,
    message_id: str | None = None,
    skip_reason: str | None = None,
) -> bool:
    """Move a queued recipient to its outcome once (conditional on it still being queued)."""
    model = m.BroadcastRecipientModel
    item = model(m.broadcast_pk(ws, broadcast_id), f"{model.SK_PREFIX}{contact_id}")
    actions: list[Any] = [model.status.set(status), model.touch()]
    if message_id:
        actions.append(model.message_id.set(message_id))
    if skip_reason:
        actions.append(model.skip_reason.set(skip_reason))
    try:
        item.update(actions=actions, condition=model.status == "queued")
    except UpdateError as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def get_recipients(ws: str, broadcast_id: str, contact_ids: list[str]) -> dict[str, Recipient]:
    """The recipient items of a chunk in one BatchGetItem (strongly consistent)."""
    model = m.BroadcastRecipientModel
    keys = [(m.broadcast_pk(ws, broadcast_id), f"{model.SK_PREFIX}{cid}") for cid in dict.fromkeys(contact_ids)]
    out: dict[str, Recipient] = {}
    for item in model.batch_get(keys, consistent_read=True):
        out[item.contact_id] = Recipient(
            contact_id=item.contact_id,
            status=item.status,
            message_id=item.message_id,
            skip_reason=item.skip_reason,
            claimed_by=item.claimed_by,
        )
    return out


def get_contacts(ws: str, contact_ids: list[str]) -> dict[str, Contact]:
    """The contacts of a chunk in one BatchGetItem (expired ones left out)."""
    from relasify.data.contacts import _contact

    keys = [(m.ws_pk(ws), f"{m.ContactModel.SK_PREFIX}{cid}") for cid in dict.fromkeys(contact_ids)]
    return {item.contact_id: _contact(item) for item in m.ContactModel.batch_get(keys) if not item.is_expired}


def settle_and_count(
    ws: str,
    broadcast_id: str,
    contact_id: str,
    status: str,
    *,
    message_id: str | None = None,
    skip_reason: str | None = None,
    **deltas: int,
) -> bool:
    """Settle a queued recipient and count it, atomically (one transaction): a crash can neither
    count a recipient twice nor settle it uncounted. False when it was no longer queued."""
    recipient_model = m.BroadcastRecipientModel
    recipient = recipient_model(m.broadcast_pk(ws, broadcast_id), f"{recipient_model.SK_PREFIX}{contact_id}")
    recipient_actions: list[Any] = [recipient_model.status.set(status), recipient_model.touch()]
    if message_id:
        recipient_actions.append(recipient_model.message_id.set(message_id))
    if skip_reason:
        recipient_actions.append(recipient_model.skip_reason.set(skip_reason))
    shard, shard_actions = _counter_update(ws, broadcast_id, skipped_reason=skip_reason, deltas=deltas)
    try:
        with transaction() as tx:
            tx.update(recipient, actions=recipient_actions, condition=recipient_model.status == "queued")
            tx.update(shard, actions=shard_actions)
    except TransactWriteError as exc:
        if "ConditionalCheckFailed" in cancellation_codes(exc):
            return False
        raise
    return True


@dataclass(frozen=True, slots=True)
class Settlement:
    """A queued recipient's outcome: `sent`, `failed` or `skipped` (with a reason)."""

    contact_id: str
    status: str
    message_id: str | None = None
    skip_reason: str | None = None


def _recipient_model(ws: str, broadcast_id: str, contact_id: str) -> m.BroadcastRecipientModel:
    model = m.BroadcastRecipientModel
    return model(m.broadcast_pk(ws, broadcast_id), f"{model.SK_PREFIX}{contact_id}")


def _reason_sums(reasons: Iterable[str | None]) -> dict[str, int]:
    sums: dict[str, int] = {}
    for reason in reasons:
        if reason:
            sums[reason] = sums.get(reason, 0) + 1
    return sums


def _refused_by_condition(exc: TransactWriteError) -> bool:
    return "ConditionalCheckFailed" in cancellation_codes(exc)


def _conflicted(exc: TransactWriteError) -> bool:
    """Cancelled only because another transaction held one of the items (DynamoDB's TransactionConflict:
    typically a counter shard): nothing was written, the same transaction may simply run again."""
    codes = {code for code in cancellation_codes(exc) if code not in (None, "None")}
    return bool(codes) and codes <= {"TransactionConflict"}


def _run_transaction(build: Any) -> bool:
    """Run the transaction `build(tx)` describes. False when a condition refused it (nothing written);
    retried, rebuilt, when it only met a concurrent transaction."""
    for attempt in range(1, TRANSACTION_CONFLICT_ATTEMPTS + 1):
        try:
            with transaction() as tx:
                build(tx)
        except TransactWriteError as exc:
            if _refused_by_condition(exc):
                return False
            if _conflicted(exc) and attempt < TRANSACTION_CONFLICT_ATTEMPTS:
                time.sleep(random.uniform(0.005, 0.02) * attempt)  # noqa: S311 - jitter
                continue
            raise
        return True
    raise AssertionError("unreachable")


def claim_many(
    ws: str, broadcast_id: str, claims: list[Settlement], *, claimed_by: str | None = None
) -> dict[str, bool]:
    """Claim a page of recipients (`queued`, or `skipped` with a reason) and count them: one transaction
    per 99 recipients with one counter update for all; each item records `claimed_by` (the page).
    Returns contact id -> claimed now (False: it was in already). A group refused because one of its
    contacts was claimed before (a redelivered page, a contact in two tags) is claimed one by one."""
    out: dict[str, bool] = {}
    unique = list({c.contact_id: c for c in claims}.values())
    for group in chunks(unique, MAX_TRANSACTION_ITEMS - 1):

        def build(tx: Any, group: list[Settlement] = group) -> None:
            for claim in group:
                item = m.BroadcastRecipientModel(
                    m.broadcast_pk(ws, broadcast_id),
                    f"{m.BroadcastRecipientModel.SK_PREFIX}{claim.contact_id}",
                    ws_id=ws,
                    broadcast_id=broadcast_id,
                    contact_id=claim.contact_id,
                    status=claim.status,
                    skip_reason=claim.skip_reason,
                    claimed_by=claimed_by,
                )
                tx.save(item, condition=m.BroadcastRecipientModel.pk.does_not_exist())
            queued = sum(1 for c in group if c.status == "queued")
            shard, actions = _counter_update(
                ws,
                broadcast_id,
                skipped_reasons=_reason_sums(c.skip_reason for c in group if c.status == "skipped"),
                deltas={"queued": queued, "skipped": len(group) - queued},
            )
            tx.update(shard, actions=actions)

        if _run_transaction(build):
            out.update(dict.fromkeys((c.contact_id for c in group), True))
            continue
        for claim in group:
            deltas = {"queued": 1} if claim.status == "queued" else {"skipped": 1}
            out[claim.contact_id] = claim_and_count(
                ws,
                broadcast_id,
                claim.contact_id,
                status=claim.status,
                skip_reason=claim.skip_reason,
                claimed_by=claimed_by,
                **deltas,
            )
    return out


def settle_many(ws: str, broadcast_id: str, settlements: list[Settlement]) -> dict[str, bool]:
    """Settle queued recipients and count them (queued -1, +1 on their outcome): one transaction per
    99 with one counter update. Returns contact id -> settled now (False: it was not queued any more).
    A group refused by a condition (another run settled one of them) is settled one by one instead."""
    out: dict[str, bool] = {}
    unique = list({s.contact_id: s for s in settlements}.values())
    for group in chunks(unique, MAX_TRANSACTION_ITEMS - 1):

        def build(tx: Any, group: list[Settlement] = group) -> None:
            model = m.BroadcastRecipientModel
            for settlement in group:
                actions: list[Any] = [model.status.set(settlement.status), model.touch()]
                if settlement.message_id:
                    actions.append(model.message_id.set(settlement.message_id))
                if settlement.skip_reason:
                    actions.append(model.skip_reason.set(settlement.skip_reason))
                tx.update(
                    _recipient_model(ws, broadcast_id, settlement.contact_id),
                    actions=actions,
                    condition=model.status == "queued",
                )
            deltas = {"queued": -len(group)}
            for settlement in group:
                deltas[settlement.status] = deltas.get(settlement.status, 0) + 1
            shard, shard_actions = _counter_update(
                ws,
                broadcast_id,
                skipped_reasons=_reason_sums(s.skip_reason for s in group if s.status == "skipped"),
                deltas=deltas,
            )
            tx.update(shard, actions=shard_actions)

        if _run_transaction(build):
            out.update(dict.fromkeys((s.contact_id for s in group), True))
            continue
        for settlement in group:
            out[settlement.contact_id] = settle_and_count(
                ws,
                broadcast_id,
                settlement.contact_id,
                settlement.status,
                message_id=settlement.message_id,
                skip_reason=settlement.skip_reason,
                queued=-1,
                **{settlement.status: 1},
            )
    return out


def record_sent(ws: str, broadcast_id: str, contact_id: str, message_id: str, wamid: str) -> bool:
    """What a broadcast send records once Meta answered: in ONE transaction the wamid pointer, a
    check that no status for this wamid is waiting (the `PENDING` marker: the webhook processor keeps
    the status and the marker when the pointer is missing, then re-reads the pointer, so whoever
    writes second sees the other's item), and the recipient settled `sent` with its count; then the
    message's wamid as a plain write (the message is the largest item: in the transaction it would
    be billed twice). A crash between the two leaves the pointer, which status webhooks resolve (as
    do their callback data), setting the wamid; the settled recipient is never sent again. False
    when a condition refused the transaction (pointer there already, a status waiting, the
    recipient settled by another run): nothing was written, and the caller takes the general path
    (`apply_pending_statuses`, `settle_and_count`), which handles each of those."""
    recipient_model = m.BroadcastRecipientModel
    pending_model = m.PendingStatusModel

    def build(tx: Any) -> None:
        pointer = m.WamidPointerModel(
            m.wamid_pk(wamid), m.WamidPointerModel.SK_VALUE, wamid=wamid, ws_id=ws, message_id=message_id
        )
        tx.save(pointer, condition=m.WamidPointerModel.pk.does_not_exist())
        tx.condition_check(
            pending_model, m.wamid_pk(wamid), pending_model.MARKER_SK, condition=pending_model.pk.does_not_exist()
        )
        tx.update(
            _recipient_model(ws, broadcast_id, contact_id),
            actions=[
                recipient_model.status.set("sent"),
                recipient_model.message_id.set(message_id),
                recipient_model.touch(),
            ],
            condition=recipient_model.status == "queued",
        )
        shard, shard_actions = _counter_update(ws, broadcast_id, deltas={"queued": -1, "sent": 1})
        tx.update(shard, actions=shard_actions)

    if not _run_transaction(build):
        return False
    if not set_wamid(ws, message_id, wamid):
        delete_wamid_pointer(wamid)  # the message was erased while its send was in flight
    return True


def list_recipients(ws: str, broadcast_id: str) -> list[Recipient]:
    prefix = m.BroadcastRecipientModel.SK_PREFIX
    items = query_all(
        m.BroadcastRecipientModel, m.broadcast_pk(ws, broadcast_id), m.BroadcastRecipientModel.sk.startswith(prefix)
    )
    return [
        Recipient(contact_id=i.contact_id, status=i.status, message_id=i.message_id, skip_reason=i.skip_reason)
        for i in items
    ]


# --- counters ----------------------------------------------------------------------------------


def bump(ws: str, broadcast_id: str, *, skipped_reason: str | None = None, **deltas: int) -> None:
    """Atomically add `deltas` (queued=1, sent=1, ...) on one random counter shard."""
    item, actions = _counter_update(ws, broadcast_id, skipped_reason=skipped_reason, deltas=deltas)
    item.update(actions=actions)


def _counter_update(
    ws: str,
    broadcast_id: str,
    *,
    skipped_reason: str | None = None,
    skipped_reasons: dict[str, int] | None = None,
    deltas: dict[str, int],
) -> tuple[m.BroadcastCounterShardModel, list[Any]]:
    """The update of one random shard adding `deltas`; skip reasons count `skipped` (one reason) or
    their own numbers (`skipped_reasons`, a page's sums)."""
    model = m.BroadcastCounterShardModel
    shard = random.randrange(COUNTER_SHARDS)  # noqa: S311 - load spreading, not security
    item = model(m.broadcast_pk(ws, broadcast_id), f"{model.SK_PREFIX}{shard}")
    actions: list[Any] = [
        model.ws_id.set(ws),
        model.broadcast_id.set(broadcast_id),
        model.shard.set(shard),
        model.touch(),
    ]
    for name, delta in deltas.items():
        if name not in COUNT_FIELDS:
            raise ValueError(f"unknown counter {name}")
        if delta:
            actions.append(getattr(model, name).add(delta))
    reasons = dict(skipped_reasons or {})
    if skipped_reason:
        reasons[skipped_reason] = reasons.get(skipped_reason, 0) + deltas.get("skipped", 1)
    if reasons:
        # A nested ADD needs the map to exist: the shard is given an empty one first (rare: skips).
        _ensure_reason_map(item)
        actions.extend(model.skipped_reasons[reason].add(count) for reason, count in sorted(reasons.items()))
    return item, actions


def _ensure_reason_map(item: m.BroadcastCounterShardModel) -> None:
    model = m.BroadcastCounterShardModel
    try:
        item.update(actions=[model.skipped_reasons.set({})], condition=model.skipped_reasons.does_not_exist())
    except UpdateError as exc:
        if not is_condition_failure(exc):
            raise


def counts(ws: str, broadcast_id: str) -> Counts:
    prefix = m.BroadcastCounterShardModel.SK_PREFIX
    totals = dict.fromkeys(COUNT_FIELDS, 0)
    reasons: dict[str, int] = {}
    for shard in _shards(ws, broadcast_id, prefix):
        for name in COUNT_FIELDS:
            totals[name] += int(getattr(shard, name) or 0)
        for reason, value in (_plain(shard.skipped_reasons) or {}).items():
            reasons[reason] = reasons.get(reason, 0) + int(value)
    return Counts(**totals, skipped_reasons=reasons)


def _shards(ws: str, broadcast_id: str, prefix: str) -> Iterable[m.BroadcastCounterShardModel]:
    return m.BroadcastCounterShardModel.query(
        m.broadcast_pk(ws, broadcast_id),
        m.BroadcastCounterShardModel.sk.startswith(prefix),
        consistent_read=True,
    )


# --- queue ---------------------------------------------------------------------------------------


def reset_for_tests() -> None:
    aws_clients.reset()


def enqueue_jobs(jobs: list[dict[str, Any]], *, delay_seconds: int = 0) -> None:
    """Put broadcast jobs on the broadcast queue (batches of 10, SQS's limit)."""
    url = get_settings().broadcast_queue_url
    delay = max(0, min(int(delay_seconds), SQS_MAX_DELAY_SECONDS))
    for batch in chunks(jobs, 10):
        entries = [
            {"Id": str(i), "MessageBody": json.dumps(job, separators=(",", ":")), "DelaySeconds": delay}
            for i, job in enumerate(batch)
        ]
        response = aws_clients.client("sqs").send_message_batch(QueueUrl=url, Entries=entries)
        if response.get("Failed"):
            raise RuntimeError(f"{len(response['Failed'])} broadcast jobs were not enqueued")
