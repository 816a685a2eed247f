"""Migration 0019's indexes serve the queries they were kept for, in prepared statements' generic plans.

An approved decision is not written into the review queue's index (partial, WHERE state = 'deferred'; it
serves the due deferrals too, so `ix_decisions_deferred` is gone), and `ix_decisions_order` is gone: the
unique order id, order_id first, finds an order id across customers. A partial index is of use to a query
only when the planner can prove its condition from the query's own WHERE; with 'deferred' sent as a bound
parameter it cannot in a generic plan (what psycopg's prepared statements get after a few runs), and
falls back on ix_decisions_decided, filtering every decision. So each query is run here as a prepared
statement under plan_cache_mode = force_generic_plan, and the index it was meant to use must have been
scanned (pg_stat_get_xact_numscans)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, text

from adapters.sql.decisions import SqlDecisionRepository
from creditctl.ports.repositories import QueueQuery

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _generic_plan_scans(engine: Engine, call: Callable[[SqlDecisionRepository], Any], index: str) -> int:
    """Capture the statement `call` sends, run it again as a prepared statement with a generic plan,
    and count the scans of `index` it made."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    with engine.connect() as conn:
        event.listen(conn, "before_cursor_execute", capture)
        call(SqlDecisionRepository(conn))
        event.remove(conn, "before_cursor_execute", capture)
        conn.rollback()
        assert len(sent) == 1, sent
        return _scans(conn, *sent[0], index)


def _scans(conn: Connection, statement: str, parameters: Any, index: str) -> int:
    """Within one transaction (PostgreSQL 15 counts since its last flush of statistics, which happens
    between transactions only: the difference is this statement's)."""
    count = text("SELECT pg_stat_get_xact_numscans(CAST(:ix AS regclass))")
    with conn.begin():
        conn.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
        driver = conn.connection.driver_connection
        assert driver is not None
        before = conn.execute(count, {"ix": index}).scalar_one()
        driver.execute(statement, parameters, prepare=True).fetchall()
        return int(conn.execute(count, {"ix": index}).scalar_one() - before)


class TestDeferredOnlyIndexes:
    def test_the_review_queue_reads_the_deferred_only_index(self, postgres_engine: Engine) -> None:
        scans = _generic_plan_scans(
            postgres_engine, lambda r: r.queue(QueueQuery(now=NOW), limit=50), "ix_decisions_queue"
        )
        assert scans >= 1

    def test_due_deferrals_read_the_deferred_only_index(self, postgres_engine: Engine) -> None:
        scans = _generic_plan_scans(
            postgres_engine, lambda r: r.deferred(due_before=NOW), "ix_decisions_queue"
        )
        assert scans >= 1

    def test_an_approved_decision_is_not_in_the_deferred_only_index(self, postgres_engine: Engine) -> None:
        with postgres_engine.connect() as conn:
            definition = conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_decisions_queue'")
            ).scalar_one()
        assert definition.endswith("WHERE ((state)::text = 'deferred'::text)")


class TestOrderIdAcrossCustomers:
    def test_finding_an_order_id_reads_the_unique_order_id_index(self, postgres_engine: Engine) -> None:
        scans = _generic_plan_scans(
            postgres_engine, lambda r: r.find("order-x", None), "uq_decisions_customer_order"
        )
        assert scans >= 1
