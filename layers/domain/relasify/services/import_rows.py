"""Reading a CSV import of contacts (SPEC section 4): the header's columns, and each record as a
validated row or the first problem found in it (services/imports.py runs the import).

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
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import IO, Any, Literal

from pydantic import ConfigDict, EmailStr, TypeAdapter, ValidationError

from relasify import clock
from relasify.data.imports import RowError
from relasify.data.records import ConsentEvent
from relasify.errors import ValidationFailed
from relasify.phones import normalize_phone
from relasify.schemas.common import UNSTORABLE_NUMBER, first_unstorable_number
from relasify.schemas.contacts import (
    ATTRIBUTE_KEY_PATTERN,
    MAX_ATTRIBUTE_STRING,
    MAX_ATTRIBUTES,
    MAX_EMAIL,
    MAX_NAME,
    Attributes,
    check_tags,
)
from relasify.services.csv_cells import restore
from relasify.services.exports import CSV_COLUMNS

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


def numbered_records(reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    """Data records with their row number (the header is row 1); blank lines are not rows."""
    for number, cells in enumerate(reader, start=2):
        if any(c.strip() for c in cells):
            yield number, cells


def open_csv(text: IO[str]) -> tuple[Iterator[list[str]], list[str]]:
    first = text.readline()
    delimiter = max((",", ";", "\t"), key=first.count) if first else ","
    reader = csv.reader(itertools.chain([first], text), delimiter=delimiter)
    header = next(reader, [])
    return reader, header


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
