"""The broadcast pipeline: the jobs that send one template to an audience, at the number's throughput
(SPEC section 5; the API side is services/broadcasts.py).

Pipeline (all jobs on the broadcast queue, each idempotent so SQS redelivery is harmless):
- `start`: waits for `scheduled_at` (SQS DelaySeconds, at most 15 min per hop, re-enqueued until
  due), then moves the broadcast to `running` and enqueues the first `expand`;
- `expand`: one page of the audience (tag partition Query, or one BatchGetItem of the given ids);
  each contact is claimed with a conditional put of its recipient item (the per-broadcast dedupe),
  skipped with a reason when it may not be messaged, or queued - the page's claims and their counts
  in one transaction; queued ids go out in `send` chunks, then the next page's `expand` is enqueued;
- `send`: a chunk of recipients; those that may not be messaged are skipped together (one
  transaction), the others sent concurrently behind the per-number rate limiter, each through
  `delivery.deliver` under an id derived from (broadcast, contact): a redelivered job finds the outbox
  item and does not send again. Meta's answer is recorded with the recipient's outcome and count in
  one transaction (`broadcast_recipients.record_sent`).
Counts are sharded counters; webhook statuses of broadcast messages feed them
(services/broadcast_progress.py).
Requests per message: docs/SENDING.md "Requests per broadcast message".
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from typing import Any

from relasify.data import broadcast_counters as counter_store
from relasify.data import broadcast_recipients as recipient_store
from relasify.data import broadcasts as store
from relasify.data import outbox, rate_limit
from relasify.data import templates as template_store
from relasify.data.broadcasts import Broadcast
from relasify.data.contacts import contact_repository
from relasify.data.records import Contact
from relasify.errors import SendRefused
from relasify.observability import logger
from relasify.services import delivery
from relasify.services.broadcasts import broadcast_job, delay_until

EXPAND_PAGE_SIZE = 100
EXPAND_BUDGET_SECONDS = 30.0  # of the worker's 120 s timeout; the rest of a batch still has room
SEND_CHUNK_SIZE = 25
SEND_CONCURRENCY = 25  # a chunk in one wave; the next chunk's messages queue behind it (run_jobs)
EXPANSION_DONE = store.EXPANSION_DONE
CANCELLED_REASON = "cancelled"
MEDIA_HEADER_TYPES = ("image", "video", "document")
CANCEL_CHECK_SECONDS = 1.0
# Of an invocation's remaining time, what is kept for messages that already have their token: the
# Graph client may retry one send up to 4 x 10 s. Past that point no job starts and no token is
# waited for; what is left goes back on the queue as fresh jobs.
INVOCATION_RESERVE_SECONDS = 45.0
TOKEN_WAIT_SECONDS = 60.0  # at most, for one message's token; then the message is deferred


def handle_job(job: dict[str, Any]) -> str:
    """Run one broadcast job (the worker's SQS record body). Returns what happened, for logs."""
    outcome = run_jobs([job])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def run_jobs(jobs: Sequence[str | dict[str, Any]], *, seconds_left: float | None = None) -> list[str | Exception]:
    """Run the jobs of one worker invocation (an SQS batch: JSON bodies or parsed jobs) in order;
    returns each job's outcome, or the exception that failed it (the others still ran).

    `seconds_left` is the invocation's remaining time: a job that cannot start, or a message that
    gets no token, before INVOCATION_RESERVE_SECONDS of it remain goes back on the queue as a fresh
    job (deferred, not failed: a slow number's broadcast must not exhaust its receive count, nor
    a batch run into the Lambda timeout and be retried whole).

    The send chunks of a batch share one pool of SEND_CONCURRENCY threads, and the next chunk is read
    and queued behind the current one while its messages are in flight: the threads go from one
    chunk's last message straight to the next chunk's first. Run one chunk after another instead and
    every chunk ends in a gap (its last sends recorded, the next chunk's reads and outbox writes)
    during which the container asks the limiter for nothing; containers sharing the rate progress in
    step and fall into those gaps together, so whole slots of the number's throughput went unused.
    """
    deadline = None if seconds_left is None else time.monotonic() + seconds_left - INVOCATION_RESERVE_SECONDS
    outcomes: list[str | Exception] = []
    in_flight: tuple[int, _Chunk] | None = None
    with ThreadPoolExecutor(max_workers=SEND_CONCURRENCY, thread_name_prefix="broadcast-send") as pool:
        for job in jobs:
            outcomes.append("pending")
            try:
                parsed = json.loads(job) if isinstance(job, str) else job
                if deadline is not None and time.monotonic() >= deadline:
                    store.enqueue_jobs([parsed])
                    outcomes[-1] = "deferred"
                    continue
                started = _start_job(parsed, pool, deadline)
            except Exception as exc:  # this job fails (SQS retries it); the batch's other jobs go on
                outcomes[-1] = exc
                continue
            if isinstance(started, str):
                outcomes[-1] = started
                continue
            if in_flight is not None:  # the next chunk is queued: now wait for the previous one
                outcomes[in_flight[0]] = in_flight[1].finish()
            in_flight = (len(outcomes) - 1, started)
        if in_flight is not None:
            outcomes[in_flight[0]] = in_flight[1].finish()
    return outcomes


def _start_job(job: dict[str, Any], pool: ThreadPoolExecutor, deadline: float | None) -> str | _Chunk:
    """Run a start or expand job; read a send job's chunk and queue its sends on `pool`."""
    ws, broadcast_id = str(job["ws"]), str(job["broadcast_id"])
    broadcast = store.get_broadcast(ws, broadcast_id, consistent=True)
    if broadcast is None:
        return "missing"
    kind = job.get("kind")
    if kind == "start":
        return _start(broadcast)
    if kind == "expand":
        return _expand(broadcast, job, deadline)
    if kind == "send":
        chunk = _prepare_chunk(broadcast, [str(c) for c in job.get("contact_ids", [])], deadline)
        if isinstance(chunk, _Chunk):
            chunk.submit(pool)
        return chunk
    raise ValueError(f"unknown broadcast job kind {kind!r}")


def _start(broadcast: Broadcast) -> str:
    if broadcast.status not in ("queued", "scheduled"):
        return broadcast.status  # cancelled, or a redelivered start of a running broadcast
    delay = delay_until(broadcast.scheduled_at)
    if delay > 0:
        store.enqueue_jobs([broadcast_job("start", broadcast)], delay_seconds=delay)
        return "waiting"
    if store.transition(broadcast.ws, broadcast.id, "running", allowed_from=("queued", "scheduled")):
        store.enqueue_jobs([broadcast_job("expand", broadcast, page=0, cursor=None)])
    return "started"


def _expand(broadcast: Broadcast, job: dict[str, Any], deadline: float | None = None) -> str:
    """Claim the audience page by page, enqueuing each page's send jobs at once, and go on to the next
    page in the same invocation for up to EXPAND_BUDGET_SECONDS. A page per invocation would put each
    next page behind the send jobs it just enqueued (a poller hands them to the same invocation), so
    only one container would ever be sending; here the whole audience is usually queued within
    seconds and every container the queue scales to shares the sends."""
    if broadcast.status != "running":
        return broadcast.status
    budget_end = time.monotonic() + EXPAND_BUDGET_SECONDS
    deadline = budget_end if deadline is None else min(deadline, budget_end)
    watch = _CancellationWatch(broadcast)
    expanded = 0
    current: dict[str, Any] | None = job
    while current is not None:
        contact_ids, next_job = _audience_page(broadcast, current)
        jobs = [
            broadcast_job("send", broadcast, contact_ids=chunk)
            for chunk in _chunked(_claim(broadcast, contact_ids, _page_key(current)), SEND_CHUNK_SIZE)
        ]
        expanded += len(contact_ids)
        if next_job is not None and time.monotonic() >= deadline:
            jobs.append(next_job)  # the rest in a fresh invocation
            store.enqueue_jobs(jobs)
            return f"expanded {expanded}, more to come"
        if jobs:
            store.enqueue_jobs(jobs)
        current = next_job
        if current is not None and watch.cancelled():
            return "cancelled"
    _mark_expanded(broadcast)
    _complete_if_done(broadcast.ws, broadcast.id)
    return f"expanded {expanded}"


def _claim(broadcast: Broadcast, contact_ids: list[str], page: str) -> list[str]:
    """Claim each contact once in this broadcast (one transaction per page); returns the ids to send
    to. A contact in two tags, or in a redelivered page, is claimed once."""
    claims = [recipient_store.Settlement(contact_id, "queued") for contact_id in dict.fromkeys(contact_ids)]
    claimed = recipient_store.claim_many(broadcast.ws, broadcast.id, claims, claimed_by=page)
    queued = [c.contact_id for c in claims if c.status == "queued" and claimed.get(c.contact_id)]
    claimed_before = [c.contact_id for c in claims if not claimed.get(c.contact_id)]
    if claimed_before:
        # A redelivered page (the first run died after claiming, before enqueuing its sends): the
        # recipients it claimed that are still queued go out again (the send job skips settled ones and
        # the outbox sends nothing twice). A contact another page claimed (two tags) is that page's.
        recipients = recipient_store.get_recipients(broadcast.ws, broadcast.id, claimed_before)
        queued += [
            cid
            for cid in claimed_before
            if (recipient := recipients.get(cid)) is not None
            and recipient.status == "queued"
            and recipient.claimed_by in (page, None)  # None: claimed before pages were recorded
        ]
    return queued


def _page_key(job: dict[str, Any]) -> str:
    """Which audience page an expand job claims (the same for its redeliveries)."""
    return f"{int(job.get('tag_index') or 0)}:{int(job.get('page') or 0)}"


def _audience_page(broadcast: Broadcast, job: dict[str, Any]) -> tuple[list[str], dict[str, Any] | None]:
    """One page of audience contact ids, from the broadcast itself or one tag-partition Query. The
    contacts are not read here: the send job reads them anyway and skips (with the reason) those that
    may not be messaged or are gone, so expansion costs one Query and one claim per page."""
    page_number = int(job.get("page") or 0)
    ids = broadcast.audience.get("contact_ids")
    if ids:
        start = page_number * EXPAND_PAGE_SIZE
        chunk = [str(cid) for cid in ids[start : start + EXPAND_PAGE_SIZE]]
        more = start + EXPAND_PAGE_SIZE < len(ids)
        return chunk, broadcast_job("expand", broadcast, page=page_number + 1, cursor=None) if more else None
    tags = list(broadcast.audience.get("tags") or [])
    tag_index = int(job.get("tag_index") or 0)
    if tag_index >= len(tags):
        return [], None
    page = contact_repository().tag_member_ids(
        broadcast.ws, tags[tag_index], limit=EXPAND_PAGE_SIZE, cursor=job.get("cursor")
    )
    if page.next_cursor:
        nxt = broadcast_job("expand", broadcast, page=page_number + 1, tag_index=tag_index, cursor=page.next_cursor)
    elif tag_index + 1 < len(tags):
        nxt = broadcast_job("expand", broadcast, page=page_number + 1, tag_index=tag_index + 1, cursor=None)
    else:
        nxt = None
    return list(page.items), nxt


def _skip_reason(contact: Contact, *, marketing: bool) -> str | None:
    refusal = delivery.contact_refusal(contact, marketing=marketing)
    if refusal is not None:
        return refusal.type_slug
    if not contact.wa_id and not contact.phone and not contact.user_id:
        return "no-phone"
    return None


def _mark_expanded(broadcast: Broadcast) -> None:
    from relasify.data import models as m

    model = m.BroadcastModel
    model(m.broadcast_pk(broadcast.ws, broadcast.id), model.SK_VALUE).update(
        actions=[model.cursor.set(EXPANSION_DONE), model.touch()]
    )


def _complete_if_done(ws: str, broadcast_id: str) -> None:
    broadcast = store.get_broadcast(ws, broadcast_id, consistent=True)
    if broadcast is None or broadcast.status != "running" or not broadcast.expanded:
        return
    if counter_store.counts(ws, broadcast_id).queued <= 0:
        store.transition(ws, broadcast_id, "completed", allowed_from=("running",))


def _chunked(values: list[str], size: int) -> list[list[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def template_components(broadcast: Broadcast, contact: Contact) -> list[dict[str, Any]] | None:
    """Header and body parameters for the contact (None when a needed value is missing and has no default)."""
    components: list[dict[str, Any]] = []
    header = broadcast.header
    if header is not None:
        if header.get("type") in MEDIA_HEADER_TYPES:
            media = {key: header[key] for key in ("id", "link", "filename") if header.get(key) is not None}
            parameter: dict[str, Any] = {"type": header["type"], header["type"]: media}
        else:
            text = _parameter_text(header, contact)
            if text is None:
                return None
            parameter = {"type": "text", "text": text}
        components.append({"type": "header", "parameters": [parameter]})
    values: list[dict[str, Any]] = []
    for spec in broadcast.parameters:
        text = _parameter_text(spec, contact)
        if text is None:
            return None
        values.append({"type": "text", "text": text})
    if values:
        components.append({"type": "body", "parameters": values})
    return components


def _parameter_text(spec: dict[str, Any], contact: Contact) -> str | None:
    if "text" in spec:
        value: Any = spec["text"]
    elif "field" in spec:
        value = getattr(contact, str(spec["field"]), None) or spec.get("default")
    else:
        value = contact.attributes.get(str(spec.get("attribute"))) or spec.get("default")
    return None if value is None or value == "" else str(value)


def _skip_all(broadcast: Broadcast, contact_ids: list[str], reason: str) -> None:
    skips = [recipient_store.Settlement(cid, "skipped", skip_reason=reason) for cid in contact_ids]
    if skips:
        recipient_store.settle_many(broadcast.ws, broadcast.id, skips)


class _CancellationWatch:
    """Whether the broadcast was cancelled, re-read at most once per interval (not once per message)."""

    def __init__(self, broadcast: Broadcast, interval_seconds: float = CANCEL_CHECK_SECONDS) -> None:
        self._broadcast = broadcast
        self._interval = interval_seconds
        self._checked = time.monotonic()
        self._cancelled = broadcast.status == "cancelled"
        self._lock = threading.Lock()

    def cancelled(self) -> bool:
        with self._lock:
            if not self._cancelled and time.monotonic() - self._checked >= self._interval:
                current = store.get_broadcast(self._broadcast.ws, self._broadcast.id, consistent=True)
                self._cancelled = current is None or current.status == "cancelled"
                self._checked = time.monotonic()
            return self._cancelled


def _prepare_chunk(broadcast: Broadcast, contact_ids: list[str], deadline: float | None = None) -> str | _Chunk:
    """A send job's recipients read and checked: a chunk ready to send, or why there is nothing to."""
    recipients = recipient_store.get_recipients(broadcast.ws, broadcast.id, contact_ids)
    # Settled recipients are skipped: a redelivered job sends nothing twice.
    queued = [cid for cid in dict.fromkeys(contact_ids) if getattr(recipients.get(cid), "status", None) == "queued"]
    if broadcast.status == "cancelled":
        _skip_all(broadcast, queued, CANCELLED_REASON)
        _complete_if_done(broadcast.ws, broadcast.id)
        return "cancelled"
    if broadcast.status != "running" or not queued:
        if broadcast.status == "running":  # the run that settled the last of them may have died before completing
            _complete_if_done(broadcast.ws, broadcast.id)
        return broadcast.status
    try:
        connection = delivery.connection_for_sending(broadcast.ws)
        template = template_store.get_template(broadcast.ws, broadcast.template_name, broadcast.language)
        if template is None or template.status != "APPROVED":
            raise delivery.refuse("template-not-approved", "template no longer approved")
    except SendRefused as refusal:
        _skip_all(broadcast, queued, refusal.type_slug)
        _complete_if_done(broadcast.ws, broadcast.id)
        return refusal.type_slug
    contacts = recipient_store.get_contacts(broadcast.ws, queued)
    # Opt-out withdraws consent to marketing, as on the messages API (and Meta's 131050); a template
    # of unknown category is treated as marketing.
    marketing = (template.category or "MARKETING").upper() == "MARKETING"
    # Who may not be messaged is known before any send: those are skipped together (one transaction).
    skips: list[recipient_store.Settlement] = []
    sends: list[tuple[Contact, dict[str, Any]]] = []
    for contact_id in queued:
        contact = contacts.get(contact_id)
        reason, content = _content_for(broadcast, contact, marketing=marketing)
        if contact is None or content is None:
            skips.append(recipient_store.Settlement(contact_id, "skipped", skip_reason=reason))
        else:
            sends.append((contact, content))
    if skips:
        recipient_store.settle_many(broadcast.ws, broadcast.id, skips)
    return _Chunk(broadcast, connection, sends, deadline)


class _Chunk:
    """A send job's messages in flight on the batch's thread pool."""

    def __init__(
        self,
        broadcast: Broadcast,
        connection: Any,
        sends: list[tuple[Contact, dict[str, Any]]],
        deadline: float | None = None,
    ) -> None:
        self.broadcast = broadcast
        self.connection = connection
        self.sends = sends
        self.deadline = deadline
        self.limiter = rate_limit.limiter_for(connection.phone_number_id, delivery.send_rate(connection))
        self.watch = _CancellationWatch(broadcast)
        self._announcement = ExitStack()
        self._futures: list[Future[Exception | str | None]] = []

    def submit(self, pool: ThreadPoolExecutor) -> None:
        # Announced, so the limiter claims tokens for the whole chunk rather than thread by thread.
        self._announcement.enter_context(self.limiter.expecting(len(self.sends)))
        graph = delivery.graph_client()
        self._futures = [pool.submit(self._one, graph, contact, content) for contact, content in self.sends]

    def _one(self, graph: Any, contact: Contact, content: dict[str, Any]) -> Exception | str | None:
        try:
            return _send_one(self.broadcast, self.connection, self._take_token, graph, self.watch, contact, content)
        except rate_limit.RateLimitTimeout:
            return "deferred"  # still queued: it goes out in a fresh job
        except Exception as exc:  # collected: the job fails (and is retried) after the others ran
            return exc

    def _take_token(self) -> None:
        wait = TOKEN_WAIT_SECONDS
        if self.deadline is not None:
            wait = min(wait, self.deadline - time.monotonic())
            if wait <= 0:
                raise rate_limit.RateLimitTimeout("the invocation is out of time")
        self.limiter.acquire(timeout_seconds=wait)

    def finish(self) -> str | Exception:
        """Wait for the chunk's messages; skip those a cancellation stopped; complete the broadcast when
        nothing is left queued. Returns the outcome, or the first transient failure (the job is retried)."""
        broadcast = self.broadcast
        try:
            # Every send first: a chunk that answered at its first dead send would leave the others settling
            # after its redelivery looked, and nobody would complete the broadcast.
            wait(self._futures)
            outcomes = [future.result() for future in self._futures]
        finally:
            self._announcement.close()
        try:
            contacts = [contact.id for contact, _ in self.sends]
            cancelled = [cid for cid, outcome in zip(contacts, outcomes, strict=True) if outcome == "cancelled"]
            deferred = [cid for cid, outcome in zip(contacts, outcomes, strict=True) if outcome == "deferred"]
            if cancelled:
                _skip_all(broadcast, cancelled, CANCELLED_REASON)
            if deferred:
                store.enqueue_jobs([broadcast_job("send", broadcast, contact_ids=deferred)])
            _complete_if_done(broadcast.ws, broadcast.id)
        except Exception as exc:
            return exc
        errors = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
        if errors:
            logger.warning("broadcast chunk had transient failures", extra={"failures": len(errors)})
            return errors[0]
        return f"sent {len(self.sends) - len(deferred)}" + (f", deferred {len(deferred)}" if deferred else "")


def _content_for(
    broadcast: Broadcast, contact: Contact | None, *, marketing: bool = True
) -> tuple[str | None, dict[str, Any] | None]:
    """(skip reason, None) when the contact is not to be messaged, else (None, the template content)."""
    if contact is None:
        return "contact-deleted", None
    reason = _skip_reason(contact, marketing=marketing)
    if reason is not None:
        return reason, None
    components = template_components(broadcast, contact)
    if components is None:
        return "missing-parameter", None
    content: dict[str, Any] = {"name": broadcast.template_name, "language": {"code": broadcast.language}}
    if components:
        content["components"] = components
    return None, content


def _send_one(
    broadcast: Broadcast,
    connection: Any,
    take_token: Callable[[], None],
    graph: Any,
    watch: _CancellationWatch,
    contact: Contact,
    content: dict[str, Any],
) -> str:
    """Send to one queued recipient; returns "cancelled" when the broadcast was cancelled first (the
    caller skips those together), else "sent" / "failed" once the recipient is settled."""
    if watch.cancelled():
        return "cancelled"
    ws, contact_id = broadcast.ws, contact.id
    outbound = delivery.Delivery(
        ws=ws,
        connection=connection,
        contact=contact,
        message_id=outbox.derived_message_id(ws, "broadcast", broadcast.id, contact_id),
        type="template",
        content=content,
        broadcast_id=broadcast.id,
        lease_seconds=outbox.BROADCAST_SEND_LEASE_SECONDS,
    )
    settled_with_wamid = False

    def record(message_id: str, wamid: str) -> bool:
        nonlocal settled_with_wamid
        settled_with_wamid = recipient_store.record_sent(ws, broadcast.id, contact_id, message_id, wamid)
        return settled_with_wamid

    try:
        message = delivery.deliver(
            outbound, graph=graph, before_graph_call=take_token, reread=False, record_sent=record
        )
    except SendRefused as refusal:
        if "message_id" not in refusal.extra or refusal.status >= 500 or refusal.status == 429:
            raise  # transient: the job is retried; the recipient stays queued
        recipient_store.settle_and_count(
            ws, broadcast.id, contact_id, "failed", message_id=refusal.extra["message_id"], queued=-1, failed=1
        )
        return "failed"
    if not settled_with_wamid:  # sent by an earlier run, or a condition sent the record the general way
        recipient_store.settle_and_count(ws, broadcast.id, contact_id, "sent", message_id=message.id, queued=-1, sent=1)
    return "sent"
