"""Backtest runs and changes in memory, for service tests and dev mode."""

from __future__ import annotations

import copy
from collections.abc import Sequence

from creditctl.domain.backtest import BacktestRun, ChangedOrder


class FakeBacktestStore:
    def __init__(self) -> None:
        self.runs: dict[str, BacktestRun] = {}
        self.changed: dict[str, list[ChangedOrder]] = {}
        self.writes: list[int] = []  # the size of every add_changes call, in order

    def start(self, run: BacktestRun) -> None:
        self.runs[run.id] = copy.deepcopy(run)
        self.changed[run.id] = []

    def add_changes(self, run_id: str, changes: Sequence[ChangedOrder]) -> None:
        self.changed[run_id].extend(changes)
        self.writes.append(len(changes))

    def finish(self, run: BacktestRun) -> None:
        self.runs[run.id] = copy.deepcopy(run)

    def get(self, run_id: str) -> BacktestRun | None:
        run = self.runs.get(run_id)
        return copy.deepcopy(run) if run else None

    def changes(self, run_id: str, *, after_seq: int, limit: int) -> list[ChangedOrder]:
        return [c for c in self.changed.get(run_id, []) if c.seq > after_seq][:limit]
