"""Backtest a rule set: replay the stored decisions of a period and report what would change.

Streaming: decisions arrive in batches from the history (a server-side cursor), are replayed and
dropped; only counters stay in memory. Changed orders are written to the store batch by batch, so
memory stays flat however long the period, and the changes can be paged or exported afterwards.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import uuid4

from creditctl.domain.backtest import (
    AccountReplay,
    BacktestRun,
    ChangedOrder,
    RunStatus,
    decode_facts,
    guard,
    outcome_before,
)
from creditctl.domain.decision import Reason
from creditctl.domain.errors import InvalidRequest, NotFound
from creditctl.domain.money import fmt, from_fen
from creditctl.ports.backtests import BacktestStore
from creditctl.ports.clock import Clock
from creditctl.ports.decision_history import DecisionHistory, HistoryRow
from creditctl.services.csv_cells import SafeCsvWriter
from rules import Outcome, RuleSet, RuleSetInvalid, parse_rule_set

BATCH_SIZE = 5000
CSV_COLUMNS = ("order_id", "customer_code", "sale_group_code", "amount", "before", "after", "reasons")
MAX_PAGE = 1000


class UnknownBacktest(NotFound):
    code = "not_found.backtest"

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no backtest {run_id!r}", field="id")


@dataclass(frozen=True, slots=True)
class RunBacktest:
    """Replay decisions with start <= decided_at < end under `rule_set`."""

    rule_set: RuleSet
    start: datetime
    end: datetime
    requested_by: str


@dataclass(frozen=True, slots=True)
class ChangesPage:
    changes: list[ChangedOrder]
    next_cursor: str | None


def run_backtest(
    cmd: RunBacktest,
    *,
    history: DecisionHistory,
    store: BacktestStore,
    clock: Clock,
    batch_size: int = BATCH_SIZE,
) -> BacktestRun:
    """Replay the period's decisions under the rule set; store and return the summary."""
    if cmd.start >= cmd.end:
        raise InvalidRequest("the period is empty: 'from' must be before 'to'", field="from")
    run = BacktestRun(
        id=str(uuid4()),
        rule_set_name=cmd.rule_set.name,
        start=cmd.start,
        end=cmd.end,
        requested_by=cmd.requested_by,
        created_at=clock.now(),
    )
    store.start(run)
    replayer = _Replayer(cmd.rule_set, history.account_overrides(), run)
    try:
        for batch in history.batches(cmd.start, cmd.end, batch_size=batch_size):
            changes = replayer.replay(batch)
            if changes:
                store.add_changes(run.id, changes)
    except Exception as exc:
        run.status, run.error = RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
        run.finished_at = clock.now()
        store.finish(run)
        raise
    run.status, run.finished_at = RunStatus.DONE, clock.now()
    store.finish(run)
    return run


def candidate_rule_set(document: Any) -> RuleSet:
    """Validate a rule set document for a backtest; problems come back keyed by JSON pointer."""
    try:
        return parse_rule_set(document)
    except RuleSetInvalid as exc:
        errors: dict[str, list[str]] = {}
        for problem in exc.errors:
            errors.setdefault(f"rule_set{problem.pointer}", []).append(problem.message)
        raise InvalidRequest("the rule set is not valid: see errors", errors=errors) from None


def get_backtest(run_id: str, *, store: BacktestStore) -> BacktestRun:
    """The run's summary."""
    run = store.get(run_id)
    if run is None:
        raise UnknownBacktest(run_id)
    return run


def backtest_changes(
    run_id: str, *, store: BacktestStore, cursor: str | None = None, limit: int = 100
) -> ChangesPage:
    """One page of the run's changed orders; `next_cursor` continues after it (None: the last page).

    Pages are stable: a run's changes never change once written, and the cursor is a position."""
    get_backtest(run_id, store=store)
    after = _position(cursor)
    limit = max(1, min(limit, MAX_PAGE))
    changes = store.changes(run_id, after_seq=after, limit=limit)
    more = len(changes) == limit and bool(store.changes(run_id, after_seq=changes[-1].seq, limit=1))
    return ChangesPage(changes, str(changes[-1].seq) if more else None)


def iter_backtest_changes(
    run_id: str, *, store: BacktestStore, page: int = MAX_PAGE
) -> Iterator[ChangedOrder]:
    """Every changed order of the run, read page by page (for a streamed export)."""
    get_backtest(run_id, store=store)
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
    if cursor is None or cursor == "":
        return 0
    if not cursor.isdigit() or len(cursor) > 18:
        raise InvalidRequest(f"cursor {cursor!r} is not one this API returned", field="cursor")
    return int(cursor)


class _Replayer:
    """The hot loop: per row, decode the facts, evaluate, apply the guards, count."""

    def __init__(
        self, rule_set: RuleSet, overrides: Mapping[int, Mapping[str, str]], run: BacktestRun
    ) -> None:
        self.rule_set = rule_set
        self.overrides = overrides
        self.run = run
        self.plain = AccountReplay(rule_set, None)
        self.accounts: dict[int, AccountReplay] = {}
        self.needed = frozenset(name for rule in rule_set.rules if rule.enabled for name in rule.facts)

    def account(self, account_id: int) -> AccountReplay:
        found = self.accounts.get(account_id)
        if found is None:
            own = self.overrides.get(account_id)
            found = AccountReplay(self.rule_set, own) if own else self.plain
            self.accounts[account_id] = found
        return found

    def replay(self, batch: Sequence[HistoryRow]) -> list[ChangedOrder]:
        run, decide, needed, loads = self.run, self.rule_set.outcome, self.needed, json.loads
        before_counts, after_counts = run.before.counts, run.after.counts
        approve = Outcome.APPROVE.value
        changes: list[ChangedOrder] = []
        for row in batch:
            order_id, customer, group, fen, stored, state, raw, account_id = row
            account = self.account(account_id)
            facts = decode_facts(loads(raw), account)
            if not needed <= facts.keys():
                self._missing(facts)
            outcome, extra = guard(decide(facts, account.params), facts, facts["order.amount"])
            after = outcome.value
            before = outcome_before(stored, state)
            before_counts[before] += 1
            after_counts[after] += 1
            if before == approve:
                run.before.approved_fen += fen
            if after == approve:
                run.after.approved_fen += fen
            if after != before:
                run.changed += 1
                reasons = _reasons(self.rule_set.evaluate(facts, account.params).matches, extra)
                changes.append(
                    ChangedOrder(
                        run.changed, order_id, customer, group, from_fen(fen), before, after, reasons
                    )
                )
        run.decisions += len(batch)
        return changes

    def _missing(self, facts: Mapping[str, Any]) -> None:
        self.run.missing_facts += 1
        by_fact = self.run.missing_by_fact
        for name in self.needed.difference(facts.keys()):
            by_fact[name] = by_fact.get(name, 0) + 1


def _reasons(matches: Sequence[Any], extra: Reason | None) -> tuple[Reason, ...]:
    """The rules that matched (as a live decision reports them), plus the guard's reason if one acted."""
    reasons = [Reason(m.rule_id, m.reason, m.message) for m in matches]
    if extra is not None:
        reasons.append(extra)
    return tuple(reasons)
