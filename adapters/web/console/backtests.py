"""A backtest: while it is queued or running, its status and progress, the page refreshing itself every
few seconds (a meta refresh: the console runs no scripts); once it ended, its summary (counts and money
before and after) and the orders whose outcome changes, a page at a time, with their CSV: the same pages
and the same export as GET /v1/backtests/{id}/changes. Runs are shared by every customer: readers are
admins and auditors not limited to customers, as in the API."""

from __future__ import annotations

from itertools import chain
from typing import Any

from flask import Response, request, stream_with_context

from adapters.web.auth import check_role
from adapters.web.console.blueprint import bp
from adapters.web.console.pages import page
from adapters.web.context import ctx
from creditctl.domain.api_key import Role
from creditctl.domain.backtest import OUTCOMES
from creditctl.domain.money import from_fen
from creditctl.ports.backtests import BacktestStore
from creditctl.services.backtest import backtest_changes, changes_csv, get_backtest, iter_backtest_changes

READERS = (Role.ADMIN, Role.AUDITOR)
PER_PAGE = 50
REFRESH_S = 2  # how often the page of a run not ended yet reloads itself


def _store() -> BacktestStore:
    store = ctx().backtests
    assert store is not None, "backtests are not wired"
    return store


@bp.route("/backtests/<run_id>")
def backtest_run(run_id: str) -> Any:
    check_role(*READERS, global_scope=True)
    store = _store()
    if request.args.get("format") == "csv":
        return _csv(run_id, store)
    run = get_backtest(run_id, store=store)
    cursor = request.args.get("cursor") or None
    changes = backtest_changes(run_id, store=store, cursor=cursor, limit=PER_PAGE) if run.ended else None
    replayed, total = run.progress.replayed, run.progress.total
    return page(
        "backtest.html",
        run=run,
        changes=changes,
        cursor=cursor,
        outcomes=OUTCOMES,
        approved=(from_fen(run.before.approved_fen), from_fen(run.after.approved_fen)),
        per_page=PER_PAGE,
        refresh_s=None if run.ended else REFRESH_S,
        percent=min(100, replayed * 100 // total) if total else None,
    )


def _csv(run_id: str, store: BacktestStore) -> Response:
    """Every changed order, streamed: the API's CSV, column for column."""
    rows = iter_backtest_changes(run_id, store=store)
    first = next(rows, None)  # an unknown run is refused (404) before the stream starts
    return Response(
        stream_with_context(changes_csv(rows if first is None else chain((first,), rows))),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="backtest-{run_id}.csv"'},
    )
