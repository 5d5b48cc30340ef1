"""Pure rules of the contacts code: CSV column mapping, row validation, merge semantics, formula
neutralisation and phone-prefix search terms."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from relasify.data.imports import RowError
from relasify.data.records import Consent, Contact
from relasify.services.contacts import phone_prefix
from relasify.services.csv_cells import neutralise
from relasify.services.exports import csv_row
from relasify.services.import_plan import Draft, merge, plan
from relasify.services.import_rows import ParsedRow, map_columns, parse_row

AT = datetime(2026, 1, 1, tzinfo=UTC)


def test_columns_are_mapped_by_normalised_header() -> None:
    columns = map_columns(["No HP", "Nama", "E-mail", "Tags", "Opt-In", "Kota Asal", "1st", "kota asal", ""])
    assert (columns.phone, columns.name, columns.email, columns.tags, columns.opt_in) == (0, 1, 2, 3, 4)
    assert columns.attributes == [(5, "kota_asal")]
    assert [(e.column, e.reason.split(";")[0]) for e in columns.errors] == [
        ("1st", "not a valid attribute name (^[a-z][a-z0-9_]{0,39}$)"),
        ("kota asal", "duplicate column"),
    ]


@pytest.mark.parametrize(
    ("cells", "column", "reason"),
    [
        (["", "Budi"], "phone", "Phone number is empty"),
        (["0812", "Budi"], "phone", "Phone number is too short"),
        (["+1 555", "Budi"], "phone", "Phone number is too short"),
        (["081234567890", "n" * 201], "name", "longer than 200 characters"),
        (["081234567890", "Budi", "nope"], "email", "not a valid e-mail address"),
        (["081234567890", "Budi", "", "a;" + "b" * 60], "tags", "a tag is 1-50 characters"),
        (["081234567890", "Budi", "", "", "maybe"], "opt_in", "expected yes or no"),
        (["081234567890", "Budi", "", "", "yes", "", "yesterday"], "opt_in_at", "not an ISO 8601 date/time"),
        (["081234567890", "Budi", "", "", "yes", "", "2999-01-01"], "opt_in_at", "lies in the future"),
    ],
)
def test_bad_rows_name_row_column_and_reason(cells: list[str], column: str, reason: str) -> None:
    columns = map_columns(["phone", "name", "email", "tags", "opt_in", "opt_in_source", "opt_in_at"])
    result = parse_row(7, cells, columns, AT)
    assert isinstance(result, RowError)
    assert (result.row, result.column) == (7, column)
    assert result.reason.startswith(reason)


def test_a_good_row() -> None:
    columns = map_columns(["phone", "name", "tags", "opt_in", "opt_in_source", "opt_in_at", "city"])
    row = parse_row(
        2, ["0812-3456-7890", " Budi ", "vip | jkt;vip", "Ya", "Event", "2026-01-02 10:00", "Bogor"], columns, AT
    )
    assert isinstance(row, ParsedRow)
    assert row.phone == "+6281234567890"
    assert row.name == "Budi"
    assert row.tags == ("vip", "jkt")
    assert row.attributes == {"city": "Bogor"}
    assert row.consent is not None
    assert (row.consent.status, row.consent.source) == ("opted_in", "event")
    assert row.consent.at.utcoffset().total_seconds() == 7 * 3600  # WIB when no offset is given


def _row(**kw: object) -> ParsedRow:
    base = {
        "row": 2,
        "phone": "+6281234567890",
        "name": None,
        "email": None,
        "tags": (),
        "attributes": {},
        "consent": None,
    }
    return ParsedRow(**(base | kw))  # type: ignore[arg-type]


def test_merge_semantics() -> None:
    contact = Contact(id="c1", ws="w", phone="+6281234567890", name="Budi", tags=["vip"], attributes={"city": "Bogor"})
    draft = Draft.of(contact)
    assert merge(draft, _row(name="Budi", tags=("vip",), attributes={"city": "Bogor"})) is False  # skipped
    assert merge(draft, _row(tags=("new",))) is True
    assert draft.tags == ["vip", "new"]
    assert draft.added_tags == ["new"]
    too_many = merge(draft, _row(tags=tuple(f"t{i}" for i in range(19))))
    assert isinstance(too_many, RowError)
    assert too_many.column == "tags"
    assert draft.tags == ["vip", "new"]  # a refused row changes nothing


def test_a_file_never_overrides_an_opt_out() -> None:
    from relasify.data.records import ConsentEvent

    opted_out = Contact(id="c1", ws="w", phone="+6281234567890", consent=Consent(status="opted_out"))
    opt_in = ConsentEvent(status="opted_in", source="import", at=AT)
    assert merge(Draft.of(opted_out), _row(consent=opt_in)) is False
    unknown = Draft.of(Contact(id="c2", ws="w", phone="+6281234567891"))
    assert merge(unknown, _row(consent=opt_in)) is True
    assert unknown.consent_status == "opted_in"


def test_plan_dedupes_within_a_batch() -> None:
    rows = [
        _row(row=2, name="A"),
        _row(row=3, name="A"),
        _row(row=4, name="B"),
        RowError(row=5, column="phone", reason="x"),
    ]
    drafts, outcomes, errors = plan(rows, existing={}, orphans={})
    assert outcomes == {2: "created", 3: "skipped", 4: "updated", 5: "failed"}
    assert len(drafts) == 1
    assert next(iter(drafts.values())).name == "B"
    assert [e.row for e in errors] == [5]
    orphan_drafts, orphan_outcomes, _ = plan([_row(row=2)], existing={}, orphans={"+6281234567890": "kept-id"})
    assert orphan_drafts["+6281234567890"].contact_id == "kept-id"
    assert orphan_outcomes == {2: "created"}


@pytest.mark.parametrize("cell", ["=1+1", "+62812", "-2", "@SUM(A1)", "\tx", "\rx"])
def test_formula_cells_are_neutralised(cell: str) -> None:
    assert neutralise(cell) == "'" + cell
    assert neutralise("Budi") == "Budi"


def test_csv_row_neutralises_every_cell() -> None:
    contact = Contact(id="c1", ws="w", phone="+6281234567890", name="=cmd", email="a@b.co", tags=["vip"])
    cells = csv_row(contact)
    assert cells[1] == "'+6281234567890"
    assert cells[4] == "'=cmd"
    assert all(not c.startswith(("=", "+", "-", "@")) for c in cells)


@pytest.mark.parametrize(
    ("q", "prefix"),
    [
        ("0812", "+62812"),
        ("+62 812", "+62812"),
        ("62812", "+62812"),
        ("0062812", "+62812"),
        ("0812-3456-7890", "+6281234567890"),
        ("Budi", None),
        ("08a", None),
    ],
)
def test_phone_prefix(q: str, prefix: str | None) -> None:
    assert phone_prefix(q) == prefix
