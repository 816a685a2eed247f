"""Backtest jobs on SQLite and PostgreSQL: job loops in threads claim each queued run once (SKIP LOCKED on
PostgreSQL, the write lock on SQLite), a run whose lease ran out ends as failed and its worker is fenced
off, old runs are pruned with their changed orders; the migration carries old runs over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import DateTime, column, create_engine, func, insert, select, table, update

from adapters.cli.backtest_jobs import run_queued
from adapters.fake.clock import FakeClock
from adapters.sql.migrate import upgrade
from adapters.sql.tables import backtest_changes, backtest_runs
from creditctl.domain.backtest import BacktestRun
from creditctl.ports.backtests import BacktestStore
from creditctl.services.backtest import backtest_of, enqueue_backtest, get_backtest, run_backtest
from creditctl.services.backtest_jobs import (
    fail_stopped_backtests,
    prune_backtests,
    work_next_backtest,
)
from creditctl.services.backtest_replay import BacktestPolicy
from creditctl.services.context import AppContext
from rules import default_rule_set_document
from tests.adapters.concurrency import all_at_once
from tests.adapters.test_backtest_on_sql import decide_at
from tests.adapters.test_migrations import fresh_postgres_url, fresh_sqlite_url, fresh_url  # noqa: F401

pytestmark = pytest.mark.adapters
EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


@pytest.fixture(params=["context", pytest.param("pg_context", marks=pytest.mark.postgres)])
def ctx(request: pytest.FixtureRequest) -> AppContext:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def tightened() -> dict[str, Any]:
    document = default_rule_set_document()
    document["params"] = {**document.get("params", {}), "single_order_review_amount": "1000.00"}
    return document


def wired(ctx: AppContext) -> tuple[BacktestStore, Any]:
    assert ctx.backtests is not None and ctx.decision_history is not None
    return ctx.backtests, ctx.decision_history


def enqueue(ctx: AppContext) -> BacktestRun:
    store, _ = wired(ctx)
    return enqueue_backtest(backtest_of(tightened(), *EVER, "test"), store=store)


def change_rows(ctx: AppContext, run_id: str) -> int:
    engine = ctx.backtests._engine  # type: ignore[union-attr]
    with engine.connect() as conn:
        stmt = select(func.count()).select_from(backtest_changes).where(backtest_changes.c.run_id == run_id)
        return int(conn.execute(stmt).scalar_one())


class TestClaims:
    def test_two_job_loops_claiming_one_run_at_once_one_runs_it(
        self, ctx: AppContext, clock: FakeClock
    ) -> None:
        decide_at(ctx, clock, ["500.00", "2000.00", "3000.00"])
        store, history = wired(ctx)
        for _ in range(10):  # ten races, each over one queued run
            queued = enqueue(ctx)

            results = all_at_once(
                2,
                lambda i: work_next_backtest(
                    store=store, history=history, holder=f"loop-{i}", policy=BacktestPolicy()
                ),
            )

            assert [r.error for r in results] == [None, None]
            ran = [(i, r.value) for i, r in enumerate(results) if r.value is not None]
            assert len(ran) == 1, ran  # one claimed it; the other found nothing queued
            winner, run = ran[0]
            assert run.id == queued.id
            stored = get_backtest(queued.id, store=store)
            assert (stored.status, stored.lease_holder) == ("succeeded", f"loop-{winner}")
            assert (stored.decisions, stored.changed, change_rows(ctx, queued.id)) == (3, 2, 2)

    def test_queued_runs_spread_over_two_job_loops_each_run_once_oldest_first(
        self, ctx: AppContext, clock: FakeClock
    ) -> None:
        decide_at(ctx, clock, ["500.00", "2000.00"])
        queued = []
        for _ in range(6):
            clock.advance(1)
            queued.append(enqueue(ctx).id)

        results = all_at_once(2, lambda i: [r.id for r in run_queued(ctx, holder=f"loop-{i}")])

        assert [r.error for r in results] == [None, None]
        first, second = (r.value for r in results)
        assert sorted(first + second) == sorted(queued) and not set(first) & set(second)
        assert first == sorted(first, key=queued.index) and second == sorted(second, key=queued.index)
        store, _ = wired(ctx)
        assert {get_backtest(i, store=store).status for i in queued} == {"succeeded"}


class TestLeases:
    def test_a_run_whose_lease_ran_out_ends_failed_and_its_worker_is_fenced_off(
        self, ctx: AppContext, clock: FakeClock
    ) -> None:
        decide_at(ctx, clock, ["500.00", "2000.00"])
        store, _ = wired(ctx)
        queued = enqueue(ctx)
        now = store.now()
        run = store.claim("dies-halfway", now, now + timedelta(seconds=60))
        assert run is not None and run.id == queued.id
        run.total, run.decisions = 2, 1
        assert store.progress(run)  # alive: its progress is stored and its lease renewed
        assert fail_stopped_backtests(store=store) == []

        clock.advance(61)
        assert fail_stopped_backtests(store=store) == [run.id]

        failed = get_backtest(run.id, store=store)
        assert (failed.status, failed.finished_at) == ("failed", clock.now())
        assert failed.error is not None and failed.error.startswith("worker stopped")
        assert failed.progress.replayed == 1  # what it had stored before it stopped
        run.decisions, run.status = 2, "succeeded"
        assert not store.progress(run) and not store.finish(run)  # too late: the run is not its any more
        assert get_backtest(run.id, store=store).status == "failed"
        assert fail_stopped_backtests(store=store) == []  # ended once

    def test_a_synchronous_run_holds_a_lease_too(self, ctx: AppContext, clock: FakeClock) -> None:
        decide_at(ctx, clock, ["500.00"])
        store, history = wired(ctx)

        run = run_backtest(
            backtest_of(tightened(), *EVER, "cli"), history=history, store=store, holder="cli:1"
        )

        stored = get_backtest(run.id, store=store)
        assert (stored.status, stored.lease_holder, stored.started_at) == ("succeeded", "cli:1", clock.now())
        assert stored.document == tightened()  # the document replayed is kept with the run


class TestPrune:
    def test_runs_ended_before_the_retention_go_with_their_changes_the_others_stay(
        self, ctx: AppContext, clock: FakeClock
    ) -> None:
        decide_at(ctx, clock, ["500.00", "2000.00", "3000.00"])
        store, history = wired(ctx)
        policy = BacktestPolicy(retention_s=30 * 86400)
        old = run_backtest(backtest_of(tightened(), *EVER, "t"), history=history, store=store)
        still_queued = enqueue(ctx)
        clock.advance(10 * 86400)
        recent = run_backtest(backtest_of(tightened(), *EVER, "t"), history=history, store=store)
        clock.advance(20 * 86400 - 1)
        assert prune_backtests(store=store, policy=policy) == 0  # 30 days less a second: kept

        clock.advance(2)
        assert prune_backtests(store=store, policy=policy) == 1

        assert store.get(old.id) is None and change_rows(ctx, old.id) == 0
        assert get_backtest(recent.id, store=store).status == "succeeded" and change_rows(ctx, recent.id) == 2
        assert get_backtest(still_queued.id, store=store).status == "queued"  # not ended: never pruned


class TestMigration:
    def test_old_runs_done_become_succeeded_and_ones_left_running_end_as_failed(
        self,
        fresh_url: str,  # noqa: F811
    ) -> None:
        upgrade(fresh_url, "0013")
        then = datetime(2026, 12, 1, tzinfo=UTC)
        legacy = table(  # the table as 0013 has it
            "backtest_runs",
            *(column(name) for name in ("id", "status", "requested_by", "rule_set_name", "summary")),
            *(column(name, DateTime(timezone=True)) for name in ("period_from", "period_to", "created_at")),
            column("finished_at", DateTime(timezone=True)),
        )
        row = {"requested_by": "a", "rule_set_name": "d", "period_from": then, "period_to": then}
        summary = '{"changed":0,"decisions":5,"error":null}'
        engine = create_engine(fresh_url)
        try:
            with engine.begin() as conn:
                conn.execute(
                    insert(legacy),
                    [
                        row | {"id": "done-1", "status": "done", "created_at": then, "finished_at": then},
                        row | {"id": "cut-1", "status": "running", "created_at": then, "finished_at": None},
                    ],
                )
                conn.execute(update(legacy).values(summary=summary))

            upgrade(fresh_url)

            with engine.connect() as conn:
                rows = {r.id: r for r in conn.execute(select(backtest_runs))}
        finally:
            engine.dispose()
        assert rows["done-1"].status == "succeeded" and rows["done-1"].finished_at == then
        cut = rows["cut-1"]
        assert cut.status == "failed" and cut.finished_at is not None and cut.finished_at > then
        assert cut.summary["error"].startswith("interrupted") and cut.summary["decisions"] == 5
