"""Which representation an answer that has two (JSON and CSV) is given in."""

from __future__ import annotations

from flask import request

JSON = "application/json"
CSV = "text/csv"


def wants_csv(format: str | None) -> bool:
    """`format` (json or csv) decides when it is given; without it the Accept header does: CSV only when
    the client prefers text/csv to application/json (no Accept, or */*, is JSON)."""
    if format is not None:
        return format == "csv"
    return request.accept_mimetypes.best_match([JSON, CSV]) == CSV
