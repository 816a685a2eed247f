"""Backtests as jobs: what a worker does with the queue of runs.

Each round of a worker's job loop ends the runs whose worker stopped (`fail_stopped_backtests`: their
lease ran out, so they end as failed, "worker stopped"; they are not tried again), then claims the
oldest queued run and replays it to the end (`work_next_backtest`). Ended runs older than the retention
are deleted with their changed orders (`prune_backtests`, by the worker now and then and by
`creditctl expire`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from creditctl.domain.backtest import WORKER_STOPPED, BacktestRun, RunStatus
from creditctl.domain.errors import CreditctlError
from creditctl.ports.backtests import BacktestStore
from creditctl.ports.decision_history import DecisionHistory
from creditctl.services.backtest import candidate_rule_set
from creditctl.services.backtest_replay import BATCH_SIZE, BacktestPolicy, LeaseLost, replay_run

log = logging.getLogger("creditctl.backtests")


def fail_stopped_backtests(*, store: BacktestStore) -> list[str]:
    """End as failed every running run whose worker sent no news within its lease; their ids."""
    ids = store.fail_stopped(
        store.now(), f"{WORKER_STOPPED}: no progress within its lease (the worker died or hung); ask again"
    )
    for run_id in ids:
        log.warning("backtest %s: its worker stopped (lease ran out); the run failed", run_id)
    return ids


def work_next_backtest(
    *,
    store: BacktestStore,
    history: DecisionHistory,
    holder: str,
    policy: BacktestPolicy,
    stopping: Callable[[], bool] = lambda: False,
    batch_size: int = BATCH_SIZE,
) -> BacktestRun | None:
    """Claim the oldest queued run as `holder` and replay it to the end; the run as it ended (a failure
    is stored with the run and logged, not raised), or None when nothing was queued."""
    fail_stopped_backtests(store=store)
    now = store.now()
    run = store.claim(holder, now, now + timedelta(seconds=policy.lease_s))
    if run is None:
        return None
    log.info("backtest %s: claimed by %s", run.id, holder)
    try:
        rule_set = candidate_rule_set(run.document)
    except CreditctlError as exc:  # checked when queued: only a rule language changed since would do this
        run.status, run.error, run.finished_at = RunStatus.FAILED, exc.message, store.now()
        store.finish(run)
        return run
    try:
        replay_run(
            run,
            rule_set,
            history=history,
            store=store,
            policy=policy,
            batch_size=batch_size,
            stopping=stopping,
        )
    except LeaseLost:
        log.warning("backtest %s: its lease ran out while %s replayed it; the run had failed", run.id, holder)
        return store.get(run.id) or run
    except Exception:
        log.exception("backtest %s failed", run.id)
    return run


def prune_backtests(*, store: BacktestStore, policy: BacktestPolicy) -> int:
    """Delete runs that ended longer ago than the retention, with their changed orders; how many."""
    return store.prune(store.now() - timedelta(seconds=policy.retention_s))
