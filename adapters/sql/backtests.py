"""Backtest runs and their changed orders on SQL: each call a short transaction of its own.

Changes are kept in a table rather than a temp file: any instance on the database can page or
export them, they outlive a restart, and an auditor can read a run long after it ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, Row, insert, select, update

from adapters.sql.idempotency import claim_before_commit
from adapters.sql.tables import backtest_changes, backtest_runs
from creditctl.domain.backtest import BacktestRun, ChangedOrder
from creditctl.domain.decision import Reason
from creditctl.domain.money import from_fen, to_fen

_r = backtest_runs.c
_c = backtest_changes.c


class SqlBacktestStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def start(self, run: BacktestRun) -> None:
        """The run's first row; a request's Idempotency-Key record goes in with it, so a retry (or a twin
        sent at the same time) never starts a second run. A run is many transactions: one that fails on
        the way forgets the record (the web edge), one cut short by a crash keeps it, without an answer."""
        with self._engine.begin() as conn:
            conn.execute(insert(backtest_runs), _run_values(run) | {"id": run.id})
            claim = claim_before_commit(conn)
        if claim is not None:
            claim.written = True

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

    def finish(self, run: BacktestRun) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(backtest_runs).where(_r.id == run.id), _run_values(run))

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
