"""Export of all contacts of a workspace as CSV or JSON: written to S3 page by page (memory stays
bounded: a spooled temporary file), handed out by a short-lived presigned URL, and recorded in the
security log ("contacts.exported")."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Literal

from relasify import clock
from relasify.data import files
from relasify.data.contacts import contact_repository
from relasify.data.ids import new_id
from relasify.data.records import Contact
from relasify.services import audit
from relasify.services.access import Membership

ExportFormat = Literal["csv", "json"]
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
# A spreadsheet evaluates cells starting with these as formulas (CSV injection, OWASP).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_SPOOL_BYTES = 8 * 1024 * 1024


def neutralise(cell: str) -> str:
    """Prefix an apostrophe to a cell a spreadsheet would read as a formula."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def contact_document(contact: Contact) -> dict[str, Any]:
    """The exported form of a contact (with its full consent history)."""
    return contact.model_dump(mode="json", exclude={"ws", "unreachable"})


def csv_row(contact: Contact) -> list[str]:
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


def export_contacts(caller: Membership, fmt: ExportFormat) -> tuple[int, str, datetime]:
    """Write every live contact to S3; returns (count, presigned URL, URL expiry)."""
    export_id = new_id()
    key = files.export_key(caller.ws, export_id, fmt)
    contacts = contact_repository().iter_contacts(caller.ws)
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
        text = io.TextIOWrapper(spool, encoding="utf-8", newline="", write_through=True)
        count = write_csv(contacts, text) if fmt == "csv" else write_json(contacts, text)
        text.flush()
        text.detach()  # the spool stays open for the upload
        spool.seek(0)
        content_type = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
        files.upload_file(key, spool, content_type)  # type: ignore[arg-type]
    url = files.presigned_get(key, f"contacts-{export_id}.{fmt}")
    expires_at = clock.now() + timedelta(seconds=files.DOWNLOAD_URL_SECONDS)
    audit.record(
        caller.ws,
        "contacts.exported",
        actor_id=caller.sub,
        target_ids=[export_id],
        details={"format": fmt, "count": count},
    )
    return count, url, expires_at
