"""CSV import of contacts (SPEC section 4): job creation for the API, and the worker's run. Reading
the file's columns and rows is services/import_rows.py; merging a batch of rows into the contacts
they create or change is services/import_plan.py.

The worker streams the file from S3 (memory does not grow with it) and applies it in batches with a
checkpoint protocol that makes a re-run exact (see `relasify.data.imports`).
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from relasify import clock
from relasify.data import files, import_contacts
from relasify.data import imports as store
from relasify.data.ids import new_id
from relasify.data.imports import ImportJob, JobStateConflict, PendingBatch, RowError
from relasify.data.memberships import Membership
from relasify.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from relasify.observability import logger
from relasify.services import audit
from relasify.services.import_plan import Draft, Outcome, contact_writes, plan, tally
from relasify.services.import_rows import ParsedRow, map_columns, numbered_records, open_csv, parse_row

MAX_ROWS = 100_000
MAX_INLINE_BYTES = 256 * 1024  # the API's request body bound; larger files go through S3
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
BATCH_ROWS = 250

# ---------------------------------------------------------------------------------------------
# API side


def create_inline(caller: Membership, csv_bytes: bytes) -> ImportJob:
    """A small file sent in the request body: stored in S3 and queued at once."""
    if not csv_bytes.strip():
        raise ValidationFailed(
            "The CSV file is empty.",
            errors=[{"location": "body", "in": "body", "message": "empty file", "type": "missing"}],
        )
    if len(csv_bytes) > MAX_INLINE_BYTES:
        raise PayloadTooLarge(f"Inline CSV is limited to {MAX_INLINE_BYTES} bytes; ask for an upload URL instead.")
    import_id = new_id()
    key = files.import_key(caller.ws, import_id)
    files.put_bytes(key, csv_bytes, "text/csv")
    job = store.create_job(
        caller.ws, import_id, status="queued", s3_key=key, filename=None, source="inline", created_by=caller.sub
    )
    store.enqueue(caller.ws, import_id)
    audit.record(caller.ws, "contacts.import_started", actor_id=caller.sub, target_ids=[import_id])
    return job


def create_upload(caller: Membership, filename: str) -> tuple[ImportJob, str, datetime]:
    """A large file: the job waits for the upload; returns the presigned PUT URL and its expiry."""
    import_id = new_id()
    key = files.import_key(caller.ws, import_id)
    job = store.create_job(
        caller.ws,
        import_id,
        status="awaiting_upload",
        s3_key=key,
        filename=filename,
        source="upload",
        created_by=caller.sub,
    )
    url = files.presigned_put(key, "text/csv")
    return job, url, clock.now() + timedelta(seconds=files.UPLOAD_URL_SECONDS)


def start_upload(caller: Membership, import_id: str) -> ImportJob:
    """The upload is done: check it and queue the job (repeating the call is harmless)."""
    job = get_import(caller.ws, import_id)
    if job.status != "awaiting_upload":
        return job
    size = files.object_size(job.s3_key or "")
    if size is None:
        raise Conflict("The file has not been uploaded yet.")
    if size > MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(f"Import files are limited to {MAX_UPLOAD_BYTES} bytes.")
    try:
        job = store.mark_queued(caller.ws, import_id)
    except Conflict:
        return get_import(caller.ws, import_id)
    store.enqueue(caller.ws, import_id)
    audit.record(caller.ws, "contacts.import_started", actor_id=caller.sub, target_ids=[import_id])
    return job


def get_import(ws: str, import_id: str) -> ImportJob:
    job = store.get_job(ws, import_id)
    if job is None:
        raise NotFound("Import not found.")
    return job


# ---------------------------------------------------------------------------------------------
# the worker


Fault = Callable[[str], None]  # test hook: called at "begun", "step_written" (after each write step), "written"


class ImportFailed(Exception):
    """The file cannot be imported at all (the job is marked failed with this reason)."""


@dataclass
class _Run:
    ws: str
    job: ImportJob
    fault: Fault | None

    def hit(self, point: str) -> None:
        if self.fault is not None:
            self.fault(point)

    def plan(self, rows: list[ParsedRow | RowError]) -> tuple[dict[str, Draft], dict[int, Outcome], list[RowError]]:
        existing, orphans = import_contacts.existing_by_phone(
            self.ws, (r.phone for r in rows if isinstance(r, ParsedRow))
        )
        return plan(rows, existing, orphans)

    def write(
        self, rows: list[ParsedRow | RowError], drafts: dict[str, Draft], outcomes: dict[int, Outcome]
    ) -> dict[int, Outcome]:
        """Write a planned batch; a write refused by a concurrent change is re-read and re-planned.
        Returns the rows' final outcomes."""
        outcomes = dict(outcomes)
        creates, merges = contact_writes(drafts)
        refused = import_contacts.write_contacts(self.ws, creates, merges, after_step=lambda: self.hit("step_written"))
        for _ in range(3):
            if not refused:
                return outcomes
            retry_rows: list[ParsedRow | RowError] = [
                r for r in rows if isinstance(r, ParsedRow) and r.phone in refused
            ]
            drafts, retry_outcomes, _ = self.plan(retry_rows)
            outcomes.update(retry_outcomes)
            creates, merges = contact_writes(drafts)
            refused = import_contacts.write_contacts(self.ws, creates, merges)
        raise RuntimeError("contacts kept changing concurrently; the batch is retried from its checkpoint")


def run_import(
    ws: str, import_id: str, *, should_stop: Callable[[], bool] = lambda: False, fault: Fault | None = None
) -> Literal["done", "continue"]:
    """Process a job from its checkpoint until the file ends ("done") or `should_stop` says the time
    budget is spent ("continue": enqueue the job again). Safe to run again after a crash."""
    job = store.get_job(ws, import_id, consistent=True)
    if job is None or job.status not in ("queued", "running") or not job.s3_key:
        return "done"
    try:
        if job.total is None:
            job = _count(ws, job)
        return _process(_Run(ws, job, fault), should_stop)
    except ImportFailed as exc:
        store.finish(ws, import_id, "failed", str(exc))
        logger.info("import failed", extra={"import_id": import_id, "reason": str(exc)})
        return "done"


def _count(ws: str, job: ImportJob) -> ImportJob:
    """First pass: check the header and count the data rows (bounded by MAX_ROWS)."""
    assert job.s3_key is not None
    size = files.object_size(job.s3_key)
    if size is None:
        raise ImportFailed("The import file is missing.")
    if size > MAX_UPLOAD_BYTES:
        raise ImportFailed(f"The file is larger than {MAX_UPLOAD_BYTES} bytes.")
    with files.open_text(job.s3_key) as text:
        reader, header = open_csv(text)
        columns = map_columns(header)
        if columns.phone is None:
            raise ImportFailed("The file has no phone column (phone, phone_number, mobile, whatsapp, no_hp).")
        total = 0
        try:
            for _ in numbered_records(reader):
                total += 1
                if total > MAX_ROWS:
                    raise ImportFailed(f"The file has more than {MAX_ROWS} rows.")
        except csv.Error as exc:
            raise ImportFailed(f"The file is not valid CSV near row {total + 2}.") from exc
    if job.processed == 0 and not job.errors:
        store.add_job_errors(ws, job.id, columns.errors)
    return store.start_running(ws, job.id, total)


def _process(run: _Run, should_stop: Callable[[], bool]) -> Literal["done", "continue"]:
    ws, job = run.ws, run.job
    assert job.s3_key is not None
    default_at = job.created_at or clock.now()
    processed, kept_errors = job.processed, len(job.errors)
    with files.open_text(job.s3_key) as text:
        reader, header = open_csv(text)
        columns = map_columns(header)
        records = numbered_records(reader)
        try:
            for _ in itertools.islice(records, processed):
                pass
            if job.pending is not None:
                # A previous run stopped between recording a batch and committing it: replay its rows
                # (the writes converge) and commit the counts it recorded.
                batch = list(itertools.islice(records, job.pending.end - job.pending.start))
                rows = [parse_row(n, cells, columns, default_at) for n, cells in batch]
                run.write(rows, *run.plan(rows)[:2])
                run.hit("written")
                kept_errors = store.commit_batch(ws, job.id, job.pending, kept_errors=kept_errors)
                processed = job.pending.end
            while True:
                if should_stop():
                    return "continue"
                batch = list(itertools.islice(records, BATCH_ROWS))
                if not batch:
                    store.finish(ws, job.id, "completed")
                    return "done"
                rows = [parse_row(n, cells, columns, default_at) for n, cells in batch]
                drafts, outcomes, errors = run.plan(rows)
                pending = PendingBatch(
                    start=processed, end=processed + len(batch), counts=tally(outcomes), errors=errors
                )
                store.begin_batch(ws, job.id, pending)
                run.hit("begun")
                final = run.write(rows, drafts, outcomes)
                run.hit("written")
                if final != outcomes:  # a concurrent change moved some rows (e.g. created elsewhere meanwhile)
                    pending = pending.model_copy(update={"counts": tally(final)})
                kept_errors = store.commit_batch(ws, job.id, pending, kept_errors=kept_errors)
                processed = pending.end
        except csv.Error as exc:
            raise ImportFailed(f"The file is not valid CSV after row {processed + 1}.") from exc
        except JobStateConflict:
            # Another worker holds this job (a duplicate delivery); it finishes the work.
            logger.info("import job taken over", extra={"import_id": job.id})
            return "done"


# Stop taking new batches when less than this is left of the invocation (a batch takes seconds).
TIME_MARGIN_MS = 120_000


def handle_queue_message(body: str, remaining_ms: Callable[[], int]) -> Literal["done", "continue"]:
    """One ImportQueue message: an export (written whole), or an import: run it until done or the
    time budget is spent, then hand the rest to a fresh invocation by enqueueing the job again
    (Lambda's 15-minute limit)."""
    message = json.loads(body)
    if message.get("kind") == "export":  # the queue also carries contacts exports (one worker for both jobs)
        from relasify.services import exports

        outcome_of_export = exports.run_export(str(message["ws"]), str(message["export_id"]))
        logger.info("export step", extra={"export_id": message["export_id"], "outcome": outcome_of_export})
        return "done"
    ws, import_id = str(message["ws"]), str(message["import_id"])
    outcome = run_import(ws, import_id, should_stop=lambda: remaining_ms() < TIME_MARGIN_MS)
    if outcome == "continue":
        store.enqueue(ws, import_id)
    logger.info("import step", extra={"import_id": import_id, "outcome": outcome})
    return outcome
