"""Backtest runs and their changed orders on SQL: each call a short transaction of its own.

Changes are kept in a table rather than a temp file: any instance on the database can page or
export them, they outlive a restart, and an auditor can read a run long after it ended.

Runs are a queue: a claim takes the oldest queued run with FOR UPDATE SKIP LOCKED on PostgreSQL (two
workers claiming at once never take the same run, nor wait for each other), under SQLite's write lock
(every transaction is BEGIN IMMEDIATE) there. Progress and the end are fenced by the lease: written only
while the run is running under the writer's lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row, delete, insert, select, update

from adapters.sql.database_clock import SqlDatabaseClock
from adapters.sql.idempotency import claim_before_commit
from adapters.sql.tables import backtest_changes, backtest_runs
from creditctl.domain.backtest import BacktestRun, ChangedOrder, RunStatus
from creditctl.domain.decision import Reason
from creditctl.domain.money import from_fen, to_fen

_r = backtest_runs.c
_c = backtest_changes.c


class SqlBacktestStore:
    def __init__(self, engine: Engine, clock: SqlDatabaseClock | None = None) -> None:
        self._engine = engine
        self._clock = clock or SqlDatabaseClock(engine)

    def now(self) -> datetime:
        return self._clock.now()

    def start(self, run: BacktestRun) -> None:
        """The run's first row; a request's Idempotency-Key record goes in with it, so a retry (or a twin
        sent at the same time) never starts a second run. A run is many transactions: one that fails on
        the way forgets the record (the web edge), one cut short by a crash keeps it, without an answer."""
        with self._engine.begin() as conn:
            conn.execute(insert(backtest_runs), _run_values(run) | _job_values(run) | {"id": run.id})
            claim = claim_before_commit(conn)
        if claim is not None:
            claim.written = True

    def claim(self, holder: str, now: datetime, lease_until: datetime) -> BacktestRun | None:
        # Two statements, not UPDATE ... WHERE id IN (SELECT ... LIMIT 1 FOR UPDATE SKIP LOCKED): PostgreSQL
        # may run such a subquery again for every row the UPDATE scans, and claim every queued run at once.
        oldest = (
            select(_r.id)
            .where(_r.status == RunStatus.QUEUED)
            .order_by(_r.created_at, _r.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        with self._engine.begin() as conn:
            run_id = conn.execute(oldest).scalar()
            if run_id is None:
                return None
            row = conn.execute(
                update(backtest_runs)
                .where(_r.id == run_id, _r.status == RunStatus.QUEUED)
                .values(
                    status=RunStatus.RUNNING, started_at=now, lease_holder=holder, lease_until=lease_until
                )
                .returning(*backtest_runs.c)
            ).one()
        return _to_run(row)

    def progress(self, run: BacktestRun) -> bool:
        values = {"summary": run.summary(), "total": run.total, "lease_until": run.lease_until}
        return self._fenced(run, values)

    def add_changes(self, run_id: str, changes: Sequence[ChangedOrder]) -> None:
        rows = [
            {
                "run_id": run_id,
                "seq": c.seq,
                "order_id": c.order_id,
                "customer_code": c.customer_code,
                "sale_group_code": c.sale_group_code,
                "amount_fen": to_fen(c.amount),
                "outcome_before": c.before,
                "outcome_after": c.after,
                "reasons": [{"rule": r.rule, "reason": r.reason, "message": r.message} for r in c.reasons],
            }
            for c in changes
        ]
        with self._engine.begin() as conn:
            conn.execute(insert(backtest_changes), rows)

    def finish(self, run: BacktestRun) -> bool:
        return self._fenced(run, _run_values(run) | {"total": run.total})

    def fail_stopped(self, now: datetime, error: str) -> list[str]:
        stopped = (
            select(_r.id, _r.summary)
            .where(_r.status == RunStatus.RUNNING, _r.lease_until < now)
            .with_for_update(skip_locked=True)
        )
        with self._engine.begin() as conn:
            rows = conn.execute(stopped).all()
            for row in rows:
                summary = dict(row.summary or {}) | {"error": error}
                conn.execute(
                    update(backtest_runs)
                    .where(_r.id == row.id)
                    .values(status=RunStatus.FAILED, finished_at=now, summary=summary)
                )
        return [row.id for row in rows]

    def prune(self, ended_before: datetime) -> int:
        old = select(_r.id).where(_r.status.in_(RunStatus.ENDED), _r.finished_at < ended_before)
        with self._engine.begin() as conn:
            ids = conn.execute(old).scalars().all()
            if ids:
                conn.execute(delete(backtest_changes).where(_c.run_id.in_(ids)))
                conn.execute(delete(backtest_runs).where(_r.id.in_(ids)))
        return len(ids)

    def get(self, run_id: str) -> BacktestRun | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(backtest_runs).where(_r.id == run_id)).first()
        return None if row is None else _to_run(row)

    def changes(self, run_id: str, *, after_seq: int, limit: int) -> list[ChangedOrder]:
        stmt = (
            select(backtest_changes)
            .where(_c.run_id == run_id, _c.seq > after_seq)
            .order_by(_c.seq)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [_to_change(row) for row in conn.execute(stmt)]

    def _fenced(self, run: BacktestRun, values: dict[str, Any]) -> bool:
        """Write `values` if the run is still running under run.lease_holder's lease."""
        stmt = (
            update(backtest_runs)
            .where(
                _r.id == run.id,
                _r.status == RunStatus.RUNNING,
                _r.lease_holder == run.lease_holder,
            )
            .values(values)
        )
        with self._engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1


def _run_values(run: BacktestRun) -> dict[str, Any]:
    return {
        "status": run.status,
        "requested_by": run.requested_by,
        "rule_set_name": run.rule_set_name,
        "period_from": run.start,
        "period_to": run.end,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "summary": run.summary(),
    }


def _job_values(run: BacktestRun) -> dict[str, Any]:
    return {
        "rule_set": run.document,
        "started_at": run.started_at,
        "total": run.total,
        "lease_holder": run.lease_holder,
        "lease_until": run.lease_until,
    }


def _to_run(row: Row[Any]) -> BacktestRun:
    run = BacktestRun(
        id=row.id,
        rule_set_name=row.rule_set_name,
        start=row.period_from,
        end=row.period_to,
        requested_by=row.requested_by,
        created_at=row.created_at,
        status=row.status,
        finished_at=row.finished_at,
        document=row.rule_set,
        started_at=row.started_at,
        total=row.total,
        lease_holder=row.lease_holder,
        lease_until=row.lease_until,
    )
    if row.summary:
        run.load_summary(row.summary)
    return run


def _to_change(row: Row[Any]) -> ChangedOrder:
    return ChangedOrder(
        seq=row.seq,
        order_id=row.order_id,
        customer_code=row.customer_code,
        sale_group_code=row.sale_group_code,
        amount=from_fen(row.amount_fen),
        before=row.outcome_before,
        after=row.outcome_after,
        reasons=tuple(Reason(**r) for r in row.reasons),
    )
