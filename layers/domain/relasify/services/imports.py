"""CSV import of contacts (SPEC section 4): job creation for the API, and the worker's run.

Columns (header names are case-insensitive; spaces and dashes count as underscores):
- phone (required): `phone`, `phone_number`, `mobile`, `whatsapp`, `wa`, `no_hp`, `nomor_hp`, `telepon`
- `name` / `nama`, `email`, `tags` (separated by `;` or `|`)
- consent: `opt_in` (yes/no, true/false, 1/0, ya/tidak), `opt_in_source` (default `import`),
  `opt_in_at` (ISO 8601; without an offset it is read as WIB, UTC+7; default: the import's time)
- every other column is an attribute (its normalised name must match the attribute key pattern)
- a file with every column of our CSV export (`exports.CSV_COLUMNS`) is read back as one: its
  `attributes` column is the JSON object of the attributes, `consent_status` is the opt-in, and the
  columns the system sets (id, wa_id, created_at, ...) are ignored
- every cell is read through `csv_cells.restore`, which removes the apostrophe the export puts before
  what a spreadsheet would run as a formula (`'+6281...` is the phone `+6281...`, `'-Budi-` the
  name `-Budi-`), so an export imports back to the same contacts

Rows are matched to contacts by phone: a new phone creates a contact ("created"), a known phone is
merged into its contact ("updated", or "skipped" when the row changes nothing). A merge sets the
name and email when given, adds tags, sets attributes, and applies an opt-out; an opt-in from a file
only applies to a contact whose consent is unknown (a file never overrides a recorded opt-out).
Duplicates within the file are handled the same way (the first creates, later ones merge), so no
per-file state grows with the file. Bad rows are "failed" with their row number, column and reason.

The worker streams the file from S3 (memory does not grow with it) and applies it in batches with a
checkpoint protocol that makes a re-run exact (see `relasify.data.imports`).
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import IO, Any, Literal

from pydantic import ConfigDict, EmailStr, TypeAdapter, ValidationError

from relasify import clock
from relasify.data import files
from relasify.data import imports as store
from relasify.data.ids import new_id
from relasify.data.imports import (
    ContactMerge,
    Counts,
    ImportJob,
    JobStateConflict,
    NewImportedContact,
    PendingBatch,
    RowError,
)
from relasify.data.memberships import Membership
from relasify.data.records import ConsentEvent, Contact
from relasify.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from relasify.observability import logger
from relasify.phones import normalize_phone
from relasify.schemas.common import UNSTORABLE_NUMBER, first_unstorable_number
from relasify.schemas.contacts import (
    ATTRIBUTE_KEY_PATTERN,
    MAX_ATTRIBUTE_STRING,
    MAX_ATTRIBUTES,
    MAX_EMAIL,
    MAX_NAME,
    MAX_TAGS,
    Attributes,
    check_tags,
)
from relasify.services import audit
from relasify.services.csv_cells import restore
from relasify.services.exports import CSV_COLUMNS

MAX_ROWS = 100_000
MAX_INLINE_BYTES = 256 * 1024  # the API's request body bound; larger files go through S3
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
BATCH_ROWS = 250
_WIB = timezone(timedelta(hours=7))
_KEY = re.compile(ATTRIBUTE_KEY_PATTERN)
_NON_WORD = re.compile(r"[^a-z0-9]+")
_TAG_SPLIT = re.compile(r"[;|]")
# Built on first use: email-validator (and dnspython) load only when a row carries an email (cold start).
_EMAIL = TypeAdapter(EmailStr, config=ConfigDict(defer_build=True))
_ATTRIBUTES = TypeAdapter(Attributes, config=ConfigDict(defer_build=True))

PHONE_COLUMNS = ("phone", "phone_number", "mobile", "whatsapp", "wa", "no_hp", "nomor_hp", "telepon")
NAME_COLUMNS = ("name", "nama", "full_name")
EMAIL_COLUMNS = ("email", "e_mail")
TAGS_COLUMNS = ("tags", "tag", "labels")
OPT_IN_COLUMNS = ("opt_in", "optin", "opted_in", "consent", "whatsapp_opt_in", "consent_status")
OPT_IN_SOURCE_COLUMNS = ("opt_in_source", "consent_source")
OPT_IN_AT_COLUMNS = ("opt_in_at", "consent_at")
_YES = frozenset({"yes", "y", "true", "1", "ya", "opted_in", "opt_in", "in"})
_NO = frozenset({"no", "n", "false", "0", "tidak", "opted_out", "opt_out", "out"})
_NO_CONSENT_GIVEN = frozenset({"unknown"})  # an export's contact without a recorded consent
# Columns of our export that the system sets: ignored when an export is imported back.
EXPORT_SYSTEM_COLUMNS = frozenset(
    {"id", "wa_id", "user_id", "consent_history", "restricted", "last_inbound_at", "created_at", "updated_at"}
)
ATTRIBUTES_JSON_COLUMN = "attributes"


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
# columns and rows


def column_key(header: str) -> str:
    return _NON_WORD.sub("_", header.strip().lower()).strip("_")


@dataclass
class Columns:
    phone: int | None = None
    name: int | None = None
    email: int | None = None
    tags: int | None = None
    opt_in: int | None = None
    opt_in_source: int | None = None
    opt_in_at: int | None = None
    attributes_json: int | None = None  # an export's `attributes` column
    attributes: list[tuple[int, str]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def map_columns(header: list[str]) -> Columns:
    columns = Columns()
    roles = (
        ("phone", PHONE_COLUMNS),
        ("name", NAME_COLUMNS),
        ("email", EMAIL_COLUMNS),
        ("tags", TAGS_COLUMNS),
        ("opt_in", OPT_IN_COLUMNS),
        ("opt_in_source", OPT_IN_SOURCE_COLUMNS),
        ("opt_in_at", OPT_IN_AT_COLUMNS),
    )
    seen: set[str] = set()
    is_export = set(CSV_COLUMNS) <= {column_key(restore(raw)) for raw in header}
    for index, cell in enumerate(header):
        raw = restore(cell)
        key = column_key(raw)
        label = raw.strip()[:60] or f"column {index + 1}"
        if not key:
            continue  # an unnamed column (e.g. a trailing separator) carries nothing
        if key in seen:
            columns.errors.append(RowError(row=1, column=label, reason="duplicate column; ignored"))
            continue
        seen.add(key)
        if is_export and key in EXPORT_SYSTEM_COLUMNS:
            continue
        if is_export and key == ATTRIBUTES_JSON_COLUMN:
            columns.attributes_json = index
            continue
        role = next((name for name, names in roles if key in names), None)
        if role is not None and getattr(columns, role) is None:
            setattr(columns, role, index)
        elif not _KEY.match(key):
            columns.errors.append(
                RowError(row=1, column=label, reason=f"not a valid attribute name ({ATTRIBUTE_KEY_PATTERN}); ignored")
            )
        elif len(columns.attributes) >= MAX_ATTRIBUTES:
            columns.errors.append(
                RowError(row=1, column=label, reason=f"more than {MAX_ATTRIBUTES} attributes; ignored")
            )
        else:
            columns.attributes.append((index, key))
    return columns


@dataclass(frozen=True)
class ParsedRow:
    row: int
    phone: str
    name: str | None
    email: str | None
    tags: tuple[str, ...]
    attributes: dict[str, Any]
    consent: ConsentEvent | None


def _cell(cells: list[str], index: int | None) -> str:
    if index is None or index >= len(cells):
        return ""
    return restore(cells[index]).strip()


def _json_attributes(raw: str) -> dict[str, Any]:
    """An export's `attributes` cell: a JSON object validated like the API's `attributes`."""
    try:
        value = json.loads(raw)
    except ValueError:
        raise ValueError("not a JSON object of attributes") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object of attributes")
    if first_unstorable_number(value) is not None:
        raise ValueError(UNSTORABLE_NUMBER)
    try:
        return dict(_ATTRIBUTES.validate_python(value))
    except ValidationError as exc:
        raise ValueError(f"not valid attributes: {exc.errors()[0]['msg']}") from None


def parse_row(row: int, cells: list[str], columns: Columns, default_at: datetime) -> ParsedRow | RowError:
    """One CSV record -> a validated row, or the first problem found (row, column, reason)."""
    raw_phone = _cell(cells, columns.phone)
    if not raw_phone:
        return RowError(row=row, column="phone", reason="Phone number is empty")
    try:
        phone = normalize_phone(raw_phone)
    except ValidationFailed as exc:
        return RowError(row=row, column="phone", reason=exc.detail)
    name = _cell(cells, columns.name) or None
    if name is not None and len(name) > MAX_NAME:
        return RowError(row=row, column="name", reason=f"longer than {MAX_NAME} characters")
    email = _cell(cells, columns.email) or None
    if email is not None:
        try:
            email = str(_EMAIL.validate_python(email)) if len(email) <= MAX_EMAIL else None
        except ValidationError:
            return RowError(row=row, column="email", reason="not a valid e-mail address")
        if email is None:
            return RowError(row=row, column="email", reason=f"longer than {MAX_EMAIL} characters")
    tags: tuple[str, ...] = ()
    raw_tags = _cell(cells, columns.tags)
    if raw_tags:
        try:
            tags = tuple(check_tags([t.strip() for t in _TAG_SPLIT.split(raw_tags) if t.strip()]))
        except ValueError as exc:
            return RowError(row=row, column="tags", reason=str(exc))
    attributes: dict[str, Any] = {}
    raw_attributes = _cell(cells, columns.attributes_json)
    if raw_attributes:
        try:
            attributes = _json_attributes(raw_attributes)
        except ValueError as exc:
            return RowError(row=row, column=ATTRIBUTES_JSON_COLUMN, reason=str(exc))
    for index, key in columns.attributes:
        value = _cell(cells, index)
        if not value:
            continue
        if len(value) > MAX_ATTRIBUTE_STRING:
            return RowError(row=row, column=key, reason=f"longer than {MAX_ATTRIBUTE_STRING} characters")
        attributes[key] = value
    consent: ConsentEvent | None = None
    raw_opt_in = _cell(cells, columns.opt_in).lower()
    if raw_opt_in and raw_opt_in not in _NO_CONSENT_GIVEN:
        if raw_opt_in in _YES:
            status: Literal["opted_in", "opted_out"] = "opted_in"
        elif raw_opt_in in _NO:
            status = "opted_out"
        else:
            return RowError(row=row, column="opt_in", reason="expected yes or no")
        source = column_key(_cell(cells, columns.opt_in_source)) or "import"
        if not re.fullmatch(r"[a-z][a-z0-9_]{1,39}", source):
            return RowError(row=row, column="opt_in_source", reason="a source is a short word like form or event")
        at = default_at
        raw_at = _cell(cells, columns.opt_in_at)
        if raw_at:
            try:
                at = datetime.fromisoformat(raw_at)
            except ValueError:
                return RowError(row=row, column="opt_in_at", reason="not an ISO 8601 date/time")
            if at.tzinfo is None:
                at = at.replace(tzinfo=_WIB)
            if at > clock.now() + timedelta(minutes=5):
                return RowError(row=row, column="opt_in_at", reason="lies in the future")
        consent = ConsentEvent(status=status, source=source, at=at, note="csv import")
    return ParsedRow(row, phone, name, email, tags, attributes, consent)


# ---------------------------------------------------------------------------------------------
# planning a batch


@dataclass
class Draft:
    """A contact as it will be after the rows of this batch (merged in file order)."""

    contact_id: str
    phone: str
    is_new: bool
    expected_updated_at: datetime | None
    name: str | None
    email: str | None
    tags: list[str]
    attributes: dict[str, Any]
    consent_status: str
    added_tags: list[str] = field(default_factory=list)
    name_changed: bool = False
    email_changed: bool = False
    attributes_changed: bool = False
    consent: ConsentEvent | None = None  # the event this batch appends

    @classmethod
    def of(cls, contact: Contact) -> Draft:
        return cls(
            contact_id=contact.id,
            phone=contact.phone or "",
            is_new=False,
            expected_updated_at=contact.updated_at,
            name=contact.name,
            email=contact.email,
            tags=list(contact.tags),
            attributes=dict(contact.attributes),
            consent_status=contact.consent.status,
        )

    @property
    def changed(self) -> bool:
        return (
            self.name_changed
            or self.email_changed
            or bool(self.added_tags)
            or self.attributes_changed
            or (self.consent is not None)
        )


def merge(draft: Draft, row: ParsedRow) -> bool | RowError:
    """Apply a row to a draft; whether it changed anything, or why it cannot be applied."""
    new_tags = [t for t in row.tags if t not in draft.tags]
    if len(draft.tags) + len(new_tags) > MAX_TAGS:
        return RowError(row=row.row, column="tags", reason=f"the contact would have more than {MAX_TAGS} tags")
    attribute_changes = {k: v for k, v in row.attributes.items() if draft.attributes.get(k) != v}
    if len(set(draft.attributes) | set(attribute_changes)) > MAX_ATTRIBUTES:
        return RowError(
            row=row.row, column=None, reason=f"the contact would have more than {MAX_ATTRIBUTES} attributes"
        )
    changed = False
    if row.name is not None and row.name != draft.name:
        draft.name, draft.name_changed, changed = row.name, True, True
    if row.email is not None and row.email != draft.email:
        draft.email, draft.email_changed, changed = row.email, True, True
    if new_tags:
        draft.tags += new_tags
        draft.added_tags += new_tags
        changed = True
    if attribute_changes:
        draft.attributes.update(attribute_changes)
        draft.attributes_changed, changed = True, True
    if row.consent is not None:
        opt_out = row.consent.status == "opted_out" and draft.consent_status != "opted_out"
        opt_in = row.consent.status == "opted_in" and draft.consent_status == "unknown"
        if opt_out or opt_in:
            draft.consent = row.consent
            draft.consent_status = row.consent.status
            changed = True
    return changed


Outcome = Literal["created", "updated", "skipped", "failed"]


def plan(
    rows: list[ParsedRow | RowError], existing: dict[str, Contact], orphans: dict[str, str] | None = None
) -> tuple[dict[str, Draft], dict[int, Outcome], list[RowError]]:
    """Drafts by phone, each row's outcome, and the row errors, merging rows in file order.
    `orphans` are phones claimed by an earlier, interrupted run: their contact is created under the
    claimed id."""
    orphans = orphans or {}
    drafts: dict[str, Draft] = {}
    outcomes: dict[int, Outcome] = {}
    errors: list[RowError] = []
    for row in rows:
        if isinstance(row, RowError):
            outcomes[row.row] = "failed"
            errors.append(row)
            continue
        draft = drafts.get(row.phone)
        if draft is None and row.phone in existing:
            draft = drafts[row.phone] = Draft.of(existing[row.phone])
        if draft is None:
            draft = Draft(orphans.get(row.phone) or new_id(), row.phone, True, None, None, None, [], {}, "unknown")
            result = merge(draft, row)
            if isinstance(result, RowError):
                outcomes[row.row] = "failed"
                errors.append(result)
                continue
            drafts[row.phone] = draft
            outcomes[row.row] = "created"
            continue
        result = merge(draft, row)
        if isinstance(result, RowError):
            outcomes[row.row] = "failed"
            errors.append(result)
        else:
            outcomes[row.row] = "updated" if result else "skipped"
    return drafts, outcomes, errors


def _writes(drafts: dict[str, Draft]) -> tuple[list[NewImportedContact], list[ContactMerge]]:
    creates: list[NewImportedContact] = []
    merges: list[ContactMerge] = []
    for d in drafts.values():
        if d.is_new:
            creates.append(
                NewImportedContact(
                    contact_id=d.contact_id,
                    phone=d.phone,
                    name=d.name,
                    email=d.email,
                    tags=d.tags,
                    attributes=d.attributes,
                    consent=d.consent,
                )
            )
        elif d.changed:
            merges.append(
                ContactMerge(
                    contact_id=d.contact_id,
                    phone=d.phone,
                    expected_updated_at=d.expected_updated_at,
                    name=d.name if d.name_changed else None,
                    email=d.email if d.email_changed else None,
                    tags=d.tags if d.added_tags else None,
                    added_tags=d.added_tags,
                    attributes=d.attributes if d.attributes_changed else None,
                    consent=d.consent,
                )
            )
    return creates, merges


def _tally(outcomes: dict[int, Outcome]) -> Counts:
    values = list(outcomes.values())
    return Counts(
        created=values.count("created"),
        updated=values.count("updated"),
        skipped=values.count("skipped"),
        failed=values.count("failed"),
    )


# ---------------------------------------------------------------------------------------------
# the worker


Fault = Callable[[str], None]  # test hook: called at "begun", "step_written" (after each write step), "written"


def _records(reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    """Data records with their row number (the header is row 1); blank lines are not rows."""
    for number, cells in enumerate(reader, start=2):
        if any(c.strip() for c in cells):
            yield number, cells


def _open_csv(text: IO[str]) -> tuple[Iterator[list[str]], list[str]]:
    first = text.readline()
    delimiter = max((",", ";", "\t"), key=first.count) if first else ","
    reader = csv.reader(itertools.chain([first], text), delimiter=delimiter)
    header = next(reader, [])
    return reader, header


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
        existing, orphans = store.existing_by_phone(self.ws, (r.phone for r in rows if isinstance(r, ParsedRow)))
        return plan(rows, existing, orphans)

    def write(
        self, rows: list[ParsedRow | RowError], drafts: dict[str, Draft], outcomes: dict[int, Outcome]
    ) -> dict[int, Outcome]:
        """Write a planned batch; a write refused by a concurrent change is re-read and re-planned.
        Returns the rows' final outcomes."""
        outcomes = dict(outcomes)
        creates, merges = _writes(drafts)
        refused = store.write_contacts(self.ws, creates, merges, after_step=lambda: self.hit("step_written"))
        for _ in range(3):
            if not refused:
                return outcomes
            retry_rows: list[ParsedRow | RowError] = [
                r for r in rows if isinstance(r, ParsedRow) and r.phone in refused
            ]
            drafts, retry_outcomes, _ = self.plan(retry_rows)
            outcomes.update(retry_outcomes)
            creates, merges = _writes(drafts)
            refused = store.write_contacts(self.ws, creates, merges)
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
        reader, header = _open_csv(text)
        columns = map_columns(header)
        if columns.phone is None:
            raise ImportFailed("The file has no phone column (phone, phone_number, mobile, whatsapp, no_hp).")
        total = 0
        try:
            for _ in _records(reader):
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
        reader, header = _open_csv(text)
        columns = map_columns(header)
        records = _records(reader)
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
                    start=processed, end=processed + len(batch), counts=_tally(outcomes), errors=errors
                )
                store.begin_batch(ws, job.id, pending)
                run.hit("begun")
                final = run.write(rows, drafts, outcomes)
                run.hit("written")
                if final != outcomes:  # a concurrent change moved some rows (e.g. created elsewhere meanwhile)
                    pending = pending.model_copy(update={"counts": _tally(final)})
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
