"""/v1/backtests: replay stored decisions under a rule set document, as a job; status, progress and
summary, then the changed orders.

A POST queues the run and answers 202 at once, with the run and its Location; a worker (`creditctl
worker`) replays it, and GET /v1/backtests/{id} shows it queued, running (with its progress), then
succeeded or failed. A backtest of any size is a job: one contract, whatever the period."""

from __future__ import annotations

from itertools import chain
from typing import Any

from flask import Response, stream_with_context, url_for

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
    backtest_changes,
    backtest_of,
    changes_csv,
    enqueue_backtest,
    get_backtest,
    iter_backtest_changes,
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
QUEUED = (
    "The run, queued (a worker replays it): poll its Location, GET /v1/backtests/{id}, until its status "
    "is succeeded or failed"
)
LOCATION = {
    "Location": {
        "description": "Where the run is read: /v1/backtests/{id}",
        "schema": {"type": "string", "format": "uri-reference"},
        "required": True,
    }
}


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
@bp.response(202, BacktestSchema, description=QUEUED, headers=LOCATION)
@_documented_errors((422, "Not a valid rule set (errors keyed by JSON pointer), or an empty period"))
def create(body: dict[str, Any]) -> Accepted:
    """Queue a replay of the period's stored decisions under the rule set document; answers at once."""
    cmd = backtest_of(body["rule_set"], body["start"], body["end"], current_key().name)
    return accepted(enqueue_backtest(cmd, store=_wired().backtests))  # type: ignore[arg-type]


def enqueue_for_rule_set(rule_set_id: int, start: Any, end: Any) -> Accepted:
    """Queue a replay under a stored rule set (a draft before it is published, or any version)."""
    c = _wired()
    record = get_rule_set(rule_set_id, uow=c.uow()).record
    cmd = backtest_of(record.document, start, end, current_key().name)
    return accepted(enqueue_backtest(cmd, store=c.backtests))  # type: ignore[arg-type]


Accepted = tuple[BacktestRun, dict[str, str]]


def accepted(run: BacktestRun) -> Accepted:
    """The queued run, and where to read it."""
    return run, {"Location": url_for("backtests.read", run_id=run.id)}


@bp.route("/<string:run_id>", methods=["GET"])
@requires(Role.ADMIN, Role.AUDITOR, global_scope=True)
@bp.response(200, BacktestSchema)
@_documented_errors((404, "No backtest with this id"))
def read(run_id: str) -> BacktestRun:
    """A backtest: its status (queued, running, succeeded, failed), progress (decisions replayed of the
    period's), times, and summary (counts by outcome and money approved before and after, missing facts;
    the counts so far while it runs), or its error."""
    return get_backtest(run_id, store=_wired().backtests)  # type: ignore[arg-type]


@bp.route("/<string:run_id>/changes", methods=["GET"])
@requires(Role.ADMIN, Role.AUDITOR, global_scope=True)
@bp.arguments(ChangesQuerySchema(), location="query", as_kwargs=True)
@bp.response(200, ChangesPageSchema)
@bp.doc(responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}})
@_documented_errors(
    (404, "No backtest with this id"),
    (409, "The run has not ended yet (queued or running): poll GET /v1/backtests/{id}"),
    (422, "A cursor outside its pattern (errors name cursor)"),
)
def changes(run_id: str, cursor: str | None, limit: int, format: str) -> Any:
    """The orders whose outcome changes, a page at a time (`next_cursor`); ?format=csv streams them all.
    Read once the run has ended (a failed run: the changes found before it stopped)."""
    store = _wired().backtests
    if wants_csv(format):
        rows = iter_backtest_changes(run_id, store=store)  # type: ignore[arg-type]
        first = next(rows, None)  # an unknown run (404) or one not ended (409) is refused before the stream
        return Response(
            stream_with_context(changes_csv(rows if first is None else chain((first,), rows))),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="backtest-{run_id}.csv"'},
        )
    page = backtest_changes(run_id, store=store, cursor=cursor, limit=limit)  # type: ignore[arg-type]
    return {"changes": page.changes, "next_cursor": page.next_cursor, "limit": limit}
