"""Data access of erasure and export (privacy policy section 9): every item and object holding a
contact's data, found through keys, never by scanning; media objects in S3.

Where a contact's data lives (docs/DATA_MODEL.md): the contact item, its uniqueness markers and tag
items (`relasify.data.contacts` deletes those in one transaction), the conversation's message items
(Timeline index `WS#<ws>#CONV#<cid>`), each message's `WAMID#<wamid>` partition (pointer, early statuses),
its media object `media/<ws>/<message id>`, broadcast recipient items `RCPT#<cid>`, and the
change-feed events naming the conversation (`CHG#<ws>`).
Billing records hold no content and no wamid (keyed by its SHA-256) and are kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from relasify.data import aws_clients
from relasify.data import models as m
from relasify.data.base import BATCH_GET_MAX_KEYS, batch_get_raw, chunks, query_all
from relasify.data.changes import change_pk, contact_change_pk
from relasify.data.sweep import Key, delete_keys, raw_query
from relasify.data.webhook_inbox import media_object_key
from relasify.settings import get_settings

S3_DELETE_MAX = 1000  # DeleteObjects limit


@dataclass(frozen=True, slots=True)
class ConversationItem:
    key: Key
    message_id: str
    wamid: str | None
    media_s3_key: str | None
    reaction_wamids: tuple[str, ...] = ()  # reactions attached to this message (their own items)


def conversation_keys(ws: str, contact_id: str) -> list[Key]:
    """The keys of every thread item of a contact's conversation, expired ones included: its Timeline
    entries, and the GSI1 entries of items written before that index and not yet moved by
    `relasify.data.timeline_backfill` (the same partition key; an empty Query once it has run)."""
    pk = m.conversation_pk(ws, contact_id)
    found = (i for index in ("Timeline", "GSI1") for i in raw_query(pk, index=index, projection="PK,SK"))
    return list(dict.fromkeys((i["PK"]["S"], i["SK"]["S"]) for i in found))


def conversation_items(ws: str, contact_id: str) -> list[ConversationItem]:
    """Every message item of a contact's conversation, expired ones included (erasure takes all): the
    index gives the keys, the items (consistent BatchGetItem) their wamid, media and reactions."""
    out = []
    keys = conversation_keys(ws, contact_id)
    items: dict[Key, dict[str, Any]] = {}
    for chunk in chunks(keys, BATCH_GET_MAX_KEYS):
        items.update(batch_get_raw(chunk, consistent=True))
    for item in (items[key] for key in keys if key in items):
        message_id = item.get("message_id", {}).get("S") or item["PK"]["S"].rsplit("#", 1)[-1]
        reactions = [r.get("M", {}).get("wamid", {}).get("S") for r in item.get("reactions", {}).get("L", [])]
        out.append(
            ConversationItem(
                key=(item["PK"]["S"], item["SK"]["S"]),
                message_id=message_id,
                wamid=item.get("wamid", {}).get("S"),
                media_s3_key=item.get("media_s3_key", {}).get("S"),
                reaction_wamids=tuple(w for w in reactions if w),
            )
        )
    return out


def reaction_message_keys(ws: str, reaction_wamid: str) -> list[Key]:
    """A reaction's own message item (kept outside the conversation index) and its wamid partition,
    found through the reaction's wamid recorded on the target message: inbound items are keyed by an
    id derived from the wamid; older items are found through their wamid pointer."""
    from relasify.data import messages

    keys = wamid_partition_keys(reaction_wamid)
    derive = getattr(messages, "inbound_message_id", None)  # present once inbound ids derive from wamids
    if derive is not None:
        keys.append((m.message_pk(ws, derive(reaction_wamid)), m.MessageModel.SK_VALUE))
    for pointer in raw_query(m.wamid_pk(reaction_wamid), projection="PK,SK,ws_id,message_id"):
        if pointer.get("ws_id", {}).get("S") == ws and pointer.get("message_id", {}).get("S"):
            keys.append((m.message_pk(ws, pointer["message_id"]["S"]), m.MessageModel.SK_VALUE))
    return keys


def wamid_partition_keys(wamid: str) -> list[Key]:
    """The wamid pointer and any early statuses kept under `WAMID#<wamid>`."""
    return [(i["PK"]["S"], i["SK"]["S"]) for i in raw_query(m.wamid_pk(wamid), projection="PK,SK")]


def broadcast_recipient_keys(ws: str, contact_id: str) -> list[Key]:
    """`RCPT#<cid>` in every broadcast of the workspace (broadcasts listed through GSI1)."""
    sk = f"{m.BroadcastRecipientModel.SK_PREFIX}{contact_id}"
    return [(b["PK"]["S"], sk) for b in raw_query(m.broadcasts_index_pk(ws), index="GSI1", projection="PK")]


def change_event_keys(ws: str, contact_id: str) -> list[Key]:
    """The change-feed events (`CHG#<ws>`, 48 h, ids only) naming the contact's conversation: one
    Query of the workspace's last 48 h of events (erasure is rare; an index per conversation would
    cost a write on every event)."""
    pk = change_pk(ws)
    keys = [
        (pk, item["SK"]["S"])
        for item in raw_query(pk, projection="SK,conversation_id")
        if item.get("conversation_id", {}).get("S") == contact_id
    ]
    # ...and the contact events (outgoing webhooks only) naming the contact.
    contact_pk = contact_change_pk(ws)
    return keys + [
        (contact_pk, item["SK"]["S"])
        for item in raw_query(contact_pk, projection="SK,contact_id")
        if item.get("contact_id", {}).get("S") == contact_id
    ]


def delete_items(keys: Iterable[Key]) -> int:
    """Unconditional batch delete (absent keys are no-ops)."""
    return delete_keys(keys)


# --- S3 ---------------------------------------------------------------------------------------------


def _s3() -> Any:
    # A client per operation: erasure and the sweep are rare, and tests switch moto contexts.
    return aws_clients.session().client("s3")


def delete_objects(keys: Iterable[str]) -> int:
    """Delete objects of the media bucket by key (absent keys are no-ops). Returns keys requested."""
    bucket = get_settings().media_bucket
    client = None
    count = 0
    for batch in chunks(dict.fromkeys(keys), S3_DELETE_MAX):
        client = client or _s3()
        response = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
        errors = response.get("Errors") or []
        if errors:
            raise RuntimeError(f"S3 refused to delete {len(errors)} objects ({errors[0].get('Code')})")
        count += len(batch)
    return count


def _list_keys(prefix: str) -> Iterator[str]:
    paginator = _s3().get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=get_settings().media_bucket, Prefix=prefix):
        for obj in page.get("Contents") or []:
            yield obj["Key"]


def delete_workspace_objects(ws: str) -> int:
    """Every object a workspace owns: media, imports and exports under `<prefix>/<ws>/`."""
    keys = [k for prefix in ("media", "imports", "exports") for k in _list_keys(f"{prefix}/{ws}/")]
    return delete_objects(keys) if keys else 0


def delete_bulk_copies(ws: str) -> int:
    """The workspace's export files and the CSV files of finished imports: bulk copies that may hold an
    erased person's data. Files of imports still to run are kept (deleting them would break the import)."""
    unfinished = {
        job.s3_key
        for job in query_all(m.ImportJobModel, m.imports_index_pk(ws), index=m.ImportJobModel.gsi1)
        if job.s3_key and job.status not in ("completed", "failed")
    }
    keys = [k for prefix in ("exports", "imports") for k in _list_keys(f"{prefix}/{ws}/") if k not in unfinished]
    return delete_objects(keys) if keys else 0


def message_media_key(ws: str, message_id: str) -> str:
    return media_object_key(ws, message_id)
