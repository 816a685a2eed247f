"""The backtest store port: a run's summary and its changed orders, kept for paging and export."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from creditctl.domain.backtest import BacktestRun, ChangedOrder


class BacktestStore(Protocol):
    """Each call is its own short transaction: a running backtest never holds a write lock for long."""

    def start(self, run: BacktestRun) -> None:
        """Record a run that is starting (status "running")."""
        ...

    def add_changes(self, run_id: str, changes: Sequence[ChangedOrder]) -> None:
        """Append changed orders; their `seq` numbers are the run's own, increasing."""
        ...

    def finish(self, run: BacktestRun) -> None:
        """Store the run's final summary and status ("done" or "failed")."""
        ...

    def get(self, run_id: str) -> BacktestRun | None:
        """The run, or None for an unknown id."""
        ...

    def changes(self, run_id: str, *, after_seq: int, limit: int) -> list[ChangedOrder]:
        """At most `limit` changed orders of the run with seq > after_seq, in seq order."""
        ...
