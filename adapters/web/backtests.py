"""/v1/backtests: replay stored decisions under a rule set document; summaries and changed orders."""

from __future__ import annotations

from itertools import chain
from typing import Any

from flask import Response, stream_with_context

from adapters.web.auth import current_key, requires
from adapters.web.blueprint import ApiBlueprint
from adapters.web.context import ctx
from adapters.web.idempotency import idempotent
from adapters.web.negotiation import wants_csv
from adapters.web.schemas.backtests import (
    BacktestRequestSchema,
    BacktestSchema,
    ChangesPageSchema,
    ChangesQuerySchema,
)
from creditctl.domain.api_key import Role
from creditctl.domain.backtest import BacktestRun
from creditctl.services.backtest import (
    RunBacktest,
    backtest_changes,
    candidate_rule_set,
    changes_csv,
    get_backtest,
    iter_backtest_changes,
    run_backtest,
)
from creditctl.services.context import AppContext
from creditctl.services.rule_sets import get_rule_set

bp = ApiBlueprint(
    "backtests",
    __name__,
    url_prefix="/v1/backtests",
    description="Backtests: the stored decisions of a period replayed under a rule set, and what changes.",
)
_ERRORS = {401: "No or an unknown API key", 403: "A key without the role, or limited to some customers"}


def _documented_errors(*extra: tuple[int, str]) -> Any:
    def decorate(view: Any) -> Any:
        for status, description in (*_ERRORS.items(), *extra):
            view = bp.alt_response(status, description=description)(view)
        return view

    return decorate


def _wired() -> AppContext:
    c = ctx()
    assert c.decision_history is not None and c.backtests is not None, "backtests are not wired"
    return c


@bp.route("", methods=["POST"])
@requires(Role.ADMIN, global_scope=True)
@idempotent()
@bp.arguments(BacktestRequestSchema())
@bp.response(201, BacktestSchema, description="The finished run's summary")
@_documented_errors((422, "Not a valid rule set (errors keyed by JSON pointer), or an empty period"))
def create(body: dict[str, Any]) -> BacktestRun:
    """Replay the period's stored decisions under the rule set document (runs to the end, then answers)."""
    c = _wired()
    cmd = RunBacktest(
        rule_set=candidate_rule_set(body["rule_set"]),
        start=body["start"],
        end=body["end"],
        requested_by=current_key().name,
    )
    return run_backtest(cmd, history=c.decision_history, store=c.backtests, clock=c.clock)  # type: ignore[arg-type]


def run_for_rule_set(rule_set_id: int, start: Any, end: Any) -> BacktestRun:
    """Replay a period under a stored rule set (a draft before it is published, or any version)."""
    c = _wired()
    record = get_rule_set(rule_set_id, uow=c.uow()).record
    cmd = RunBacktest(
        rule_set=candidate_rule_set(record.document),
        start=start,
        end=end,
        requested_by=current_key().name,
    )
    return run_backtest(cmd, history=c.decision_history, store=c.backtests, clock=c.clock)  # type: ignore[arg-type]


@bp.route("/<string:run_id>", methods=["GET"])
@requires(Role.ADMIN, Role.AUDITOR, global_scope=True)
@bp.response(200, BacktestSchema)
@_documented_errors((404, "No backtest with this id"))
def read(run_id: str) -> BacktestRun:
    """A backtest's summary: counts by outcome and money approved before and after, missing facts."""
    return get_backtest(run_id, store=_wired().backtests)  # type: ignore[arg-type]


@bp.route("/<string:run_id>/changes", methods=["GET"])
@requires(Role.ADMIN, Role.AUDITOR, global_scope=True)
@bp.arguments(ChangesQuerySchema(), location="query", as_kwargs=True)
@bp.response(200, ChangesPageSchema)
@bp.doc(responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}})
@_documented_errors((404, "No backtest with this id"), (422, "A cursor this API did not return"))
def changes(run_id: str, cursor: str | None, limit: int, format: str | None) -> Any:
    """The orders whose outcome changes, a page at a time (`next_cursor`); ?format=csv streams them all."""
    store = _wired().backtests
    if wants_csv(format):
        rows = iter_backtest_changes(run_id, store=store)  # type: ignore[arg-type]
        first = next(rows, None)  # an unknown run is refused (404) before the stream starts
        return Response(
            stream_with_context(changes_csv(rows if first is None else chain((first,), rows))),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="backtest-{run_id}.csv"'},
        )
    page = backtest_changes(run_id, store=store, cursor=cursor, limit=limit)  # type: ignore[arg-type]
    return {"changes": page.changes, "next_cursor": page.next_cursor}
