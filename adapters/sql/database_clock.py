"""The database's clock: the one time every instance on a database shares (conventions §15).

PostgreSQL answers `clock_timestamp()` (the time at the moment of the call, not the transaction's start,
so a time read after a lock wait is after the wait). SQLite is a file on this host: the host's clock is
the database's clock, shared by every process that opens the file."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, text

from creditctl.ports.clock import Clock

_PG_NOW = text("SELECT clock_timestamp()")


def database_time(conn: Connection) -> datetime:
    """The database's time now, on `conn` (inside its transaction if one is open)."""
    if conn.dialect.name == "postgresql":
        value: datetime = conn.execute(_PG_NOW).scalar_one()
        return value.astimezone(UTC)
    return datetime.now(UTC)  # SQLite: the host clock is the database clock


class SqlDatabaseClock:
    """The database's time outside any transaction (before an upstream call, for a lease).

    `override` stands in for the database's clock in tests that move time by hand; every instance of
    such a test shares the one override, as instances share one database server."""

    def __init__(self, engine: Engine, override: Clock | None = None) -> None:
        self._engine = engine
        self._override = override

    def now(self) -> datetime:
        if self._override is not None:
            return self._override.now()
        if self._engine.dialect.name != "postgresql":
            return datetime.now(UTC)  # SQLite: the host clock is the database clock
        with self._engine.connect() as conn:
            value = database_time(conn)
            conn.rollback()
        return value
