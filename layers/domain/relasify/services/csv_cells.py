"""Spreadsheet-safe CSV cells (CSV injection, OWASP), shared by the contact export and the import.

A spreadsheet runs a cell that starts with = + - @ TAB or CR as a formula. Which characters start a
cell depends on how the file is read: we write `,`-separated files, but a spreadsheet in the
Indonesian locale splits on `;`, others on TAB, and some split quoted values at their line breaks.
So a cell is neutralised at every place a cell could start, whatever the reader: its beginning and
every character after a separator or line break (`,` `;` TAB CR LF). A character there that is a
formula trigger, an apostrophe or a double quote (a reader that unquotes it would expose what
follows) gets an apostrophe before it, as OWASP recommends for the cell start; a cell ending with a
separator or line break gets one at its end.

The apostrophe is also put before an apostrophe at those places, so the encoding is reversible:
`restore` removes exactly the apostrophes `neutralise` added, and only those. The importer restores
every cell, so an export imports back to the same contacts (`+6281...` is exported `'+6281...`: text
in a spreadsheet, the same phone after import). A file written by hand rarely has a leading
apostrophe (a spreadsheet saving a cell typed `'=x` writes `=x`); if it has, the apostrophe is read
as this marker.
"""

from __future__ import annotations

FORMULA_TRIGGERS = frozenset("=+-@\t\r")
# Characters after which some reader starts a new cell or line.
CELL_BREAKS = frozenset(",;\t\r\n")
MARK = "'"
_ESCAPED = FORMULA_TRIGGERS | {MARK, '"'}


def neutralise(cell: str) -> str:
    """The cell with an apostrophe before every character at a possible cell start that a
    spreadsheet could read as a formula (or that `restore` would take for the marker)."""
    out: list[str] = []
    at_cell_start = True
    for char in cell:
        if at_cell_start and char in _ESCAPED:
            out.append(MARK)
        out.append(char)
        at_cell_start = char in CELL_BREAKS
    if cell and at_cell_start:
        # Ends with a break: a reader splitting there would join what follows our closing quote
        # (a row's CR LF, a separator) into a cell of its own; the mark starts that cell instead.
        out.append(MARK)
    return "".join(out)


def restore(cell: str) -> str:
    """The inverse of `neutralise`: drops the apostrophe at each possible cell start."""
    out: list[str] = []
    at_cell_start = True
    chars = iter(cell)
    for char in chars:
        if at_cell_start and char == MARK:
            char = next(chars, "")
            if not char:
                break
        out.append(char)
        at_cell_start = char in CELL_BREAKS
    return "".join(out)
