"""Console sessions on SQL: one row per sign-in, deleted at sign-out, ignored once expired.

Expiry is by the database's clock, so every instance ends a session at the same moment."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, delete, insert, select

from adapters.sql.database_clock import SqlDatabaseClock
from adapters.sql.tables import console_sessions

_c = console_sessions.c


class SqlConsoleSessions:
    def __init__(self, engine: Engine, clock: SqlDatabaseClock) -> None:
        self._engine = engine
        self._clock = clock

    def open(self, id_hash: str, key_id: int, *, lifetime_s: float) -> None:
        now = self._clock.now()
        with self._engine.begin() as conn:
            conn.execute(delete(console_sessions).where(_c.expires_at <= now))
            conn.execute(
                insert(console_sessions).values(
                    id_hash=id_hash,
                    key_id=key_id,
                    created_at=now,
                    expires_at=now + timedelta(seconds=lifetime_s),
                )
            )

    def key_of(self, id_hash: str) -> int | None:
        stmt = select(_c.key_id).where(_c.id_hash == id_hash, _c.expires_at > self._clock.now())
        with self._engine.connect() as conn:
            return conn.execute(stmt).scalar_one_or_none()

    def close(self, id_hash: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(delete(console_sessions).where(_c.id_hash == id_hash))
