"""Reports as JSON values and as CSV text: the same figures, for the web, the CLI and the console."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from creditctl.domain.money import fmt, from_fen
from creditctl.services.csv_cells import SafeCsvWriter
from creditctl.services.reports_decisions import (
    DECISIONS_CSV_HEADER,
    OUTCOMES,
    DecisionsReport,
    Tally,
    decisions_csv_rows,
)
from creditctl.services.reports_exposure import EXPOSURE_CSV_HEADER, ExposureReport, exposure_csv_rows
from creditctl.services.reports_upstream import (
    UPSTREAM_CSV_HEADER,
    CallFigures,
    UpstreamReport,
    upstream_csv_rows,
)


def csv_text(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A header row, then the rows (no cell a spreadsheet would run as a formula)."""
    out = io.StringIO()
    writer = SafeCsvWriter(out)
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


def tally_json(t: Tally, **keys: str) -> dict[str, Any]:
    return {
        **keys,
        "decisions": t.decisions,
        "approval_rate": None if t.approval_rate is None else str(t.approval_rate),
        "outcomes": {o: {"decisions": t.counts[o], "amount": fmt(t.amount(o))} for o in OUTCOMES},
    }


def decisions_json(r: DecisionsReport) -> dict[str, Any]:
    return {
        **tally_json(r.total),
        "from": r.period.start.isoformat(),
        "to": r.period.end.isoformat(),
        "tz": r.period.tz_name,
        "money": {k: fmt(v) for k, v in r.money.items()},
        "by_day": [tally_json(t, day=d.isoformat()) for d, t in r.by_day],
        "top_reasons": {o: [{"reason": n, "decisions": c} for n, c in rs] for o, rs in r.top_reasons.items()},
        "by_account": [tally_json(t, customer_code=c, sale_group_code=g) for c, g, t in r.by_account],
        "by_customer": [tally_json(t, customer_code=c) for c, t in r.by_customer],
        "by_sale_group": [tally_json(t, sale_group_code=g) for g, t in r.by_sale_group],
    }


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def exposure_json(r: ExposureReport) -> dict[str, Any]:
    return {
        "as_of": r.as_of.isoformat(),
        "total_exposure": fmt(r.total_exposure),
        "total_available": fmt(r.total_available),
        "accounts": [
            {
                "customer_code": a.account.customer_code,
                "sale_group_code": a.account.sale_group_code,
                "status": str(a.account.status),
                "balance": fmt(a.account.snapshot.amount) if a.account.snapshot else None,
                "balance_fetched_at": _iso(a.account.snapshot.fetched_at) if a.account.snapshot else None,
                "balance_usable": a.balance_usable,
                "exposure": fmt(a.exposure),
                "available": fmt(a.available),
                "credit_limit": fmt(a.credit_limit),
                "credit_grade": a.credit_grade,
                "open_holds": a.open_holds,
            }
            for a in r.accounts
        ],
        "expiring_holds": {
            "within_hours": r.within_hours,
            "count": r.expiring_count,
            "amount": fmt(r.expiring_amount),
            "holds": [
                {
                    "hold_id": h.hold_id,
                    "order_id": h.order_id,
                    "customer_code": h.customer_code,
                    "sale_group_code": h.sale_group_code,
                    "amount": fmt(from_fen(h.amount_fen)),
                    "expires_at": h.expires_at.isoformat(),
                }
                for h in r.expiring
            ],
        },
        "deferred_by_age": [
            {
                "bucket": b.label,
                "min_age_s": b.min_age_s,
                "max_age_s": b.max_age_s,
                "count": b.count,
                "amount": fmt(b.amount),
            }
            for b in r.deferred_by_age
        ],
    }


def figures_json(f: CallFigures, **keys: str) -> dict[str, Any]:
    return {
        **keys,
        "calls": f.calls,
        "succeeded": f.succeeded,
        "success_rate": None if f.success_rate is None else str(f.success_rate),
        "retries": f.retries,
        "retry_rate": None if f.retry_rate is None else str(f.retry_rate),
        "p95_latency_ms": f.p95_latency_ms,
        "errors": [{"code": c, "calls": n} for c, n in f.errors],
    }


def upstream_json(r: UpstreamReport) -> dict[str, Any]:
    return {
        **figures_json(r.total),
        "from": r.period.start.isoformat(),
        "to": r.period.end.isoformat(),
        "tz": r.period.tz_name,
        "by_operation": [figures_json(f, operation=op) for op, f in r.by_operation],
    }


def report_json(report: DecisionsReport | ExposureReport | UpstreamReport) -> dict[str, Any]:
    """Any report as JSON values (money and ratios as decimal strings)."""
    if isinstance(report, DecisionsReport):
        return decisions_json(report)
    if isinstance(report, ExposureReport):
        return exposure_json(report)
    return upstream_json(report)
