"""The replay of one backtest run, wherever it runs (a worker's job loop, or `creditctl rules backtest`).

Streaming: decisions arrive in batches from the history (a server-side cursor), are replayed and
dropped; only counters stay in memory. Changed orders are written to the store batch by batch, so
memory stays flat however long the period. Progress (the counts so far) is stored after a batch at most
every `progress_every_s`, and each such write renews the run's lease: a run whose worker stops sending
news is ended as failed by whoever next looks (`fail_stopped_backtests`), never left running.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from creditctl.domain.backtest import (
    WORKER_STOPPED,
    AccountReplay,
    BacktestRun,
    ChangedOrder,
    RunStatus,
    decode_facts,
    guard,
    outcome_before,
)
from creditctl.domain.decision import Reason
from creditctl.domain.money import from_fen
from creditctl.ports.backtests import BacktestStore
from creditctl.ports.decision_history import DecisionHistory, HistoryRow
from rules import Outcome, RuleSet

BATCH_SIZE = 5000


@dataclass(frozen=True, slots=True)
class BacktestPolicy:
    """lease_s: how long a running run's worker may go without storing progress before the run is ended
    as failed ("worker stopped"); progress_every_s: how often progress is stored (after a batch);
    retention_s: how long an ended run is kept, with its changed orders."""

    lease_s: float = 60.0
    progress_every_s: float = 1.0
    retention_s: float = 30 * 86400.0
    # How long a run waits for a history read from a lagging replica to hold every decision committed
    # before the run was asked for (capped at half the lease: the wait stores no progress).
    history_wait_s: float = 30.0
    history_poll_s: float = 0.1


class HistoryBehind(Exception):
    """The decision history (a read replica) did not catch up with the run's period in time."""


class LeaseLost(Exception):
    """The run is no longer this worker's: its lease ran out and it was ended as failed meanwhile."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"backtest {run_id}: the lease ran out and the run was ended by another")


class WorkerStopping(Exception):
    """The worker is shutting down: the run ends as failed ("worker stopped") between two batches."""


def replay_run(
    run: BacktestRun,
    rule_set: RuleSet,
    *,
    history: DecisionHistory,
    store: BacktestStore,
    policy: BacktestPolicy,
    batch_size: int = BATCH_SIZE,
    stopping: Callable[[], bool] = lambda: False,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> BacktestRun:
    """Replay a run this caller holds (running, under its lease) to the end, and store how it ended.

    A failure ends the run as failed (with the error) and is raised again; a lost lease (LeaseLost) is
    raised without writing anything more: the run has already ended."""
    try:
        wait_for_history(run, history, policy, monotonic=monotonic, sleep=sleep)
        run.total = history.count(run.start, run.end)
        _report(run, store, policy)
        replayer = _Replayer(rule_set, history.account_overrides(), run)
        reported = monotonic()
        for batch in history.batches(run.start, run.end, batch_size=batch_size):
            if stopping():
                raise WorkerStopping(f"{WORKER_STOPPED}: shut down while the run was running; ask again")
            changes = replayer.replay(batch)
            if changes:
                store.add_changes(run.id, changes)
            if monotonic() - reported >= policy.progress_every_s:
                _report(run, store, policy)
                reported = monotonic()
    except LeaseLost:
        raise
    except Exception as exc:
        error = (
            str(exc) if isinstance(exc, WorkerStopping | HistoryBehind) else f"{type(exc).__name__}: {exc}"
        )
        _end(run, store, RunStatus.FAILED, error)
        raise
    run.total = run.decisions
    _end(run, store, RunStatus.SUCCEEDED, None)
    return run


def wait_for_history(
    run: BacktestRun,
    history: DecisionHistory,
    policy: BacktestPolicy,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Until the history holds every decision of the period committed before the run was asked for
    (its end, or its creation if sooner): a replica behind by more than the wait ends the run as failed
    (HistoryBehind), rather than replaying a period with its last decisions missing."""
    needed = min(run.end, run.created_at)
    waited_from = monotonic()
    limit = min(policy.history_wait_s, policy.lease_s / 2)
    while (has := history.as_of()) is None or has < needed:
        if monotonic() - waited_from >= limit:
            held = "nothing it can date yet" if has is None else f"decisions up to {has.isoformat()}"
            raise HistoryBehind(
                f"the decision history (read replica) holds {held}; the run needs those up to "
                f"{needed.isoformat()}: it did not catch up within {limit:g} s; ask again"
            )
        sleep(policy.history_poll_s)


def _report(run: BacktestRun, store: BacktestStore, policy: BacktestPolicy) -> None:
    run.lease_until = store.now() + timedelta(seconds=policy.lease_s)
    if not store.progress(run):
        raise LeaseLost(run.id)


def _end(run: BacktestRun, store: BacktestStore, status: str, error: str | None) -> None:
    run.status, run.error, run.finished_at = status, error, store.now()
    if not store.finish(run):
        raise LeaseLost(run.id)


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
