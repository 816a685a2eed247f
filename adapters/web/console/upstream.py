"""Upstream status: where balances come from, the circuit breaker's state, and the last day's errors."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from adapters.web.auth import check_role, scope
from adapters.web.console.blueprint import NavItem, bp
from adapters.web.console.pages import page
from adapters.web.context import ctx
from creditctl.domain.api_key import Role
from creditctl.services.reports_decisions import ReportRequest
from creditctl.services.reports_upstream import upstream_report

READERS = (Role.AUDITOR, Role.ADMIN)
NAV_ITEMS = [NavItem("Upstream", "console.upstream", READERS)]


@bp.route("/upstream")
def upstream() -> Any:
    check_role(*READERS)
    c = ctx()
    status = {}
    for name, probe in c.status.items():
        try:
            status[name] = probe()
        except Exception as exc:  # a probe's failure is itself the status to show
            status[name] = f"unknown ({type(exc).__name__})"
    now = c.clock.now()
    assert c.reports is not None, "reports are not wired"
    day = upstream_report(
        ReportRequest(start=now - timedelta(hours=24), end=now, customers=scope()),
        reports=c.reports,
        clock=c.clock,
    )
    return page("upstream.html", source=c.source_of_balances(), probes=status, day=day)
