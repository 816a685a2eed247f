"""`creditctl reports decisions|exposure|upstream`: the same figures as /v1/reports, as JSON or CSV."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import click

from creditctl.domain.errors import InvalidRequest
from creditctl.services.context import AppContext
from creditctl.services.reports import report_csv, report_json
from creditctl.services.reports_decisions import ReportRequest, decisions_report
from creditctl.services.reports_exposure import exposure_report
from creditctl.services.reports_upstream import upstream_report


def _when(value: str | None) -> date | datetime | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"not a date or a time: {value!r}") from None


def _period(f: Any) -> Any:
    f = click.option("--tz", default="Asia/Shanghai", show_default=True, help="Zone days are counted in.")(f)
    f = click.option(
        "--to", "end", help="End, exclusive: 2026-12-01 or a time with offset (default: today's end)."
    )(f)
    f = click.option(
        "--from", "start", help="Start: 2026-11-24 or a time with offset (default: 7 days before)."
    )(f)
    return click.option("--csv", "as_csv", is_flag=True, help="CSV instead of JSON.")(f)


def _emit(report: Any, body: dict[str, Any], as_csv: bool) -> None:
    click.echo(report_csv(report) if as_csv else json.dumps(body, indent=2), nl=not as_csv)


def register(cli: click.Group, make_context: Callable[[], AppContext]) -> None:
    @cli.group(help="Reports over stored decisions, accounts and upstream calls (the /v1/reports figures).")
    def reports() -> None: ...

    @reports.command(
        "decisions", help="Decisions per day by outcome, approval rate, money, reasons, accounts."
    )
    @_period
    def decisions(start: str | None, end: str | None, tz: str, as_csv: bool) -> None:
        ctx = make_context()
        assert ctx.reports is not None
        req = ReportRequest(_when(start), _when(end), tz)
        report = decisions_report(req, reports=ctx.reports, clock=ctx.clock)
        _emit(report, report_json(report), as_csv)

    @reports.command(
        "exposure", help="Exposure and available per account, holds expiring, deferred by age (now)."
    )
    @click.option(
        "--within-hours", default=24, show_default=True, help="Holds expiring within this many hours."
    )
    @click.option("--csv", "as_csv", is_flag=True, help="CSV instead of JSON.")
    def exposure(within_hours: int, as_csv: bool) -> None:
        ctx = make_context()
        assert ctx.reports is not None
        report = exposure_report(None, within_hours=within_hours, reports=ctx.reports, uow=ctx.uow())
        _emit(report, report_json(report), as_csv)

    @reports.command(
        "upstream", help="Upstream health: success rate, p95 latency, errors by code, retry rate."
    )
    @_period
    def upstream(start: str | None, end: str | None, tz: str, as_csv: bool) -> None:
        ctx = make_context()
        assert ctx.reports is not None
        req = ReportRequest(_when(start), _when(end), tz)
        report = upstream_report(req, reports=ctx.reports, clock=ctx.clock)
        _emit(report, report_json(report), as_csv)
