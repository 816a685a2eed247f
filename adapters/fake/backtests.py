"""Backtest runs and changes in memory, for service tests: the SQL store's queue and leases, under a lock."""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from datetime import datetime

from adapters.fake.clock import FakeClock
from creditctl.domain.backtest import BacktestRun, ChangedOrder, RunStatus
from creditctl.ports.clock import Clock


class FakeBacktestStore:
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.runs: dict[str, BacktestRun] = {}
        self.changed: dict[str, list[ChangedOrder]] = {}
        self.writes: list[int] = []  # the size of every add_changes call, in order
        self.progress_seen: list[tuple[int, int | None]] = []  # (replayed, total) at each progress write
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self.clock.now()

    def start(self, run: BacktestRun) -> None:
        with self._lock:
            self.runs[run.id] = copy.deepcopy(run)
            self.changed[run.id] = []

    def claim(self, holder: str, now: datetime, lease_until: datetime) -> BacktestRun | None:
        with self._lock:
            queued = [r for r in self.runs.values() if r.status == RunStatus.QUEUED]
            if not queued:
                return None
            run = min(queued, key=lambda r: (r.created_at, r.id))
            run.status, run.started_at, run.lease_holder, run.lease_until = (
                RunStatus.RUNNING,
                now,
                holder,
                lease_until,
            )
            return copy.deepcopy(run)

    def progress(self, run: BacktestRun) -> bool:
        with self._lock:
            if not self._held(run):
                return False
            self.runs[run.id] = copy.deepcopy(run)
            self.progress_seen.append((run.decisions, run.total))
            return True

    def add_changes(self, run_id: str, changes: Sequence[ChangedOrder]) -> None:
        with self._lock:
            self.changed[run_id].extend(changes)
            self.writes.append(len(changes))

    def finish(self, run: BacktestRun) -> bool:
        with self._lock:
            if not self._held(run):
                return False
            self.runs[run.id] = copy.deepcopy(run)
            return True

    def fail_stopped(self, now: datetime, error: str) -> list[str]:
        with self._lock:
            stopped = [
                r
                for r in self.runs.values()
                if r.status == RunStatus.RUNNING and r.lease_until is not None and r.lease_until < now
            ]
            for run in stopped:
                run.status, run.error, run.finished_at = RunStatus.FAILED, error, now
            return [r.id for r in stopped]

    def prune(self, ended_before: datetime) -> int:
        with self._lock:
            old = [
                r.id
                for r in self.runs.values()
                if r.ended and r.finished_at is not None and r.finished_at < ended_before
            ]
            for run_id in old:
                del self.runs[run_id]
                self.changed.pop(run_id, None)
            return len(old)

    def get(self, run_id: str) -> BacktestRun | None:
        with self._lock:
            run = self.runs.get(run_id)
            return copy.deepcopy(run) if run else None

    def changes(self, run_id: str, *, after_seq: int, limit: int) -> list[ChangedOrder]:
        with self._lock:
            return [c for c in self.changed.get(run_id, []) if c.seq > after_seq][:limit]

    def _held(self, run: BacktestRun) -> bool:
        stored = self.runs.get(run.id)
        return (
            stored is not None
            and stored.status == RunStatus.RUNNING
            and stored.lease_holder == run.lease_holder
        )
