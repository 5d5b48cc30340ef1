"""Erasure in the dead-letter queues (SPEC section 8; docs/PRIVACY.md).

A message that failed 5 times waits in its queue's DLQ (14 days) for an operator's redrive. Those of
the webhook DLQ hold a whole delivery (the sender's phone, profile name, message text), inline (v1,
or a v2 message SQS moved itself) or in the `raw-webhooks/` object they point to (the processor's
parked last tries); media jobs name a message of the conversation; broadcast send jobs list contact
ids. Erasure reads every DLQ message (`relasify.data.dead_letters`) and:

- deletes the messages that name only the erased person (and their raw payload object);
- rewrites those that name others too: the delivery without the person's messages, statuses,
  contacts and other events (or the send job without the contact) goes back to the DLQ as a new
  message, and the old one with its raw object is deleted, so other people's failed events are not
  lost with the person's;
- releases all others at once, untouched.

A message is taken to name the person when it holds one of their WhatsApp ids (wa_id, the phone's
digits, the business-scoped user id), a wamid of their conversation, the contact id, or the id of one
of their messages. A rewritten copy that still holds one is deleted instead. Messages held by someone
else during the erasure (an operator's redrive in progress) are not seen: the erasure tombstones make
the webhook processor drop them (`relasify.data.tombstones`), the media worker drops jobs of messages
that no longer exist, and broadcasts skip contacts that no longer exist.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relasify import clock
from relasify.data import dead_letters, webhook_inbox
from relasify.observability import logger
from relasify.settings import get_settings

# Fields of webhook events that name a person (sender, recipient, the event's own wamid).
_PERSON_FIELDS = ("from", "wa_id", "recipient_id", "user_id", "from_user_id", "recipient_user_id", "id")


@dataclass(frozen=True, slots=True)
class ErasedPerson:
    ws: str
    contact_id: str
    whatsapp_ids: frozenset[str]  # wa_id, the phone's digits, the business-scoped user id
    wamids: frozenset[str]
    message_ids: frozenset[str]

    def needles(self) -> frozenset[str]:
        return self.whatsapp_ids | self.wamids | self.message_ids | {self.contact_id}

    def named_in(self, text: str) -> bool:
        return any(needle in text for needle in self.needles())


@dataclass(slots=True)
class PurgeCounts:
    deleted: int = 0
    rewritten: int = 0
    kept: int = 0


# A verdict on one message: None (keep), "" (delete), or a new body (rewrite).
Verdict = str | None


def purge(person: ErasedPerson) -> PurgeCounts:
    """Remove the person from every dead-letter queue. Returns counts (no personal data)."""
    settings = get_settings()
    queues: list[tuple[str, Callable[[ErasedPerson, str], Verdict]]] = [
        (settings.webhook_dlq_url, _webhook_verdict),
        (settings.media_dlq_url, _job_verdict),
        (settings.broadcast_dlq_url, _broadcast_verdict),
        (settings.import_dlq_url, _job_verdict),
    ]
    counts = PurgeCounts()
    for queue_url, verdict_of in queues:
        if not queue_url or not dead_letters.holds_messages(queue_url):
            continue
        keep: list[dead_letters.DeadLetter] = []
        drop: list[dead_letters.DeadLetter] = []
        raw_objects: list[tuple[str, str]] = []
        try:
            for letter in dead_letters.hold_all(queue_url):
                verdict = verdict_of(person, letter.body)
                if verdict is None:
                    keep.append(letter)
                    continue
                if verdict:
                    dead_letters.put(queue_url, verdict)  # the copy first: a crash leaves both, never neither
                    counts.rewritten += 1
                else:
                    counts.deleted += 1
                drop.append(letter)
                if verdict_of is _webhook_verdict and (location := webhook_inbox.raw_location(letter.body)):
                    raw_objects.append(location)
            dead_letters.delete(drop)
        finally:
            dead_letters.release(keep)
        counts.kept += len(keep)
        not_deleted = webhook_inbox.discard_raw_objects(raw_objects)
        if not_deleted:
            raise RuntimeError(f"{len(not_deleted)} raw payloads of erased dead letters could not be deleted")
    if counts.deleted or counts.rewritten:
        logger.info(
            "dead letters purged",
            extra={"ws": person.ws, "deleted": counts.deleted, "rewritten": counts.rewritten, "kept": counts.kept},
        )
    return counts


# --- verdicts -------------------------------------------------------------------------------------------


def _job_verdict(person: ErasedPerson, body: str) -> Verdict:
    """Media and import jobs name one message or none: a job naming the person goes."""
    return "" if person.named_in(body) else None


def _broadcast_verdict(person: ErasedPerson, body: str) -> Verdict:
    """A send job lists contact ids: the job goes back without the contact (or goes, if it was the only one)."""
    if not person.named_in(body):
        return None
    try:
        job = json.loads(body)
    except ValueError:
        return ""
    ids = job.get("contact_ids") if isinstance(job, dict) else None
    if job.get("ws") != person.ws or not isinstance(ids, list):
        return ""
    rest = [cid for cid in ids if cid != person.contact_id]
    if not rest:
        return ""
    rewritten = json.dumps({**job, "contact_ids": rest}, separators=(",", ":"))
    return None if rewritten == body else _unless_named(person, rewritten)


def _webhook_verdict(person: ErasedPerson, body: str) -> Verdict:
    """A delivery: read inline or from its raw object; rewrite it without the person's events."""
    queued = webhook_inbox.read_queued_if_present(body)
    if queued is None:  # the raw object is gone (lifecycle, an earlier erasure): judge the message alone
        return "" if person.named_in(body) else None
    raw = queued.raw
    text = raw.decode("utf-8", errors="replace")
    if not person.named_in(text) and not person.named_in(body):
        return None
    try:
        payload = json.loads(raw)
    except ValueError:
        return ""
    remaining = _without_person(payload, person)
    if remaining is None:
        return ""
    rewritten = json.dumps(remaining, ensure_ascii=False).encode("utf-8")
    if person.named_in(rewritten.decode("utf-8")):
        return ""  # named somewhere we do not model: the whole delivery goes
    # A pointer, as the processor parks a delivery: the copy keeps its 90-day window beyond the DLQ's 14 days.
    reference = webhook_inbox.store_raw(rewritten, clock.now(), get_settings().media_bucket)
    return webhook_inbox.pointer_message(reference)


def _without_person(payload: Any, person: ErasedPerson) -> dict[str, Any] | None:
    """The delivery without the person's events, or None when nothing of anyone else is left."""
    if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
        return None
    events_left = 0
    entries = []
    for entry in payload["entry"]:
        changes = []
        for change in (entry or {}).get("changes") or []:
            value = dict((change or {}).get("value") or {})
            for field, items in list(value.items()):
                if isinstance(items, list) and items and all(isinstance(i, dict) for i in items):
                    kept = [i for i in items if not _names(i, person)]
                    value[field] = kept
                    if field != "contacts":
                        events_left += len(kept)
            changes.append({**change, "value": {k: v for k, v in value.items() if v != []}})
        entries.append({**entry, "changes": changes})
    return {**payload, "entry": entries} if events_left else None


def _names(event: dict[str, Any], person: ErasedPerson) -> bool:
    ids = person.whatsapp_ids | person.wamids
    return any(str(event.get(field)) in ids for field in _PERSON_FIELDS if event.get(field) is not None)


def _unless_named(person: ErasedPerson, body: str) -> Verdict:
    return "" if person.named_in(body) else body
