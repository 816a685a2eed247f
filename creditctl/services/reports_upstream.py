"""The upstream health report: success rate, p95 latency, errors by code, retry rate, per operation."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from creditctl.domain.report_period import ReportPeriod, report_period
from creditctl.ports.clock import Clock
from creditctl.ports.reports import CallCount, ReportQueries
from creditctl.services.reports_decisions import ReportRequest, rate

P95 = 0.95


@dataclass(frozen=True, slots=True)
class CallFigures:
    """Figures over a set of calls. A retry is a call with attempt > 1; the retry rate is retries / calls."""

    calls: int
    succeeded: int
    retries: int
    errors: list[tuple[str, int]]  # (code, calls), most frequent first
    p95_latency_ms: float | None  # nearest rank: the ceil(0.95 n)-th smallest latency

    @property
    def success_rate(self) -> Decimal | None:
        return rate(self.succeeded, self.calls)

    @property
    def retry_rate(self) -> Decimal | None:
        return rate(self.retries, self.calls)


@dataclass(frozen=True)
class UpstreamReport:
    period: ReportPeriod
    total: CallFigures
    by_operation: list[tuple[str, CallFigures]]
    data_as_of: datetime | None = None  # the figures hold every call recorded up to this moment


def upstream_report(req: ReportRequest, *, reports: ReportQueries, clock: Clock) -> UpstreamReport:
    """Aggregate the upstream calls recorded in the period (a limited key: its customers' balance calls)."""
    period = report_period(req.start, req.end, tz=req.tz, now=clock.now())
    data_as_of = reports.as_of()  # before the figures: they are at least this fresh
    counts = reports.upstream_counts(period.start, period.end, req.customers)

    def figures(operation: str | None) -> CallFigures:
        rows = [c for c in counts if operation is None or c.operation == operation]
        return _figures(
            rows,
            lambda rank: reports.upstream_latency_rank(
                period.start, period.end, operation, rank, req.customers
            ),
        )

    operations = sorted({c.operation for c in counts})
    return UpstreamReport(period, figures(None), [(op, figures(op)) for op in operations], data_as_of)


def _figures(rows: list[CallCount], latency_at: object) -> CallFigures:
    calls = sum(r.count for r in rows)
    errors: dict[str, int] = {}
    for r in rows:
        if r.error_code is not None:
            errors[r.error_code] = errors.get(r.error_code, 0) + r.count
    p95 = latency_at(math.ceil(P95 * calls)) if calls else None  # type: ignore[operator]
    return CallFigures(
        calls=calls,
        succeeded=sum(r.count for r in rows if r.error_code is None),
        retries=sum(r.count for r in rows if r.retry),
        errors=sorted(errors.items(), key=lambda e: (-e[1], e[0])),
        p95_latency_ms=p95,
    )


UPSTREAM_CSV_HEADER = (
    "section",
    "operation",
    "error_code",
    "calls",
    "succeeded",
    "success_rate",
    "retries",
    "retry_rate",
    "p95_latency_ms",
)


def upstream_csv_rows(report: UpstreamReport) -> Iterator[list[str]]:
    """One line per operation (and all), then one per error code per operation."""
    for operation, f in [("all", report.total), *report.by_operation]:
        yield [
            "operation",
            operation,
            "",
            str(f.calls),
            str(f.succeeded),
            _text(f.success_rate),
            str(f.retries),
            _text(f.retry_rate),
            "" if f.p95_latency_ms is None else f"{f.p95_latency_ms:.1f}",
        ]
        for code, n in f.errors:
            yield ["error", operation, code, str(n), "", "", "", "", ""]


def _text(value: object) -> str:
    return "" if value is None else str(value)
