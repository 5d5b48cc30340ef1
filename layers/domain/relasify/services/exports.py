"""Export of all contacts of a workspace as CSV or JSON, as an asynchronous job: the API queues it
(a large workspace takes longer than API Gateway's 29 s), the contacts job worker writes the file to
S3 page by page (memory stays bounded: a spooled temporary file), and the job hands the file out by
a short-lived presigned URL. The finished export and every URL handed out are recorded in the
security log ("contacts.exported", "contacts.export_downloaded")."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from relasify import clock
from relasify.data import exports as store
from relasify.data import files
from relasify.data.contacts import contact_repository
from relasify.data.exports import ExportFormat, ExportJob
from relasify.data.ids import new_id
from relasify.data.memberships import Membership
from relasify.data.records import Contact
from relasify.errors import NotFound
from relasify.services import audit
from relasify.services.csv_cells import neutralise

# A job whose worker died this many times is failed rather than retried forever (its queue has a DLQ too).
MAX_ATTEMPTS = 3
FILE_GONE = "the file is gone (a contact was erased since, or it expired): request a new export"
CSV_COLUMNS = (
    "id",
    "phone",
    "wa_id",
    "user_id",
    "name",
    "email",
    "tags",
    "attributes",
    "consent_status",
    "consent_source",
    "consent_at",
    "consent_history",
    "restricted",
    "last_inbound_at",
    "created_at",
    "updated_at",
)
_SPOOL_BYTES = 8 * 1024 * 1024


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def contact_document(contact: Contact) -> dict[str, Any]:
    """The exported form of a contact (with its full consent history)."""
    return contact.model_dump(mode="json", exclude={"ws", "unreachable"})


def csv_row(contact: Contact) -> list[str]:
    """A contact's cells, each neutralised for spreadsheets read with any separator (`csv_cells`); the
    import restores them, so an export imports back to the same contacts."""
    consent = contact.consent
    cells = [
        contact.id,
        contact.phone or "",
        contact.wa_id or "",
        contact.user_id or "",
        contact.name or "",
        contact.email or "",
        ";".join(contact.tags),
        json.dumps(contact.attributes, ensure_ascii=False, sort_keys=True) if contact.attributes else "",
        consent.status,
        consent.source or "",
        _iso(consent.at),
        json.dumps([e.model_dump(mode="json") for e in consent.history], ensure_ascii=False) if consent.history else "",
        "true" if contact.restricted else "false",
        _iso(contact.last_inbound_at),
        _iso(contact.created_at),
        _iso(contact.updated_at),
    ]
    return [neutralise(c) for c in cells]


def write_csv(contacts: Iterable[Contact], out: io.TextIOBase) -> int:
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for contact in contacts:
        writer.writerow(csv_row(contact))
        count += 1
    return count


def write_json(contacts: Iterable[Contact], out: io.TextIOBase) -> int:
    """A JSON array, written one contact at a time."""
    out.write("[")
    count = 0
    for contact in contacts:
        out.write(",\n" if count else "\n")
        out.write(json.dumps(contact_document(contact), ensure_ascii=False))
        count += 1
    out.write("\n]\n")
    return count


def request_export(caller: Membership, fmt: ExportFormat) -> ExportJob:
    """Queue an export of every live contact of the caller's workspace."""
    export_id = new_id()
    job = store.create_job(
        caller.ws, export_id, fmt=fmt, s3_key=files.export_key(caller.ws, export_id, fmt), created_by=caller.sub
    )
    store.enqueue(caller.ws, export_id)
    return job


def run_export(ws: str, export_id: str) -> str:
    """Write the export file; safe to run again (a crashed attempt's file is rewritten whole, under the
    same key, so the job ends with one complete file)."""
    job = store.start_attempt(ws, export_id)
    if job is None:
        return "nothing to do"
    if job.attempts > MAX_ATTEMPTS:
        store.finish(ws, export_id, "failed", reason="the export failed repeatedly; request a new one")
        return "failed"
    contacts = contact_repository().iter_contacts(ws)
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
        text = io.TextIOWrapper(spool, encoding="utf-8", newline="", write_through=True)
        count = write_csv(contacts, text) if job.format == "csv" else write_json(contacts, text)
        text.flush()
        text.detach()  # the spool stays open for the upload
        spool.seek(0)
        content_type = "text/csv; charset=utf-8" if job.format == "csv" else "application/json"
        files.upload_file(job.s3_key, spool, content_type)  # type: ignore[arg-type]
    store.finish(ws, export_id, "completed", count=count)
    audit.record(
        ws,
        "contacts.exported",
        actor_id=job.created_by,
        target_ids=[export_id],
        details={"format": job.format, "count": count},
    )
    return "completed"


def get_export(caller: Membership, export_id: str) -> tuple[ExportJob, str | None, datetime | None]:
    """The job, and for a finished one a fresh presigned URL (each hand-out is security-logged)."""
    job = store.get_job(caller.ws, export_id, consistent=True)
    if job is None:
        raise NotFound("export not found")
    if job.status != "completed":
        return job, None, None
    if files.object_size(job.s3_key) is None:
        # Removed by an erasure (the file held the erased person) or by the bucket's 1-day lifecycle.
        gone = job.model_copy(update={"status": "failed", "failure_reason": FILE_GONE})
        return gone, None, None
    url = files.presigned_get(job.s3_key, f"contacts-{export_id}.{job.format}")
    audit.record(caller.ws, "contacts.export_downloaded", actor_id=caller.sub, target_ids=[export_id])
    return job, url, clock.now() + timedelta(seconds=files.DOWNLOAD_URL_SECONDS)
