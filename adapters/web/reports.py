"""/v1/reports: decisions, exposure and upstream health, as JSON or CSV (auditor, admin).

Each report answers JSON or CSV at its path (`format`, else the Accept header), and CSV only at the same
path with `.csv` (as Datasette's pages have their `.csv` twins): a client generated from the document
types one content per answer, so the CSV needs an operation of its own to be reachable from one."""

from __future__ import annotations

from typing import Any

from flask import Response

from adapters.web.auth import requires, scope
from adapters.web.blueprint import ApiBlueprint
from adapters.web.context import ctx
from adapters.web.negotiation import CSV, wants_csv
from adapters.web.schemas.reports import (
    DecisionsReportSchema,
    ExposureCsvQuerySchema,
    ExposureQuerySchema,
    ExposureReportSchema,
    PeriodCsvQuerySchema,
    PeriodQuerySchema,
    UpstreamReportSchema,
)
from creditctl.domain.api_key import Role
from creditctl.ports.reports import ReportQueries
from creditctl.services.reports import report_csv, report_json
from creditctl.services.reports_decisions import ReportRequest, decisions_report
from creditctl.services.reports_exposure import exposure_report
from creditctl.services.reports_upstream import upstream_report

bp = ApiBlueprint(
    "reports",
    __name__,
    url_prefix="/v1/reports",
    description="Reports: decisions, exposure, upstream health (a key limited to customers: its own rows).",
)
_CSV = {200: {"content": {CSV: {"schema": {"type": "string", "description": "One line per figure"}}}}}
_CSV_ONLY = "The report as CSV: a header line, then one line per figure"


# Reports read the read replica when one is set (CREDITCTL_READ_DATABASE_URL, docs/replication.md).
_AWAY = (
    "unavailable/database: the database, or the read replica this report reads when one is set, does not "
    "answer"
)
_NOT_REPLAYED = (
    "unavailable/read_replica: the read replica has replayed nothing since it started, so it cannot say up "
    "to when its data are complete (the moment this picture is taken at)"
)
UNAVAILABLE = {
    "period": f"{_AWAY}. With Retry-After (seconds); the problem's type ends in its code",
    "now": f"{_NOT_REPLAYED}; or {_AWAY}. With Retry-After (seconds); the problem's type ends in its code",
}


def _documented(view: Any, *, moment: str = "period") -> Any:
    for status, description in (
        (401, "No or an unknown API key"),
        (403, "A key without the auditor or admin role"),
        (422, "A bad parameter: an unknown zone, `to` not after `from`, a period over 366 days"),
        (503, UNAVAILABLE[moment]),
    ):
        view = bp.alt_response(status, description=description)(view)
    return view


def _documented_now(view: Any) -> Any:
    """A picture of now (exposure): also 503 when a read replica cannot say how fresh it is."""
    return _documented(view, moment="now")


def _reports() -> ReportQueries:
    reports = ctx().reports
    assert reports is not None, "reports are not wired"
    return reports


# Up to when the figures are complete: the database's now on the primary, a replica's replayed moment
# when reports read one (CREDITCTL_READ_DATABASE_URL). Never later than the data: read before them.
AS_OF = {
    "Data-As-Of": {
        "description": "The figures hold every commit up to this moment (ISO 8601, UTC): the database's "
        "now, or what a read replica has replayed; absent when a replica cannot tell yet",
        "schema": {"type": "string", "format": "date-time"},
    }
}


def _as_of(report: Any) -> dict[str, str]:
    moment = report.data_as_of
    return {"Data-As-Of": moment.isoformat()} if moment is not None else {}


def _answer(report: Any, body: dict[str, Any], format: str | None, name: str) -> Any:
    if wants_csv(format):
        return _csv(report, name)
    return body, _as_of(report)


def _csv(report: Any, name: str) -> Response:
    return Response(
        report_csv(report),
        mimetype=CSV,
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"', **_as_of(report)},
    )


def _request(args: dict[str, Any]) -> ReportRequest:
    return ReportRequest(start=args["start"], end=args["end"], tz=args["tz"], customers=scope())


@bp.route("/decisions", methods=["GET"])
@requires(Role.AUDITOR, Role.ADMIN)
@bp.arguments(PeriodQuerySchema(), location="query")
@bp.response(200, DecisionsReportSchema, headers=AS_OF)
@bp.doc(responses=_CSV)
@_documented
def decisions(args: dict[str, Any]) -> Any:
    """Decisions per day (display zone) by outcome, approval rate, money by outcome, top block/defer
    reasons, per account, customer and sales group."""
    report = decisions_report(_request(args), reports=_reports(), clock=ctx().clock)
    return _answer(report, report_json(report), args["format"], "decisions")


@bp.route("/decisions.csv", methods=["GET"])
@requires(Role.AUDITOR, Role.ADMIN)
@bp.arguments(PeriodCsvQuerySchema(), location="query")
@bp.response(200, description=_CSV_ONLY, headers=AS_OF)
@bp.doc(responses=_CSV)
@_documented
def decisions_csv(args: dict[str, Any]) -> Response:
    """The decisions report as CSV."""
    return _csv(decisions_report(_request(args), reports=_reports(), clock=ctx().clock), "decisions")


@bp.route("/exposure", methods=["GET"])
@requires(Role.AUDITOR, Role.ADMIN)
@bp.arguments(ExposureQuerySchema(), location="query")
@bp.response(200, ExposureReportSchema, headers=AS_OF)
@bp.doc(responses=_CSV)
@_documented_now
def exposure(args: dict[str, Any]) -> Any:
    """Now (the database's clock): exposure and available per account, holds expiring within
    `within_hours`, deferred orders by age."""
    c = ctx()
    report = exposure_report(scope(), within_hours=args["within_hours"], reports=_reports(), uow=c.uow())
    return _answer(report, report_json(report), args["format"], "exposure")


@bp.route("/exposure.csv", methods=["GET"])
@requires(Role.AUDITOR, Role.ADMIN)
@bp.arguments(ExposureCsvQuerySchema(), location="query")
@bp.response(200, description=_CSV_ONLY, headers=AS_OF)
@bp.doc(responses=_CSV)
@_documented_now
def exposure_csv(args: dict[str, Any]) -> Response:
    """The exposure report as CSV."""
    c = ctx()
    report = exposure_report(scope(), within_hours=args["within_hours"], reports=_reports(), uow=c.uow())
    return _csv(report, "exposure")


@bp.route("/upstream", methods=["GET"])
@requires(Role.AUDITOR, Role.ADMIN)
@bp.arguments(PeriodQuerySchema(), location="query")
@bp.response(200, UpstreamReportSchema, headers=AS_OF)
@bp.doc(responses=_CSV)
@_documented
def upstream(args: dict[str, Any]) -> Any:
    """Upstream health over the period: success rate, p95 latency, errors by code, retry rate."""
    report = upstream_report(_request(args), reports=_reports(), clock=ctx().clock)
    return _answer(report, report_json(report), args["format"], "upstream")


@bp.route("/upstream.csv", methods=["GET"])
@requires(Role.AUDITOR, Role.ADMIN)
@bp.arguments(PeriodCsvQuerySchema(), location="query")
@bp.response(200, description=_CSV_ONLY, headers=AS_OF)
@bp.doc(responses=_CSV)
@_documented
def upstream_csv(args: dict[str, Any]) -> Response:
    """The upstream report as CSV."""
    return _csv(upstream_report(_request(args), reports=_reports(), clock=ctx().clock), "upstream")
