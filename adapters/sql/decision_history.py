"""Stored decisions streamed for backtests: a server-side cursor on PostgreSQL, a cursor on SQLite.

Only the columns a replay needs are read, and the facts come as their stored JSON text (the
service decodes them; ExactJson's per-row Decimal parsing is not needed for flat facts).
Neither database is locked for writers while a backtest reads: PostgreSQL reads from its MVCC
snapshot; on SQLite the engine begins every transaction IMMEDIATE (a write lock), so the read
runs on the raw connection in autocommit, where one SELECT is one WAL read snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy import Engine, Text, func, select, type_coerce

from adapters.sql.freshness import data_as_of
from adapters.sql.tables import credit_accounts, decisions
from creditctl.ports.clock import Clock
from creditctl.ports.decision_history import HistoryRow

_d = decisions.c
_a = credit_accounts.c
_COLUMNS = (
    _d.order_id,
    _d.customer_code,
    _d.sale_group_code,
    _d.amount_fen,
    _d.outcome,
    _d.state,
    type_coerce(_d.facts, Text()).label("facts"),
    _d.account_id,
)
_SQLITE = (
    "SELECT order_id, customer_code, sale_group_code, amount_fen, outcome, state, facts, account_id "
    "FROM decisions WHERE decided_at >= ? AND decided_at < ? ORDER BY decided_at, id"
)

_SQLITE_COUNT = "SELECT count(*) FROM decisions WHERE decided_at >= ? AND decided_at < ?"


class SqlDecisionHistory:
    def __init__(self, engine: Engine, *, clock: Clock | None = None) -> None:
        """`clock`: the primary's database clock when `engine` is the primary's; None: a replica's."""
        self._engine = engine
        self._clock = clock

    def as_of(self) -> datetime | None:
        return data_as_of(self._engine, self._clock)

    def batches(self, start: datetime, end: datetime, *, batch_size: int) -> Iterator[Sequence[HistoryRow]]:
        if self._engine.dialect.name == "sqlite":
            return self._sqlite(start, end, batch_size)
        return self._streamed(start, end, batch_size)

    def count(self, start: datetime, end: datetime) -> int:
        if self._engine.dialect.name == "sqlite":  # in autocommit, as the batches are read: no write lock
            raw = self._engine.raw_connection()
            try:
                cursor = raw.cursor()
                cursor.execute(_SQLITE_COUNT, (_sqlite_time(start), _sqlite_time(end)))
                (n,) = cursor.fetchone()
                cursor.close()
            finally:
                raw.close()
            return int(n)
        stmt = select(func.count()).select_from(decisions).where(_d.decided_at >= start, _d.decided_at < end)
        with self._engine.connect() as conn:
            n = conn.execute(stmt).scalar_one()
            conn.rollback()
        return int(n)

    def account_overrides(self) -> Mapping[int, Mapping[str, str]]:
        stmt = select(_a.id, _a.params).where(_a.params.is_not(None))
        with self._engine.connect() as conn:
            return {
                row.id: {name: str(value) for name, value in row.params.items()}
                for row in conn.execute(stmt)
                if row.params
            }

    def _streamed(self, start: datetime, end: datetime, batch_size: int) -> Iterator[Sequence[HistoryRow]]:
        stmt = (
            select(*_COLUMNS)
            .where(_d.decided_at >= start, _d.decided_at < end)
            .order_by(_d.decided_at, _d.id)
        )
        with self._engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(stmt)
            yield from result.partitions()

    def _sqlite(self, start: datetime, end: datetime, batch_size: int) -> Iterator[Sequence[HistoryRow]]:
        raw = self._engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute(_SQLITE, (_sqlite_time(start), _sqlite_time(end)))
            while batch := cursor.fetchmany(batch_size):
                yield batch
            cursor.close()
        finally:
            raw.close()


def _sqlite_time(value: datetime) -> str:
    """How SQLAlchemy's DateTime stores a UTC time on SQLite (naive, text, microseconds)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given for a backtest period")
    return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
