"""Contact routes (SPEC section 4): CRUD, list/search, consent, CSV import and export. Agents read,
create, correct and record consent; deleting, bulk export and imports are admin+ (SPEC section 3)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import ValidationError
from relasify.data.exports import ExportJob
from relasify.data.imports import ImportJob
from relasify.data.memberships import Role
from relasify.data.records import Contact
from relasify.errors import ValidationFailed
from relasify.schemas.contacts import (
    MAX_PAGE,
    ConsentIn,
    ContactCreate,
    ContactOut,
    ContactPage,
    ContactPatch,
    ExportOut,
    ImportCreate,
    ImportOut,
)
from relasify.services import contacts, exports, imports
from relasify.web.auth import current_membership, workspace_route
from relasify.web.problems import validation_errors
from relasify.web.resolver import loads_storable_json

router = APIGatewayHttpRouter()

ContactId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
ImportId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
ExportId = ImportId
TAGS = ["contacts"]


def _out(contact: Contact) -> ContactOut:
    return ContactOut.model_validate(contact, from_attributes=True)


def _import_out(job: ImportJob, upload_url: str | None = None, upload_expires_at: object = None) -> ImportOut:
    return ImportOut(
        id=job.id,
        status=job.status,
        total=job.total,
        processed=job.processed,
        created=job.counts.created,
        updated=job.counts.updated,
        skipped=job.counts.skipped,
        failed=job.counts.failed,
        errors=[e.model_dump() for e in job.errors],  # type: ignore[misc]
        errors_truncated=job.errors_truncated,
        upload_url=upload_url,
        upload_expires_at=upload_expires_at,  # type: ignore[arg-type]
        created_at=job.created_at,
        finished_at=job.finished_at,
        failure_reason=job.failure_reason,
    )


def _json(status: int, model: ContactOut | ImportOut) -> Response[Any]:
    return Response(status_code=status, content_type="application/json", body=model.model_dump(mode="json"))


# Static paths first: `export` and `imports` must not be taken for a contact id.
@workspace_route(
    router,
    "GET",
    "/v1/workspaces/<ws>/contacts/export",
    Role.ADMIN,
    success=202,
    tags=TAGS,
    description="Export all contacts (with consent history) as CSV or JSON -> 202 with the export job; poll "
    "GET .../contacts/exports/{export_id} (the Location header) until `status` is `completed`, then download `url` "
    "(presigned, valid for 5 minutes; the file lives 1 day). CSV cells are safe in spreadsheets whatever the "
    "separator they split on: an apostrophe goes before = + - @ tab CR ' or \" at a cell's start and after "
    "any , ; tab or line break inside it (the import removes exactly these, so an export imports back as the "
    "same contacts). Security-logged.",
)
def export_contacts(ws: str, format: Annotated[Literal["csv", "json"], Query()] = "csv") -> Response[ExportOut]:
    job = exports.request_export(current_membership(router), format)
    body = _export_out(job, None, None).model_dump(mode="json")
    location = f"/v1/workspaces/{ws}/contacts/exports/{job.id}"
    return Response(status_code=202, content_type="application/json", body=body, headers={"Location": location})


@workspace_route(
    router,
    "GET",
    "/v1/workspaces/<ws>/contacts/exports/<export_id>",
    Role.ADMIN,
    tags=TAGS,
    description="An export job: status (queued, running, completed, failed), the number of contacts, and once "
    "completed a fresh presigned download URL (each one handed out is security-logged).",
)
def get_export(ws: str, export_id: ExportId) -> ExportOut:
    return _export_out(*exports.get_export(current_membership(router), export_id))


def _export_out(job: ExportJob, url: str | None, url_expires_at: datetime | None) -> ExportOut:
    return ExportOut(
        id=job.id,
        format=job.format,
        status=job.status,
        count=job.count,
        url=url,
        expires_at=url_expires_at,
        created_at=job.created_at,
        finished_at=job.finished_at,
        failure_reason=job.failure_reason,
    )


@workspace_route(
    router,
    "POST",
    "/v1/workspaces/<ws>/contacts/imports",
    Role.ADMIN,
    success=202,
    # The body is read here (CSV or JSON), not by a model: malformed JSON is a 400, past the inline limit a 413.
    statuses=(400, 413),
    tags=TAGS,
    description=(
        "Import contacts from a CSV file (up to 100,000 rows) -> 202 with the import. Small files "
        f"(up to {imports.MAX_INLINE_BYTES} bytes): send the file as the body with Content-Type text/csv; "
        'the import starts at once. Larger files (up to 50 MB): send JSON {"filename"}, PUT the file to '
        "`upload_url` with Content-Type text/csv, then POST .../imports/{id}/start. Columns: phone (required), "
        "name, email, tags (; or | separated), opt_in (yes/no), opt_in_source, opt_in_at; any other column is "
        "an attribute. A file of our CSV export imports back as the same contacts (its `attributes` column is "
        "read as JSON; the columns the system sets, like id and created_at, are ignored)."
    ),
)
def create_import(ws: str) -> Response[ImportOut]:
    event = router.current_event
    content_type = (event.headers.get("content-type") or "").split(";")[0].strip().lower()
    caller = current_membership(router)
    if content_type in ("text/csv", "text/plain", "application/csv"):
        job = imports.create_inline(caller, (event.decoded_body or "").encode("utf-8"))
        return _json(202, _import_out(job))
    try:
        # The resolver's body parser: malformed JSON and unstorable numbers are refused as on every route.
        body = ImportCreate.model_validate(loads_storable_json(event.decoded_body or ""))
    except ValidationError as exc:
        errors = [dict(e, loc=("body", *e["loc"])) for e in exc.errors(include_url=False, include_input=False)]
        raise ValidationFailed("One or more fields are invalid", errors=validation_errors(errors)) from None
    job, url, expires_at = imports.create_upload(caller, body.filename)
    return _json(202, _import_out(job, url, expires_at))


# 409: the file has not been uploaded yet; 413: the uploaded file is past the limit.
@workspace_route(
    router,
    "POST",
    "/v1/workspaces/<ws>/contacts/imports/<import_id>/start",
    Role.ADMIN,
    success=202,
    statuses=(409, 413),
    tags=TAGS,
)
def start_import(ws: str, import_id: ImportId) -> Response[ImportOut]:
    job = imports.start_upload(current_membership(router), import_id)
    return _json(202, _import_out(job))


@workspace_route(
    router,
    "GET",
    "/v1/workspaces/<ws>/contacts/imports/<import_id>",
    Role.ADMIN,
    tags=TAGS,
    description="Status, progress (processed of total), counts and the first 1000 row errors.",
)
def get_import(ws: str, import_id: ImportId) -> ImportOut:
    return _import_out(imports.get_import(ws, import_id))


@workspace_route(
    router,
    "POST",
    "/v1/workspaces/<ws>/contacts",
    Role.AGENT,
    success=201,
    statuses=(409,),
    tags=TAGS,
    description="Create a contact (201). One contact per phone: a duplicate is 409 with `existing_contact_id`; "
    "an invalid phone is 422 with the reason.",
)
def create_contact(ws: str, body: ContactCreate) -> Response[ContactOut]:
    return _json(201, _out(contacts.create_contact(current_membership(router), body)))


@workspace_route(
    router,
    "GET",
    "/v1/workspaces/<ws>/contacts",
    Role.AGENT,
    statuses=(400,),
    tags=TAGS,
    description="Contacts in creation order, or with a `tag`, or matching `q` (combinable with `tag`): a prefix "
    "of any word of the name or e-mail (case- and accent-insensitive; several words must all match), or phone "
    "digits in any Indonesian form (0812..., 62812..., +62812...). A search page may hold fewer than `limit` "
    "items while `next_cursor` is set.",
)
def list_contacts(
    ws: str,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
    tag: Annotated[str | None, Query(min_length=1, max_length=50)] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> ContactPage:
    page = contacts.list_contacts(ws, limit=limit, cursor=cursor, tag=tag, q=q)
    return ContactPage(items=[_out(c) for c in page.items], next_cursor=page.next_cursor)


@workspace_route(router, "GET", "/v1/workspaces/<ws>/contacts/<contact_id>", Role.AGENT, tags=TAGS)
def get_contact(ws: str, contact_id: ContactId) -> ContactOut:
    return _out(contacts.get_contact(ws, contact_id))


# 409: the new phone or e-mail belongs to another contact, or the contact changed concurrently.
@workspace_route(router, "PATCH", "/v1/workspaces/<ws>/contacts/<contact_id>", Role.AGENT, statuses=(409,), tags=TAGS)
def update_contact(ws: str, contact_id: ContactId, body: ContactPatch) -> ContactOut:
    return _out(contacts.update_contact(current_membership(router), contact_id, body))


@workspace_route(router, "DELETE", "/v1/workspaces/<ws>/contacts/<contact_id>", Role.ADMIN, success=204, tags=TAGS)
def delete_contact(ws: str, contact_id: ContactId) -> Response[None]:
    contacts.delete_contact(current_membership(router), contact_id)
    return Response(status_code=204)


@workspace_route(
    router,
    "POST",
    "/v1/workspaces/<ws>/contacts/<contact_id>/consent",
    Role.AGENT,
    tags=TAGS,
    description="Opt-in (needs `source`; `at` defaults to now) or opt-out. Appends to the consent history; "
    "an opted-out contact gets no marketing or broadcast messages.",
)
def set_consent(ws: str, contact_id: ContactId, body: ConsentIn) -> ContactOut:
    return _out(contacts.set_consent(current_membership(router), contact_id, body))
