"""A backtest whose history is read from a lagging replica: it waits until the history holds every
decision committed before the run was asked for, and ends as failed, saying why, if it does not catch up
in time; it never replays a period with its last decisions missing."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest

from adapters.fake.backtests import FakeBacktestStore
from adapters.fake.clock import FakeClock
from adapters.fake.decision_history import FakeDecisionHistory
from adapters.fake.unit_of_work import FakeStore
from creditctl.domain.backtest import BacktestRun, RunStatus
from creditctl.services.backtest import RunBacktest, run_backtest
from creditctl.services.backtest_replay import BacktestPolicy, HistoryBehind, wait_for_history
from rules import default_rule_set_document, parse_rule_set

pytestmark = pytest.mark.unit

ASKED = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
POLICY = BacktestPolicy(history_wait_s=1.0, history_poll_s=0.25)  # exact in binary: 4 polls make 1 s


class LaggingHistory(FakeDecisionHistory):
    """Says it holds decisions up to each of `moments` in turn (the last one from then on)."""

    def __init__(self, moments: Iterable[datetime | None]) -> None:
        super().__init__(FakeStore())
        self.moments = list(moments)

    def as_of(self) -> datetime | None:
        return self.moments.pop(0) if len(self.moments) > 1 else self.moments[0]


class Ticks:
    """A monotonic clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def a_run(end: datetime) -> BacktestRun:
    return BacktestRun(
        id="r", rule_set_name="default", start=end - timedelta(days=30), end=end, requested_by="t",
        created_at=ASKED,
    )  # fmt: skip


def test_a_run_waits_until_the_history_holds_what_was_committed_before_it_was_asked() -> None:
    ticks = Ticks()
    history = LaggingHistory([None, ASKED - timedelta(seconds=3), ASKED, ASKED + timedelta(seconds=1)])
    wait_for_history(
        a_run(ASKED + timedelta(days=1)), history, POLICY, monotonic=lambda: ticks.now, sleep=ticks.sleep
    )
    assert ticks.slept == [0.25, 0.25]  # unknown, then 3 s behind, then there


def test_a_period_that_ended_before_is_ready_once_the_history_passes_its_end() -> None:
    ticks = Ticks()
    end = ASKED - timedelta(hours=1)
    history = LaggingHistory([end - timedelta(seconds=1), end])
    wait_for_history(a_run(end), history, POLICY, monotonic=lambda: ticks.now, sleep=ticks.sleep)
    assert ticks.slept == [0.25]


def test_a_history_that_stays_behind_ends_the_wait_with_why() -> None:
    ticks = Ticks()
    history = LaggingHistory([ASKED - timedelta(minutes=5)])
    with pytest.raises(HistoryBehind, match="did not catch up within 1 s"):
        wait_for_history(a_run(ASKED), history, POLICY, monotonic=lambda: ticks.now, sleep=ticks.sleep)
    assert ticks.slept == [0.25] * 4


def test_a_run_on_a_history_that_stays_behind_ends_failed_saying_so() -> None:
    runs = FakeBacktestStore(FakeClock(ASKED))
    history = LaggingHistory([ASKED - timedelta(minutes=5)])
    cmd = RunBacktest(
        rule_set=parse_rule_set(default_rule_set_document()),
        start=ASKED - timedelta(days=1),
        end=ASKED,
        requested_by="t",
    )
    with pytest.raises(HistoryBehind):
        run_backtest(
            cmd, history=history, store=runs, policy=BacktestPolicy(history_wait_s=0.05, history_poll_s=0.01)
        )
    (stored,) = runs.runs.values()
    assert stored.status == RunStatus.FAILED
    assert stored.error is not None and stored.error.startswith("the decision history (read replica) holds")
