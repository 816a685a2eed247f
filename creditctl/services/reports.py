"""Reports as CSV text: the same figures the JSON answers carry, one line per figure (web and CLI)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from creditctl.services.reports_decisions import DECISIONS_CSV_HEADER, DecisionsReport, decisions_csv_rows
from creditctl.services.reports_exposure import EXPOSURE_CSV_HEADER, ExposureReport, exposure_csv_rows
from creditctl.services.reports_upstream import UPSTREAM_CSV_HEADER, UpstreamReport, upstream_csv_rows


def csv_text(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A header row, then the rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def report_csv(report: DecisionsReport | ExposureReport | UpstreamReport) -> str:
    """Any report as CSV."""
    if isinstance(report, DecisionsReport):
        return csv_text(DECISIONS_CSV_HEADER, decisions_csv_rows(report))
    if isinstance(report, ExposureReport):
        return csv_text(EXPOSURE_CSV_HEADER, exposure_csv_rows(report))
    return csv_text(UPSTREAM_CSV_HEADER, upstream_csv_rows(report))
