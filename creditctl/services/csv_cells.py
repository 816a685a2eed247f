"""CSV that a spreadsheet opens as data: a cell that begins like a formula is written as text.

Order ids, reasons and names come from callers; a report or backtest export opened in Excel or LibreOffice
would run `=HYPERLINK(...)` or `@SUM(...)` (CSV injection, OWASP). A cell starting with = + - @ tab or
carriage return gets a leading apostrophe, except a plain decimal number, so "-1200.50" stays a number."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


class _Writer(Protocol):
    def writerow(self, row: Iterable[Any], /) -> Any: ...


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


class SafeCsvWriter:
    """csv.writer with every cell passed through safe_cell."""

    def __init__(self, out: Any) -> None:
        self._writer: _Writer = csv.writer(out, lineterminator="\n")

    def writerow(self, row: Sequence[Any]) -> None:
        self._writer.writerow([safe_cell(v) for v in row])

    def writerows(self, rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            self.writerow(row)
