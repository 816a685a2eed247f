"""The backtest store port: runs (a queue of jobs, with their summaries) and their changed orders.

Times are the database's (UTC): a lease is compared by whoever reads it, on any instance. Each call is
its own short transaction: a running backtest never holds a write lock for long.

A run's life: `start` records it (queued; or running under a lease, for a run replayed at once), a
worker `claim`s the oldest queued one (several workers never claim the same run: SKIP LOCKED on
PostgreSQL, the write lock on SQLite), reports `progress` (which also renews its lease) and `finish`es
it. Both are fenced: they change the run only while it is running under the caller's lease, and answer
False when it is not (the lease ran out and `fail_stopped` ended the run meanwhile)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from creditctl.domain.backtest import BacktestRun, ChangedOrder


class BacktestStore(Protocol):
    def now(self) -> datetime:
        """The database's time."""
        ...

    def start(self, run: BacktestRun) -> None:
        """Record a new run as it is: queued, or running under its lease (lease_holder, lease_until)."""
        ...

    def claim(self, holder: str, now: datetime, lease_until: datetime) -> BacktestRun | None:
        """The oldest queued run, now running under `holder`'s lease until `lease_until` (started_at:
        `now`); None when none is queued, or every queued one is being claimed by another worker."""
        ...

    def progress(self, run: BacktestRun) -> bool:
        """Store the run's counts so far, its total and its lease_until, if it is still running under
        run.lease_holder's lease; else False, and nothing is written."""
        ...

    def add_changes(self, run_id: str, changes: Sequence[ChangedOrder]) -> None:
        """Append changed orders; their `seq` numbers are the run's own, increasing."""
        ...

    def finish(self, run: BacktestRun) -> bool:
        """Store the run's final summary, status (succeeded or failed) and finished_at, if it is still
        running under run.lease_holder's lease; else False, and nothing is written."""
        ...

    def fail_stopped(self, now: datetime, error: str) -> list[str]:
        """End as failed, with `error`, every running run whose lease ran out before `now`; their ids."""
        ...

    def prune(self, ended_before: datetime) -> int:
        """Delete the runs that ended (succeeded or failed) before `ended_before`, with their changed
        orders; how many runs."""
        ...

    def get(self, run_id: str) -> BacktestRun | None:
        """The run, or None for an unknown id."""
        ...

    def changes(self, run_id: str, *, after_seq: int, limit: int) -> list[ChangedOrder]:
        """At most `limit` changed orders of the run with seq > after_seq, in seq order."""
        ...
