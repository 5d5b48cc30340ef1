"""Import jobs and the import queue (the contact writes of a batch: relasify/data/import_contacts.py).

The job item (`WS#<ws>#IMPORT#<id>` / `META`) is the checkpoint. A batch of rows is applied in
three steps, so a worker that dies anywhere and is re-run counts every row exactly once:

1. `begin_batch`: the batch's outcome counts and row errors are stored on the job as `pending`
   (conditional: nothing pending and `processed` is where this worker expects it);
2. the contact writes (`import_contacts.write_contacts`): creates claim the phone marker with a
   condition, then tag items and contacts go out in batches; updates are conditional on the
   `updated_at` that was read. Every write is an idempotent merge (re-applying a row changes
   nothing), so replaying a batch is harmless;
3. `commit_batch`: `processed` moves past the batch and the counts are added, in one conditional
   update that also removes `pending`.

A re-run finds `pending` and replays its rows (writes converge) and commits the stored counts:
no duplicate contact, no double count.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from pydantic import Field
from pynamodb.attributes import BooleanAttribute, MapAttribute, UnicodeAttribute
from pynamodb.constants import NONE

from relasify import clock
from relasify.data import aws_clients
from relasify.data import models as m
from relasify.data.records import Record
from relasify.data.tx import is_condition_failure
from relasify.errors import Conflict
from relasify.settings import get_settings

ImportStatus = Literal["awaiting_upload", "queued", "running", "completed", "failed"]
MAX_ERRORS = m.ImportJobModel.MAX_ERRORS


class JobStateConflict(Conflict):
    """The job is not in the state this worker expected (another worker moved it on)."""


class ImportJobItem(m.ImportJobModel):
    """The import job model with the worker's bookkeeping (additive attributes)."""

    filename = UnicodeAttribute(null=True)
    source = UnicodeAttribute(null=True)  # inline | upload
    counted = BooleanAttribute(default=False)  # `total` is known
    pending = MapAttribute(null=True)  # the batch being applied: {start, end, created, ..., errors}
    errors_truncated = BooleanAttribute(default=False)
    failure_reason = UnicodeAttribute(null=True)


class RowError(Record):
    row: int
    column: str | None = None
    reason: str


class Counts(Record):
    created: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0


class PendingBatch(Record):
    start: int  # `processed` before the batch
    end: int  # `processed` after it
    counts: Counts
    errors: list[RowError] = Field(default_factory=list)


class ImportJob(Record):
    id: str
    ws: str
    status: ImportStatus
    s3_key: str | None = None
    filename: str | None = None
    source: str | None = None
    total: int | None = None
    processed: int = 0
    counts: Counts = Field(default_factory=Counts)
    errors: list[RowError] = Field(default_factory=list)
    errors_truncated: bool = False
    pending: PendingBatch | None = None
    failure_reason: str | None = None
    created_by: str | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None


# ---------------------------------------------------------------------------------------------
# jobs


def _key(ws: str, import_id: str) -> tuple[str, str]:
    return m.import_pk(ws, import_id), m.ImportJobModel.SK_VALUE


def _errors(raw: Iterable[Any]) -> list[RowError]:
    return [RowError.model_validate(e.as_dict() if isinstance(e, MapAttribute) else e) for e in raw or []]


def _job(item: ImportJobItem) -> ImportJob:
    pending = None
    if item.pending is not None:
        raw = item.pending.as_dict()
        pending = PendingBatch(
            start=int(raw["start"]),
            end=int(raw["end"]),
            counts=Counts(**{k: int(raw.get(k, 0)) for k in ("created", "updated", "skipped", "failed")}),
            errors=_errors(raw.get("errors") or []),
        )
    return ImportJob(
        id=item.import_id,
        ws=item.ws_id,
        status=item.status,  # type: ignore[arg-type]
        s3_key=item.s3_key,
        filename=item.filename,
        source=item.source,
        total=int(item.total) if item.counted else None,
        processed=int(item.processed or 0),
        counts=Counts(
            created=int(item.created or 0),
            updated=int(item.updated or 0),
            skipped=int(item.skipped or 0),
            failed=int(item.failed or 0),
        ),
        errors=_errors(item.errors),
        errors_truncated=bool(item.errors_truncated),
        pending=pending,
        failure_reason=item.failure_reason,
        created_by=item.created_by,
        created_at=item.created_at,
        finished_at=item.finished_at,
    )


def create_job(
    ws: str, import_id: str, *, status: ImportStatus, s3_key: str, filename: str | None, source: str, created_by: str
) -> ImportJob:
    item = ImportJobItem(
        *_key(ws, import_id),
        ws_id=ws,
        import_id=import_id,
        status=status,
        s3_key=s3_key,
        filename=filename,
        source=source,
        created_by=created_by,
    )
    # Listed under the workspace so that closing it reaches every job (the sweep's closure stamp).
    item.gsi1pk = m.imports_index_pk(ws)
    item.gsi1sk = f"{clock.now().strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{import_id}"
    item.save(condition=ImportJobItem.pk.does_not_exist())
    return _job(item)


def get_job(ws: str, import_id: str, *, consistent: bool = False) -> ImportJob | None:
    item = ImportJobItem.get_live(*_key(ws, import_id), consistent_read=consistent)
    return _job(item) if item else None


def update_quietly(
    key: tuple[str, str], actions: list[Any], condition: Any, error: type[Exception], return_values: str = NONE
) -> dict[str, Any]:
    """UpdateItem without returning the item (the job holds up to 1000 errors; contacts their
    history): the hot paths of the worker need no echo. `ALL_OLD` when the caller needs the old item."""
    try:
        return dict(
            m.ContactModel._get_connection().update_item(
                *key, actions=actions, condition=condition, return_values=return_values
            )
            or {}
        )
    except Exception as exc:
        if is_condition_failure(exc):
            raise error("The item is not in the expected state.") from exc
        raise


def _update(ws: str, import_id: str, actions: list[Any], condition: Any) -> ImportJob:
    item = ImportJobItem(*_key(ws, import_id))
    try:
        item.update(actions=[*actions, ImportJobItem.touch()], condition=ImportJobItem.pk.exists() & condition)
    except Exception as exc:
        if is_condition_failure(exc):
            raise JobStateConflict("The import job is not in the expected state.") from exc
        raise
    return _job(item)


def mark_queued(ws: str, import_id: str) -> ImportJob:
    """awaiting_upload -> queued (the file is in place)."""
    return _update(ws, import_id, [ImportJobItem.status.set("queued")], ImportJobItem.status == "awaiting_upload")


def start_running(ws: str, import_id: str, total: int) -> ImportJob:
    """queued -> running with the counted number of data rows."""
    return _update(
        ws,
        import_id,
        [ImportJobItem.status.set("running"), ImportJobItem.total.set(total), ImportJobItem.counted.set(True)],
        ImportJobItem.status.is_in("queued", "running"),
    )


def finish(ws: str, import_id: str, status: Literal["completed", "failed"], reason: str | None = None) -> ImportJob:
    from relasify import clock

    actions = [ImportJobItem.status.set(status), ImportJobItem.finished_at.set(clock.now())]
    if reason is not None:
        actions.append(ImportJobItem.failure_reason.set(reason))
    return _update(ws, import_id, actions, ImportJobItem.pending.does_not_exist())


def _pending_map(batch: PendingBatch) -> dict[str, Any]:
    return {
        "start": batch.start,
        "end": batch.end,
        **batch.counts.model_dump(),
        "errors": [e.model_dump(exclude_none=True) for e in batch.errors],
    }


def begin_batch(ws: str, import_id: str, batch: PendingBatch) -> None:
    """Record the batch about to be written (its counts are final from here on)."""
    update_quietly(
        _key(ws, import_id),
        [ImportJobItem.pending.set(_pending_map(batch)), ImportJobItem.touch()],
        ImportJobItem.pk.exists() & ImportJobItem.pending.does_not_exist() & (ImportJobItem.processed == batch.start),
        JobStateConflict,
    )


def commit_batch(ws: str, import_id: str, batch: PendingBatch, *, kept_errors: int) -> int:
    """Move `processed` past the batch and add its counts; `kept_errors` is how many errors the job
    holds already (the list is bounded at MAX_ERRORS). Returns how many it holds now."""
    room = max(0, MAX_ERRORS - kept_errors)
    new_errors = [e.model_dump(exclude_none=True) for e in batch.errors[:room]]
    actions = [
        ImportJobItem.processed.set(batch.end),
        ImportJobItem.created.add(batch.counts.created),
        ImportJobItem.updated.add(batch.counts.updated),
        ImportJobItem.skipped.add(batch.counts.skipped),
        ImportJobItem.failed.add(batch.counts.failed),
        ImportJobItem.pending.remove(),
    ]
    if new_errors:
        actions.append(ImportJobItem.errors.set(ImportJobItem.errors.append(new_errors)))
    if len(batch.errors) > room:
        actions.append(ImportJobItem.errors_truncated.set(True))
    update_quietly(
        _key(ws, import_id),
        [*actions, ImportJobItem.touch()],
        ImportJobItem.pk.exists()
        & (ImportJobItem.processed == batch.start)
        & (ImportJobItem.pending["start"] == batch.start),
        JobStateConflict,
    )
    return kept_errors + len(new_errors)


def add_job_errors(ws: str, import_id: str, errors: list[RowError]) -> None:
    """File-level findings (e.g. an unusable column name), recorded before any row."""
    if errors:
        _update(
            ws,
            import_id,
            [
                ImportJobItem.errors.set(
                    ImportJobItem.errors.append([e.model_dump(exclude_none=True) for e in errors[:MAX_ERRORS]])
                )
            ],
            ImportJobItem.processed == 0,
        )


# ---------------------------------------------------------------------------------------------
# the queue


@lru_cache(maxsize=4)
def queue_client(queue_url: str) -> Any:
    return aws_clients.session().client("sqs")


def enqueue(ws: str, import_id: str) -> None:
    """Ask the import worker to (continue to) process a job."""
    url = get_settings().import_queue_url
    queue_client(url).send_message(QueueUrl=url, MessageBody=json.dumps({"ws": ws, "import_id": import_id}))
