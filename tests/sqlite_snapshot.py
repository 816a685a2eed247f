"""A SQLite database put back as it was: for hypothesis state machines, whose runs must all meet the
same state (the same draws must meet the same answers), whatever an earlier run left behind."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine


class Snapshot:
    """The whole SQLite database as it is now, to put back later (sqlite3's online backup)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.copy = sqlite3.connect(":memory:")
        with self._live() as live:
            live.backup(self.copy)

    def restore(self) -> None:
        with self._live() as live:
            self.copy.backup(live)

    @contextmanager
    def _live(self) -> Iterator[sqlite3.Connection]:
        with self.engine.connect() as conn:
            yield conn.connection.dbapi_connection  # type: ignore[misc]
