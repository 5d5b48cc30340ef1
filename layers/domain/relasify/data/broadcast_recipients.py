"""A broadcast's recipients: one item per contact (the dedupe), claimed with a conditional put
(`attribute_not_exists`), so a contact reached through two tags, or a redelivered expansion job, is
queued once.

The worker's hot path batches (docs/SENDING.md "Requests per broadcast message"): a page of claims,
or a chunk's skips, is one transaction with ONE counter update carrying the page's sums (`claim_many`,
`settle_many`); a sent message's wamid, its recipient and its count are one transaction
(`record_sent`). A transaction refused by a condition changes nothing, and the one-by-one path then
decides item by item, so batching never changes an outcome.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import PutError, TransactWriteError, UpdateError

from relasify.data import models as m
from relasify.data.base import chunks, query_all, transaction
from relasify.data.broadcast_counters import counter_update
from relasify.data.outbound_messages import delete_wamid_pointer, set_wamid, wamid_pointer
from relasify.data.records import Contact, Record
from relasify.data.tx import cancellation_codes, is_condition_failure

MAX_TRANSACTION_ITEMS = 100  # DynamoDB's limit per TransactWriteItems
TRANSACTION_CONFLICT_ATTEMPTS = 4  # a counter shard in another transaction at that instant: try again


class Recipient(Record):
    contact_id: str
    status: str
    message_id: str | None = None
    skip_reason: str | None = None
    claimed_by: str | None = None


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
    shard, shard_actions = counter_update(ws, broadcast_id, skipped_reason=skip_reason, deltas=deltas)
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
    from relasify.data.contact_items import contact_from_item

    keys = [(m.ws_pk(ws), f"{m.ContactModel.SK_PREFIX}{cid}") for cid in dict.fromkeys(contact_ids)]
    return {item.contact_id: contact_from_item(item) for item in m.ContactModel.batch_get(keys) if not item.is_expired}


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
    shard, shard_actions = counter_update(ws, broadcast_id, skipped_reason=skip_reason, deltas=deltas)
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
            shard, actions = counter_update(
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
            shard, shard_actions = counter_update(
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
        tx.save(wamid_pointer(ws, message_id, wamid), condition=m.WamidPointerModel.pk.does_not_exist())
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
        shard, shard_actions = counter_update(ws, broadcast_id, deltas={"queued": -1, "sent": 1})
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
