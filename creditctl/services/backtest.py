"""Backtest a rule set: replay the stored decisions of a period and report what would change.

A backtest is a job: `enqueue_backtest` records the run (queued) and answers at once; a worker claims
and replays it (creditctl.services.backtest_jobs), storing its progress as it goes. `run_backtest`
replays one at once, in the caller (the `creditctl rules backtest` command), under a lease all the
same, so a command killed halfway leaves a run that ends as failed, not one that runs for ever. Both
share the replay (creditctl.services.backtest_replay). A run's changed orders are read once it ended.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from creditctl.domain.backtest import BacktestRun, ChangedOrder, RunStatus
from creditctl.domain.errors import Conflict, InvalidRequest, NotFound
from creditctl.domain.money import fmt, from_fen
from creditctl.ports.backtests import BacktestStore
from creditctl.ports.decision_history import DecisionHistory
from creditctl.services.backtest_replay import BATCH_SIZE, BacktestPolicy, replay_run
from creditctl.services.csv_cells import SafeCsvWriter
from rules import Outcome, RuleSet, RuleSetInvalid, parse_rule_set

CSV_COLUMNS = ("order_id", "customer_code", "sale_group_code", "amount", "before", "after", "reasons")
MAX_PAGE = 1000


class UnknownBacktest(NotFound):
    code = "not_found.backtest"

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no backtest {run_id!r}", field="id")


class BacktestNotEnded(Conflict):
    code = "conflict.backtest_not_ended"

    def __init__(self, run: BacktestRun) -> None:
        super().__init__(
            f"backtest {run.id} is {run.status}: its changed orders are read once it has ended "
            f"(GET /v1/backtests/{run.id} shows its status and progress)",
            field="status",
        )


@dataclass(frozen=True, slots=True)
class RunBacktest:
    """Replay decisions with start <= decided_at < end under `rule_set` (parsed from `document`)."""

    rule_set: RuleSet
    start: datetime
    end: datetime
    requested_by: str
    document: Any = None  # the document the rule set was parsed from (a queued run keeps it to run)


@dataclass(frozen=True, slots=True)
class ChangesPage:
    changes: list[ChangedOrder]
    next_cursor: str | None


def enqueue_backtest(cmd: RunBacktest, *, store: BacktestStore) -> BacktestRun:
    """Record a queued run, for a worker to replay; answer it at once."""
    _check_period(cmd)
    if cmd.document is None:
        raise ValueError("a queued backtest keeps its rule set document: RunBacktest.document is required")
    run = _new_run(cmd, store.now())
    store.start(run)
    return run


def run_backtest(
    cmd: RunBacktest,
    *,
    history: DecisionHistory,
    store: BacktestStore,
    holder: str = "creditctl rules backtest",
    policy: BacktestPolicy = BacktestPolicy(),
    batch_size: int = BATCH_SIZE,
) -> BacktestRun:
    """Replay the period's decisions under the rule set now, in the caller, under `holder`'s lease;
    store and return the summary (a failure is stored, then raised)."""
    _check_period(cmd)
    now = store.now()
    run = _new_run(cmd, now)
    run.status, run.started_at, run.lease_holder = RunStatus.RUNNING, now, holder
    run.lease_until = now + timedelta(seconds=policy.lease_s)
    store.start(run)
    return replay_run(run, cmd.rule_set, history=history, store=store, policy=policy, batch_size=batch_size)


def _check_period(cmd: RunBacktest) -> None:
    if cmd.start >= cmd.end:
        raise InvalidRequest("the period is empty: 'from' must be before 'to'", field="from")


def _new_run(cmd: RunBacktest, now: datetime) -> BacktestRun:
    return BacktestRun(
        id=str(uuid4()),
        rule_set_name=cmd.rule_set.name,
        start=cmd.start,
        end=cmd.end,
        requested_by=cmd.requested_by,
        created_at=now,
        document=cmd.document,
    )


def candidate_rule_set(document: Any) -> RuleSet:
    """Validate a rule set document for a backtest; problems come back keyed by JSON pointer."""
    try:
        return parse_rule_set(document)
    except RuleSetInvalid as exc:
        errors: dict[str, list[str]] = {}
        for problem in exc.errors:
            errors.setdefault(f"rule_set{problem.pointer}", []).append(problem.message)
        raise InvalidRequest("the rule set is not valid: see errors", errors=errors) from None


def backtest_of(document: Any, start: datetime, end: datetime, requested_by: str) -> RunBacktest:
    """A backtest of a rule set document (validated: problems keyed by JSON pointer)."""
    return RunBacktest(candidate_rule_set(document), start, end, requested_by, document)


def get_backtest(run_id: str, *, store: BacktestStore) -> BacktestRun:
    """The run: its status, progress and summary (the counts so far, while it runs)."""
    run = store.get(run_id)
    if run is None:
        raise UnknownBacktest(run_id)
    return run


def ended_backtest(run_id: str, *, store: BacktestStore) -> BacktestRun:
    """The run, if it has ended (succeeded, or failed: then the changes found before it stopped)."""
    run = get_backtest(run_id, store=store)
    if not run.ended:
        raise BacktestNotEnded(run)
    return run


def backtest_changes(
    run_id: str, *, store: BacktestStore, cursor: str | None = None, limit: int = 100
) -> ChangesPage:
    """One page of the run's changed orders; `next_cursor` continues after it (None: the last page).

    Pages are stable: an ended run's changes never change, and the cursor is a position."""
    ended_backtest(run_id, store=store)
    after = _position(cursor)
    limit = max(1, min(limit, MAX_PAGE))
    changes = store.changes(run_id, after_seq=after, limit=limit)
    more = len(changes) == limit and bool(store.changes(run_id, after_seq=changes[-1].seq, limit=1))
    return ChangesPage(changes, str(changes[-1].seq) if more else None)


def iter_backtest_changes(
    run_id: str, *, store: BacktestStore, page: int = MAX_PAGE
) -> Iterator[ChangedOrder]:
    """Every changed order of the run, read page by page (for a streamed export)."""
    ended_backtest(run_id, store=store)
    after = 0
    while True:
        changes = store.changes(run_id, after_seq=after, limit=page)
        yield from changes
        if len(changes) < page:
            return
        after = changes[-1].seq


def changes_csv(changes: Iterable[ChangedOrder], *, chunk: int = 500) -> Iterator[str]:
    """The changed orders as CSV text, header first, yielded `chunk` rows at a time (for streaming).

    Columns: CSV_COLUMNS; amount a decimal string; reasons the reason codes after, space-separated."""
    out = io.StringIO()
    writer = SafeCsvWriter(out)
    writer.writerow(CSV_COLUMNS)
    for n, c in enumerate(changes, start=1):
        reasons = " ".join(r.reason for r in c.reasons)
        writer.writerow(
            (c.order_id, c.customer_code, c.sale_group_code, fmt(c.amount), c.before, c.after, reasons)
        )
        if n % chunk == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def backtest_report(run: BacktestRun) -> list[str]:
    """The summary for a human: counts and money before and after, changes, missing facts."""
    lines = [
        f"backtest {run.id} ({run.status}): {run.decisions} decisions from {run.start.isoformat()} "
        f"to {run.end.isoformat()} under {run.rule_set_name!r}",
        f"params: {run.params_source}",
        f"{'outcome':<10}{'before':>12}{'after':>12}",
    ]
    for outcome in Outcome:
        name = outcome.value
        lines.append(f"{name:<10}{run.before.counts.get(name, 0):>12}{run.after.counts.get(name, 0):>12}")
    approved = (fmt(from_fen(run.before.approved_fen)), fmt(from_fen(run.after.approved_fen)))
    lines.append(f"approved money: {approved[0]} before, {approved[1]} after")
    lines.append(f"orders whose outcome changes: {run.changed}")
    if run.missing_facts:
        detail = ", ".join(f"{name} {count}" for name, count in sorted(run.missing_by_fact.items()))
        lines.append(f"decisions without a fact the rules read: {run.missing_facts} ({detail})")
    return lines


def _position(cursor: str | None) -> int:
    """The seq a cursor names: 1 to 18 ASCII digits (str.isdigit alone takes "²", which int() refuses)."""
    if cursor is None or cursor == "":
        return 0
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 18:
        raise InvalidRequest(f"cursor {cursor!r} is not one this API returned", field="cursor")
    return int(cursor)
