"""The balance upstream's shared up/down state: `upstream.down` and `upstream.up` once per transition.

Every instance records each fetch's outcome on one row, in the transaction that stores the shared report
(or its failure), so the event is written with the change that causes it. The row is updated before it is
read (a row lock on PostgreSQL, the write lock on SQLite): of instances failing at once, exactly one sees
the count reach the threshold while the state is still `up`. Only failures that say the upstream is not
answering count (not a customer's wrong password or a malformed answer); any stored answer resets it."""

from __future__ import annotations

from uuid import uuid4

from sqlalchemy import Connection, select, update

from adapters.sql.database_clock import database_time
from adapters.sql.leases import ensure_row
from adapters.sql.outbox import SqlOutboxRepository
from adapters.sql.tables import upstream_status

UNAVAILABLE_CODES = frozenset({"SERVICE_UNAVAILABLE", "UPSTREAM_TIMEOUT", "CIRCUIT_OPEN"})
FAILURES_TO_DOWN = 3  # as the circuit breaker: three consecutive failures
NAME = "balances"
_s = upstream_status.c


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
