"""CSV injection: exported cells are safe whatever separator a spreadsheet splits them with (`,`, `;` as
in the Indonesian locale, TAB, or line breaks inside quoted values), and the import restores exactly
what the export neutralised, so an export imports back to the same contacts."""

from __future__ import annotations

import csv
import io
import re
import string
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from relasify.data.records import Contact
from relasify.schemas.contacts import TAG_PATTERN
from relasify.services.csv_cells import FORMULA_TRIGGERS, neutralise, restore
from relasify.services.exports import write_csv
from relasify.services.import_rows import ParsedRow, map_columns, numbered_records, open_csv, parse_row

# Biased towards what matters: triggers, separators, quotes and apostrophes, plus ordinary letters.
_SPECIAL = "=+-@\t\r\n,;'\" "
cell_text = st.text(
    alphabet=st.sampled_from(_SPECIAL) | st.sampled_from("aZ9é") | st.characters(exclude_categories=("Cs",)),
    max_size=30,
)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
AT = datetime(2026, 1, 1, tzinfo=UTC)


def _write(rows: list[list[str]]) -> str:
    """As the export writes: `,`-separated, CRLF rows, every cell neutralised."""
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\r\n").writerows([[neutralise(c) for c in row] for row in rows])
    return out.getvalue()


def _assert_no_formula_cell(raw: str) -> None:
    for delimiter in (",", ";", "\t"):
        for row in csv.reader(io.StringIO(raw, newline=""), delimiter=delimiter):
            for cell in row:
                assert not cell[:1] or cell[0] not in FORMULA_TRIGGERS, (delimiter, cell, raw)
        # A reader that ignores quotes, and one that splits quoted values at their line breaks.
        for line in _LINE_BREAK.split(raw):
            for piece in line.split(delimiter):
                unquoted = piece.lstrip('"')
                assert not unquoted[:1] or unquoted[0] not in FORMULA_TRIGGERS, (delimiter, piece, raw)


@settings(max_examples=400)
@given(st.lists(st.lists(cell_text, min_size=1, max_size=4), min_size=1, max_size=3))
def test_no_cell_starts_a_formula_whatever_the_separator(rows: list[list[str]]) -> None:
    _assert_no_formula_cell(_write([["id", "name"], *rows]))


@settings(max_examples=400)
@given(cell_text)
def test_restore_is_the_exact_inverse_of_neutralise(text: str) -> None:
    assert restore(neutralise(text)) == text


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+6281234567890", "'+6281234567890"),
        ("-Budi-", "'-Budi-"),
        ("+62 shop", "'+62 shop"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("Toko;=cmd", "Toko;'=cmd"),  # a `;` reader starts a cell after the `;`
        ("Budi,-1", "Budi,'-1"),
        ("line one\n=HYPERLINK(1)", "line one\n'=HYPERLINK(1)"),  # a reader splitting lines
        ('a;"=x', "a;'\"=x"),  # a reader unquoting the cell
        ("'quoted", "''quoted"),  # a real apostrophe at a cell start is kept: marked too
        ("O'Brien", "O'Brien"),  # not at a cell start: untouched
        ("Budi - Toko", "Budi - Toko"),
        ("Budi", "Budi"),
        ("", ""),
    ],
)
def test_neutralised_form(value: str, written: str) -> None:
    assert neutralise(value) == written
    assert restore(written) == value


# --- the round trip through the exporter's writer and the importer's reader -------------------------

phones = st.integers(min_value=10_000_000, max_value=99_999_999).map(lambda n: f"+62812{n}")
names = cell_text.map(str.strip).filter(bool)
tags = st.from_regex(TAG_PATTERN, fullmatch=True).map(str.strip).filter(lambda t: re.match(TAG_PATTERN, t))
attribute_keys = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
attribute_values = cell_text.map(str.strip) | st.integers(-(10**12), 10**12) | st.booleans()
contacts = st.builds(
    lambda phone, name, tag_list, attributes: Contact(
        id="c-" + phone[1:],
        ws="w",
        phone=phone,
        name=name,
        tags=list(dict.fromkeys(tag_list)),
        attributes=attributes,
    ),
    phones,
    st.none() | names,
    st.lists(tags, max_size=4),
    st.dictionaries(attribute_keys, attribute_values, max_size=4),
)


def _read_back(raw: str) -> list[ParsedRow]:
    """As the import worker reads a file (newline="" like `files.open_text`)."""
    reader, header = open_csv(io.StringIO(raw, newline=""))
    columns = map_columns(header)
    assert columns.errors == []
    rows = [parse_row(number, cells, columns, default_at=AT) for number, cells in numbered_records(reader)]
    assert all(isinstance(r, ParsedRow) for r in rows), rows
    return rows  # type: ignore[return-value]


@settings(max_examples=200, deadline=None)
@given(st.lists(contacts, min_size=1, max_size=4, unique_by=lambda c: c.phone))
def test_an_export_reads_back_as_the_same_contacts(exported: list[Contact]) -> None:
    out = io.StringIO(newline="")
    write_csv(exported, out)
    raw = out.getvalue()
    _assert_no_formula_cell(raw)
    rows = _read_back(raw)
    assert [(r.phone, r.name, list(r.tags), r.attributes, r.consent) for r in rows] == [
        (c.phone, c.name, c.tags, c.attributes, None) for c in exported
    ]


def test_hostile_values_read_back_unchanged() -> None:
    hostile = Contact(
        id="c1",
        ws="w",
        phone="+6281234567890",
        name="-Budi-",
        tags=["toko+62", "vip"],
        attributes={"kota": "=cmd|' /C calc'!A0", "note": "a;@b\n=c", "quote": "'x", "n": -2, "ok": True},
    )
    plus_shop = hostile.model_copy(update={"id": "c2", "phone": "+6281234567891", "name": "+62 shop", "tags": []})
    out = io.StringIO(newline="")
    write_csv([hostile, plus_shop], out)
    assert "'+6281234567890" in out.getvalue()
    assert "'-Budi-" in out.getvalue()
    rows = _read_back(out.getvalue())
    assert [(r.phone, r.name, list(r.tags), r.attributes) for r in rows] == [
        ("+6281234567890", "-Budi-", ["toko+62", "vip"], hostile.attributes),
        ("+6281234567891", "+62 shop", [], hostile.attributes),
    ]


def test_a_hand_written_file_is_read_as_before() -> None:
    """Ordinary files have no marks: nothing is removed, and their columns keep their meaning."""
    raw = "phone,name,attributes,id\r\n0812-3456-7890,O'Brien - Toko,x,7\r\n"
    (row,) = _read_back(raw)
    assert (row.phone, row.name, row.attributes) == ("+6281234567890", "O'Brien - Toko", {"attributes": "x", "id": "7"})


def test_an_export_with_a_bad_attributes_cell_is_a_row_error() -> None:
    out = io.StringIO(newline="")
    write_csv([Contact(id="c1", ws="w", phone="+6281234567890", name="A")], out)
    header, cells = csv.reader(io.StringIO(out.getvalue(), newline=""))
    cells[7] = '{"BAD KEY": 1}'
    edited = io.StringIO(newline="")
    csv.writer(edited).writerows([header, cells])
    reader, parsed_header = open_csv(io.StringIO(edited.getvalue(), newline=""))
    result = parse_row(2, next(reader), map_columns(parsed_header), default_at=AT)
    assert not isinstance(result, ParsedRow)
    assert (result.row, result.column) == (2, "attributes")


def test_letters_only_cells_are_untouched() -> None:
    assert neutralise(string.ascii_letters) == string.ascii_letters
