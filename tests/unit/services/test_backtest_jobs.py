"""Backtest jobs on the fakes: queued runs claimed and replayed, progress stored at most every
progress_every_s (on a clock moved by hand), a shutdown or a failure ending the run as failed with why."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.fake.backtests import FakeBacktestStore
from adapters.fake.decision_history import FakeDecisionHistory
from adapters.fake.unit_of_work import FakeStore
from creditctl.domain.backtest import Progress
from creditctl.domain.errors import InvalidRequest
from creditctl.services.backtest import backtest_of, enqueue_backtest, get_backtest
from creditctl.services.backtest_jobs import work_next_backtest
from creditctl.services.backtest_replay import BacktestPolicy, replay_run
from rules import default_rule_set_document
from tests.unit.services.conftest import RICH_GROUP, Desk

EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def tightened() -> dict[str, Any]:
    document = default_rule_set_document()
    document["params"] = {**document.get("params", {}), "single_order_review_amount": "100.00"}
    return document


class Ticks:
    """A monotonic clock that moves `step` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def work(store: FakeStore, runs: FakeBacktestStore, **kw: Any) -> Any:
    return work_next_backtest(store=runs, history=FakeDecisionHistory(store), holder="w", **kw)


class TestQueue:
    def test_a_queued_run_keeps_its_document_and_waits_for_a_worker(
        self, desk: Desk, store: FakeStore
    ) -> None:
        desk.decide("1000.00", group=RICH_GROUP)
        runs = FakeBacktestStore()

        queued = enqueue_backtest(backtest_of(tightened(), *EVER, "admin"), store=runs)

        stored = get_backtest(queued.id, store=runs)
        assert (stored.status, stored.document, stored.started_at, stored.progress.total) == (
            "queued",
            tightened(),
            None,
            None,
        )
        run = work(store, runs, policy=BacktestPolicy())
        assert run is not None and run.id == queued.id
        done = get_backtest(queued.id, store=runs)
        assert (done.status, done.decisions, done.changed, done.lease_holder) == ("succeeded", 1, 1, "w")
        assert work(store, runs, policy=BacktestPolicy()) is None  # nothing queued any more

    def test_an_empty_period_or_a_bad_document_is_refused_before_anything_is_queued(self) -> None:
        runs = FakeBacktestStore()
        with pytest.raises(InvalidRequest, match="'from' must be before 'to'"):
            enqueue_backtest(backtest_of(tightened(), EVER[1], EVER[0], "admin"), store=runs)
        bad = default_rule_set_document()
        bad["rules"][0]["outcome"] = "maybe"
        with pytest.raises(InvalidRequest, match="not valid"):
            enqueue_backtest(backtest_of(bad, *EVER, "admin"), store=runs)
        assert runs.runs == {}


class TestProgress:
    def test_progress_is_stored_at_most_every_progress_every_s(self, desk: Desk, store: FakeStore) -> None:
        for _ in range(10):
            desk.decide("10.00", group=RICH_GROUP)
        runs = FakeBacktestStore()
        cmd = backtest_of(tightened(), *EVER, "admin")
        queued = enqueue_backtest(cmd, store=runs)
        claimed = runs.claim("w", runs.now(), runs.now())
        assert claimed is not None and claimed.id == queued.id

        # one batch of one decision each 0.4 s of the worker's own clock: a report every third batch
        replay_run(
            claimed,
            cmd.rule_set,
            history=FakeDecisionHistory(store),
            store=runs,
            policy=BacktestPolicy(progress_every_s=1.0),
            batch_size=1,
            monotonic=Ticks(0.4),
        )

        assert runs.progress_seen == [(0, 10), (3, 10), (6, 10), (9, 10)]  # the total as soon as it starts
        assert get_backtest(queued.id, store=runs).progress == Progress(10, 10)


class TestEndings:
    def test_a_worker_shutting_down_ends_its_run_as_failed_between_two_batches(
        self, desk: Desk, store: FakeStore
    ) -> None:
        for _ in range(4):
            desk.decide("10.00", group=RICH_GROUP)
        runs = FakeBacktestStore()
        queued = enqueue_backtest(backtest_of(tightened(), *EVER, "admin"), store=runs)
        asked: list[bool] = []

        def stopping() -> bool:
            asked.append(True)
            return len(asked) > 2  # asked before each batch: the third finds the worker stopping

        run = work(store, runs, policy=BacktestPolicy(progress_every_s=0), stopping=stopping, batch_size=1)

        assert run is not None
        failed = get_backtest(queued.id, store=runs)
        assert (failed.status, failed.decisions) == ("failed", 2)
        assert failed.error is not None and failed.error.startswith("worker stopped")
        assert failed.finished_at is not None

    def test_a_replay_that_breaks_ends_as_failed_with_the_error(self, desk: Desk, store: FakeStore) -> None:
        desk.decide("10.00", group=RICH_GROUP)
        runs = FakeBacktestStore()
        queued = enqueue_backtest(backtest_of(tightened(), *EVER, "admin"), store=runs)

        class Broken(FakeDecisionHistory):
            def batches(self, start: datetime, end: datetime, *, batch_size: int) -> Iterator[Any]:
                raise ConnectionError("the database went away")
                yield  # a generator, as the real one

        run = work_next_backtest(store=runs, history=Broken(store), holder="w", policy=BacktestPolicy())

        assert run is not None and run.id == queued.id
        failed = get_backtest(queued.id, store=runs)
        assert (failed.status, failed.error) == ("failed", "ConnectionError: the database went away")
