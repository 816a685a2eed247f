"""The decision's statements on PostgreSQL, run on psycopg's cursor with SQLAlchemy out of the way.

SQLAlchemy compiles each statement once here: its SQL text, the bind processors of its parameters' types
and the result processors of its columns (UtcDateTime, ExactJson: the same conversions as through the
ORM-less Core path). What is skipped is SQLAlchemy's per-execution work (execution context, events,
result object), measured at about three times the driver's own execute in CPU, some 80 to 100 µs a
statement on this machine (`bench/driver_statement_cost.py`): with five statements a decision, about a
fifth of its CPU.

What SQLAlchemy did besides is kept: its transaction is begun first (so its commit() and rollback()
still reach the connection), and the driver's errors are raised as SQLAlchemy raises them, a connection
that died invalidated. In a batched unit the statements go to the batch instead (adapters.sql.pipeline:
libpq's pipeline mode), which sends them as $n text under a prepared name computed here."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from psycopg import Error
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement

from adapters.sql.pipeline import batch_of

_DIALECT = postgresql.dialect(paramstyle="pyformat")  # type: ignore[no-untyped-call]
_PYFORMAT = re.compile(r"%%|%\((\w+)\)s")
Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class DriverStatement:
    """One compiled statement: SQL text for psycopg, a processor per bound parameter, and the names and
    processors of the columns it returns (none for a write)."""

    sql: str
    binds: tuple[tuple[str, Processor], ...]
    columns: tuple[tuple[str, Processor], ...]
    constants: tuple[tuple[str, Any], ...] = ()  # parameters the statement carries itself, processed
    # For libpq (adapters.sql.pipeline): the text with $n placeholders, a name to prepare it under, and
    # for each $n the parameter's name and processor (or its constant, already processed).
    wire_sql: bytes = field(init=False)
    wire_name: bytes = field(init=False)
    wire_order: tuple[tuple[str, Processor, bool, Any], ...] = field(init=False)

    def __post_init__(self) -> None:
        processors, constants = dict(self.binds), dict(self.constants)
        order: list[str] = []

        def placeholder(match: re.Match[str]) -> str:
            if match.group(0) == "%%":
                return "%"
            name = match.group(1)
            if name not in order:
                order.append(name)
            return f"${order.index(name) + 1}"

        wire = _PYFORMAT.sub(placeholder, self.sql).encode()
        object.__setattr__(self, "wire_sql", wire)
        object.__setattr__(self, "wire_name", b"creditctl_" + hashlib.sha256(wire).hexdigest()[:24].encode())
        object.__setattr__(
            self,
            "wire_order",
            tuple((n, processors.get(n), n in constants, constants.get(n)) for n in order),
        )

    def wire_params(self, values: Mapping[str, Any]) -> list[Any]:
        """The parameters in $n order, processed as `params` processes them."""
        return [
            constant if is_constant else (p(values[n]) if p is not None else values[n])
            for n, p, is_constant, constant in self.wire_order
        ]

    @classmethod
    def of(cls, stmt: ClauseElement, keys: Iterable[str] | None = None) -> DriverStatement:
        """`keys`: the parameters an INSERT or UPDATE sets (the columns it writes); None: its own."""
        compiled = stmt.compile(dialect=_DIALECT, column_keys=list(keys) if keys is not None else None)
        binds, constants = [], []
        for bind, name in compiled.bind_names.items():
            processor = bind.type.bind_processor(_DIALECT)
            if bind.required or (bind.value is None and bind.callable is None):  # given at execution
                binds.append((name, processor))
            else:  # a literal of the statement's own (a status compared, say)
                value = bind.effective_value
                constants.append((name, processor(value) if processor is not None else value))
        missing = {m for m in re.findall(r"%\((\w+)\)s", compiled.string)} - {n for n, _ in binds + constants}
        assert not missing, f"parameters not accounted for: {missing}"
        columns = tuple(
            (name, type_.result_processor(_DIALECT, None))
            for _key, name, _objects, type_ in compiled._result_columns  # (no public form)
        )
        return cls(compiled.string, tuple(binds), columns, tuple(constants))

    def params(self, values: Mapping[str, Any]) -> dict[str, Any]:
        params = {n: (p(values[n]) if p is not None else values[n]) for n, p in self.binds}
        params.update(self.constants)
        return params

    def row(self, raw: tuple[Any, ...]) -> SimpleNamespace:
        return SimpleNamespace(
            **{n: (p(v) if p is not None else v) for (n, p), v in zip(self.columns, raw, strict=True)}
        )


def execute(conn: Connection, statement: DriverStatement, values: Mapping[str, Any]) -> None:
    """Run the write `statement` with `values`: queued in a batched unit (sent with the next read or
    the commit), else on the connection's psycopg cursor."""
    batch = batch_of(conn)
    if batch is not None:
        batch.write(statement, values)
        return
    _run(conn, statement, values)


def _run(conn: Connection, statement: DriverStatement, values: Mapping[str, Any]) -> Any:
    """`statement` on the connection's psycopg cursor; returns the cursor."""
    if not conn.in_transaction():
        conn.begin()  # SQLAlchemy's transaction: its commit() and rollback() must reach this one
    driver = conn.connection.driver_connection
    assert driver is not None
    params = statement.params(values)
    cursor = driver.cursor()
    try:
        cursor.execute(statement.sql, params)
    except Error as exc:
        raise _raised(conn, statement, params, exc) from exc
    return cursor


def fetch_one(
    conn: Connection, statement: DriverStatement, values: Mapping[str, Any]
) -> SimpleNamespace | None:
    """The first row `statement` returns, its columns by name (None: no row)."""
    batch = batch_of(conn)
    if batch is not None:  # with the BEGIN and what is queued: one round trip
        found = batch.read(statement, values)
        return None if found is None else statement.row(found)
    cursor = _run(conn, statement, values)
    try:
        raw = cursor.fetchone()
    except Error as exc:
        raise _raised(conn, statement, values, exc) from exc
    return None if raw is None else statement.row(raw)


def _raised(conn: Connection, statement: DriverStatement, params: Any, exc: Error) -> BaseException:
    dead = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, None)
    if dead:
        conn.invalidate(exc)
    return DBAPIError.instance(statement.sql, params, exc, Error, connection_invalidated=dead)
