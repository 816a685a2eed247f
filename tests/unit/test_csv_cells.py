"""Cells a spreadsheet would run as a formula are written as text; numbers (negative money too) stay."""

from __future__ import annotations

import csv
import io

import pytest

from creditctl.services.csv_cells import SafeCsvWriter, safe_cell


@pytest.mark.parametrize("cell", ["=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1", '=HYPERLINK("x")', "-"])
def test_a_cell_that_starts_like_a_formula_gets_an_apostrophe(cell: str) -> None:
    assert safe_cell(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["-1200.50", "+3", "0.00", "PO-1", "A=B", "", "caf\u00e9"])
def test_numbers_and_plain_text_are_left_alone(cell: str) -> None:
    assert safe_cell(cell) == cell


def test_the_writer_passes_every_cell_through() -> None:
    out = io.StringIO()
    SafeCsvWriter(out).writerows([["=cmd", "-5.00", 7, None]])
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [["'=cmd", "-5.00", "7", ""]]
