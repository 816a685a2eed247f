"""Reports with charts: decisions per day by outcome, exposure by account, upstream latency and errors.

The figures come from the same service functions as GET /v1/reports/..., and each page offers the same
figure as JSON and CSV (report_json / report_csv, the API's own serialisers) for an auditor to check."""

from __future__ import annotations

from typing import Any

from flask import Response, request, url_for

from adapters.web.auth import check_role, scope
from adapters.web.console.blueprint import NavItem, bp
from adapters.web.console.charts import horizontal_bars, stacked_columns
from adapters.web.console.pages import page, parse_query
from adapters.web.context import ctx
from adapters.web.schemas.reports import ExposureQuerySchema, PeriodQuerySchema
from creditctl.domain.api_key import Role
from creditctl.ports.reports import ReportQueries
from creditctl.services.reports import report_csv, report_json
from creditctl.services.reports_decisions import OUTCOMES, ReportRequest, decisions_report
from creditctl.services.reports_exposure import exposure_report
from creditctl.services.reports_upstream import upstream_report

READERS = (Role.AUDITOR, Role.ADMIN)
NAV_ITEMS = [
    NavItem("Decisions report", "console.report_decisions", READERS),
    NavItem("Exposure", "console.report_exposure", READERS),
    NavItem("Upstream report", "console.report_upstream", READERS),
]
TOP_ACCOUNTS = 25


def _reports() -> ReportQueries:
    reports = ctx().reports
    assert reports is not None, "reports are not wired"
    return reports


def _as(report: Any, fmt: str | None, name: str) -> Any:
    """The page's figures as the API gives them, with the API's Data-As-Of."""
    moment = report.data_as_of
    as_of = {"Data-As-Of": moment.isoformat()} if moment is not None else {}
    if fmt == "csv":
        return Response(
            report_csv(report),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"', **as_of},
        )
    return report_json(report), as_of


def _links(endpoint: str, api_path: str) -> dict[str, str]:
    query = {k: v for k, v in request.args.items() if k != "format" and v != ""}
    api_query = "&".join(f"{k}={v}" for k, v in query.items())
    return {
        "json": url_for(endpoint, **query, format="json"),
        "csv": url_for(endpoint, **query, format="csv"),
        "api": f"{api_path}{'?' + api_query if api_query else ''}",
    }


def _period_request(args: dict[str, Any]) -> ReportRequest:
    return ReportRequest(start=args["start"], end=args["end"], tz=args["tz"], customers=scope())


@bp.route("/reports/decisions")
def report_decisions() -> Any:
    check_role(*READERS)
    report = decisions_report(
        _period_request(parse_query(PeriodQuerySchema())), reports=_reports(), clock=ctx().clock
    )
    if request.args.get("format") in ("json", "csv"):
        return _as(report, request.args["format"], "decisions")
    chart = stacked_columns(
        "Decisions per day by outcome",
        [(day.isoformat(), dict(t.counts)) for day, t in report.by_day],
        OUTCOMES,
    )
    return page(
        "report_decisions.html",
        r=report,
        chart=chart,
        links=_links("console.report_decisions", "/v1/reports/decisions"),
        outcomes=OUTCOMES,
    )


@bp.route("/reports/exposure")
def report_exposure() -> Any:
    check_role(*READERS)
    args = parse_query(ExposureQuerySchema())
    report = exposure_report(scope(), within_hours=args["within_hours"], reports=_reports(), uow=ctx().uow())
    if request.args.get("format") in ("json", "csv"):
        return _as(report, request.args["format"], "exposure")
    top = sorted(report.accounts, key=lambda a: a.exposure, reverse=True)[:TOP_ACCOUNTS]
    chart = horizontal_bars(
        f"Exposure by account (top {TOP_ACCOUNTS}, CNY)",
        [(f"{a.account.customer_code}/{a.account.sale_group_code}", a.exposure) for a in top],
    )
    return page(
        "report_exposure.html",
        r=report,
        chart=chart,
        links=_links("console.report_exposure", "/v1/reports/exposure"),
    )


@bp.route("/reports/upstream")
def report_upstream() -> Any:
    check_role(*READERS)
    report = upstream_report(
        _period_request(parse_query(PeriodQuerySchema())), reports=_reports(), clock=ctx().clock
    )
    if request.args.get("format") in ("json", "csv"):
        return _as(report, request.args["format"], "upstream")
    latency = horizontal_bars(
        "p95 latency by operation",
        [(op, round(f.p95_latency_ms, 1)) for op, f in report.by_operation if f.p95_latency_ms is not None],
        " ms",
    )
    errors = horizontal_bars("Errors by code (calls)", report.total.errors)
    return page(
        "report_upstream.html",
        r=report,
        latency=latency,
        errors=errors,
        links=_links("console.report_upstream", "/v1/reports/upstream"),
    )
