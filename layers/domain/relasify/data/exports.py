"""Export jobs: the item that tracks an asynchronous contacts export, and the queue message that
asks the contacts job worker to run it (the import queue: one worker, one queue for both jobs)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal

from pynamodb.exceptions import UpdateError

from relasify import clock
from relasify.data import models as m
from relasify.data.imports import queue_client
from relasify.data.records import Record
from relasify.data.tx import is_condition_failure
from relasify.errors import Conflict
from relasify.settings import get_settings

ExportStatus = Literal["queued", "running", "completed", "failed"]
ExportFormat = Literal["csv", "json"]
JOB_KIND = "export"


class ExportJob(Record):
    id: str
    ws: str
    format: ExportFormat
    status: ExportStatus
    count: int = 0
    s3_key: str
    created_by: str | None = None
    attempts: int = 0
    created_at: datetime | None = None
    finished_at: datetime | None = None
    failure_reason: str | None = None


def _key(ws: str, export_id: str) -> tuple[str, str]:
    return m.export_pk(ws, export_id), m.ExportJobModel.SK_VALUE


def _job(item: m.ExportJobModel) -> ExportJob:
    return ExportJob(
        id=item.export_id,
        ws=item.ws_id,
        format=item.format,  # type: ignore[arg-type]
        status=item.status,  # type: ignore[arg-type]
        count=int(item.count or 0),
        s3_key=item.s3_key,
        created_by=item.created_by,
        attempts=int(item.attempts or 0),
        created_at=item.created_at,
        finished_at=item.finished_at,
        failure_reason=item.failure_reason,
    )


def create_job(ws: str, export_id: str, *, fmt: ExportFormat, s3_key: str, created_by: str) -> ExportJob:
    item = m.ExportJobModel(
        *_key(ws, export_id),
        ws_id=ws,
        export_id=export_id,
        format=fmt,
        s3_key=s3_key,
        created_by=created_by,
    )
    # The job lives as long as its file: the bucket expires `exports/` after a day.
    item.expires_at = clock.epoch() + m.ExportJobModel.LIFETIME_SECONDS
    item.save(condition=m.ExportJobModel.pk.does_not_exist())
    return _job(item)


def get_job(ws: str, export_id: str, *, consistent: bool = False) -> ExportJob | None:
    item = m.ExportJobModel.get_live(*_key(ws, export_id), consistent_read=consistent)
    return _job(item) if item else None


def start_attempt(ws: str, export_id: str) -> ExportJob | None:
    """Mark the job running (again, after a crash: the file is rewritten whole under the same key).
    None when the job is gone or already finished, so a redelivered message does nothing."""
    model = m.ExportJobModel
    item = model(*_key(ws, export_id))
    try:
        item.update(
            actions=[model.status.set("running"), model.attempts.add(1)],
            condition=model.pk.exists() & model.status.is_in("queued", "running"),
        )
    except UpdateError as exc:  # only a refused condition means "nothing to do"
        if is_condition_failure(exc):
            return None
        raise
    return _job(item)


def finish(
    ws: str, export_id: str, status: Literal["completed", "failed"], *, count: int = 0, reason: str | None = None
) -> None:
    model = m.ExportJobModel
    actions = [model.status.set(status), model.count.set(count), model.finished_at.set(clock.now())]
    if reason is not None:
        actions.append(model.failure_reason.set(reason))
    try:
        model(*_key(ws, export_id)).update(actions=actions, condition=model.status == "running")
    except UpdateError as exc:
        if is_condition_failure(exc):
            raise Conflict("the export is not running") from exc
        raise


def enqueue(ws: str, export_id: str) -> None:
    """Ask the contacts job worker to run an export."""
    url = get_settings().import_queue_url
    body = json.dumps({"kind": JOB_KIND, "ws": ws, "export_id": export_id})
    queue_client(url).send_message(QueueUrl=url, MessageBody=body)
