"""The balance upstream's shared up/down state: `upstream.down` and `upstream.up` once per transition.

Every instance records each fetch's outcome on one row, in the transaction that stores the shared report
(or its failure), so the event is written with the change that causes it. The row is updated before it is
read (a row lock on PostgreSQL, the write lock on SQLite): of instances failing at once, exactly one sees
the count reach the threshold while the state is still `up`. Only failures that say the upstream is not
answering count (not a customer's wrong password or a malformed answer); any stored answer resets it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import Connection, Engine, func, select, update

from adapters.sql.database_clock import SqlDatabaseClock, database_time
from adapters.sql.leases import ensure_row
from adapters.sql.outbox import SqlOutboxRepository
from adapters.sql.tables import balance_reports, upstream_status
from creditctl.ports.clock import Clock

UNAVAILABLE_CODES = frozenset({"SERVICE_UNAVAILABLE", "UPSTREAM_TIMEOUT", "CIRCUIT_OPEN"})
FAILURES_TO_DOWN = 3  # as the circuit breaker: three consecutive failures
NAME = "balances"
_s = upstream_status.c
_b = balance_reports.c


def record_failure(conn: Connection, code: str, *, name: str = NAME) -> None:
    """Count an unavailable-upstream failure; the one that reaches the threshold writes upstream.down."""
    if code not in UNAVAILABLE_CODES:
        return
    ensure_row(conn, upstream_status, {"name": name, "state": "up", "consecutive_failures": 0})
    conn.execute(
        update(upstream_status)
        .where(_s.name == name)
        .values(consecutive_failures=_s.consecutive_failures + 1, last_error=code)
    )
    row = conn.execute(select(upstream_status).where(_s.name == name)).one()
    if row.state == "up" and row.consecutive_failures >= FAILURES_TO_DOWN:
        now = database_time(conn)
        conn.execute(update(upstream_status).where(_s.name == name).values(state="down", changed_at=now))
        SqlOutboxRepository(conn).add(
            event_id=uuid4().hex,
            topic="upstream.down",
            payload={"upstream": name, "error_code": code, "consecutive_failures": row.consecutive_failures},
            now=now,
        )


def record_success(conn: Connection, *, name: str = NAME) -> None:
    """Reset the count; the first answer after `down` writes upstream.up. No statement but one when up."""
    changed = conn.execute(
        update(upstream_status)
        .where(_s.name == name, (_s.consecutive_failures > 0) | (_s.state == "down"))
        .values(consecutive_failures=0)
    ).rowcount
    if not changed:
        return
    row = conn.execute(select(upstream_status).where(_s.name == name)).one()
    if row.state == "down":
        now = database_time(conn)
        conn.execute(update(upstream_status).where(_s.name == name).values(state="up", changed_at=now))
        SqlOutboxRepository(conn).add(
            event_id=uuid4().hex,
            topic="upstream.up",
            payload={"upstream": name, "down_since": row.changed_at.isoformat() if row.changed_at else None},
            now=now,
        )


class SqlSharedUpstreamStatus:
    """The upstream as every instance on the database sees it, for /readyz: the shared up/down state and
    the last outcome of any instance's fetch (the newest stored answer or failure of the shared balance
    reports), with its age on the database's clock. One statement."""

    def __init__(self, engine: Engine, *, name: str = NAME, database_clock: Clock | None = None) -> None:
        self._engine = engine
        self._name = name
        self._override = database_clock  # tests that move the database's time by hand

    def __call__(self) -> dict[str, Any]:
        outcomes = select(
            func.max(_b.fetched_at).label("last_success_at"), func.max(_b.error_at).label("last_failure_at")
        ).subquery()
        read_now = self._override is None and self._engine.dialect.name == "postgresql"
        columns = [outcomes, _s.state, _s.consecutive_failures, _s.last_error, _s.changed_at]
        if read_now:
            columns.append(func.clock_timestamp().label("db_now"))
        statement = select(*columns).select_from(outcomes.outerjoin(upstream_status, _s.name == self._name))
        with self._engine.connect() as conn:
            row = conn.execute(statement).one()
            conn.rollback()
        # PostgreSQL's time came with the row; a test's override, or SQLite (the host's clock is its clock),
        # from the database clock.
        database = SqlDatabaseClock(self._engine, self._override)
        now = row.db_now.astimezone(UTC) if read_now else database.now()
        return shared_status(row, now)


def shared_status(row: Any, now: datetime) -> dict[str, Any]:
    """The /readyz view of one row of SqlSharedUpstreamStatus's statement."""
    success, failure = row.last_success_at, row.last_failure_at
    if success is None and failure is None:
        outcome, at = None, None
    elif failure is not None and (success is None or failure >= success):
        outcome, at = "failure", failure
    else:
        outcome, at = "success", success
    return {
        "scope": "every instance (from the database)",
        "state": row.state or "up",  # no row yet: nothing has failed
        "state_since": row.changed_at.isoformat() if row.changed_at else None,
        "consecutive_failures": row.consecutive_failures or 0,
        "last_error": row.last_error,
        "last_outcome": outcome,
        "last_outcome_at": at.isoformat() if at else None,
        "last_outcome_age_s": round(max(0.0, (now - at).total_seconds()), 1) if at else None,
    }
