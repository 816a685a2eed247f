"""The worker's backtest job loop: a thread beside webhook delivery and audit sealing that runs queued
backtests one at a time, ends the runs whose worker stopped, and prunes old runs now and then.

A worker runs one backtest at a time; several workers run several (each claims its own). A run can take
minutes, so it has its own thread: deliveries and seals never wait for a replay. On shutdown the thread
stops between two batches, and the run it was replaying ends as failed ("worker stopped")."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from adapters.cli.loop_backoff import LoopBackoff
from creditctl.domain.backtest import BacktestRun
from creditctl.services.backtest_jobs import prune_backtests, work_next_backtest
from creditctl.services.context import AppContext

log = logging.getLogger("creditctl.backtests")
PRUNE_EVERY_S = 300.0


def worker_name() -> str:
    """Who holds a run's lease: host, process and a random part (two loops in one process differ)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def run_queued(
    context: AppContext, *, holder: str | None = None, limit: int | None = None
) -> list[BacktestRun]:
    """Run queued backtests, one after another, until none is queued (or `limit` ran); prune old runs.
    For `creditctl worker --once`, and tests that run the job loop in-process."""
    store, history = context.backtests, context.decision_history
    if store is None or history is None:
        return []
    holder = holder or worker_name()
    ran: list[BacktestRun] = []
    while limit is None or len(ran) < limit:
        run = work_next_backtest(store=store, history=history, holder=holder, policy=context.backtest_policy)
        if run is None:
            break
        ran.append(run)
    prune_backtests(store=store, policy=context.backtest_policy)
    return ran


class BacktestJobs(threading.Thread):
    """The job loop: claim and run the oldest queued backtest, else wait `idle_s`; every round also ends
    runs whose lease ran out, and every PRUNE_EVERY_S deletes runs past their retention. A failure (the
    database away) is logged once and tried again, backing off, until it works."""

    def __init__(self, context: AppContext, idle_s: float, holder: str | None = None) -> None:
        super().__init__(name="backtest-jobs", daemon=True)
        self._context, self._idle_s = context, idle_s
        self.holder = holder or worker_name()
        self.stopping = threading.Event()

    def run(self) -> None:
        pruned_at = None
        backoff = LoopBackoff(log, "backtests: running queued runs")
        while not self.stopping.is_set():
            try:
                if pruned_at is None or time.monotonic() - pruned_at > PRUNE_EVERY_S:
                    pruned_at = time.monotonic()
                    self._prune()
                ran = self._round()
            except Exception as exc:
                self.stopping.wait(max(self._idle_s, backoff.failed(exc)))
                continue
            backoff.succeeded()
            if ran is None:
                self.stopping.wait(self._idle_s)

    def _round(self) -> BacktestRun | None:
        store, history = self._context.backtests, self._context.decision_history
        if store is None or history is None:
            return None
        return work_next_backtest(
            store=store,
            history=history,
            holder=self.holder,
            policy=self._context.backtest_policy,
            stopping=self.stopping.is_set,
        )

    def _prune(self) -> None:
        if self._context.backtests is not None:
            pruned = prune_backtests(store=self._context.backtests, policy=self._context.backtest_policy)
            if pruned:
                log.info("backtests: pruned %d runs past their retention", pruned)
