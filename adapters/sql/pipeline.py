"""Batched units of work on PostgreSQL: psycopg 3's pipeline mode under SQLAlchemy.

In pipeline mode psycopg sends a statement without waiting for its answer; the answers are collected at
the next sync. A write whose answer nobody reads (INSERT, UPDATE or DELETE without RETURNING) can then
travel with the COMMIT: a decision's writes and its commit take one round trip, and the account's row
lock is released one round trip after the last read instead of one round trip per write.

A read must be answered before SQLAlchemy looks at its cursor (it reads the description right after
executing), so the pipeline is synced right after any statement that returns rows or whose rowcount is
asked for: reads in a batched unit cost what they cost outside one, and the BEGIN psycopg queues travels
with the first of them.

What changes for the caller is when a write's failure is seen: at the next read or at commit, and then
nothing of the transaction is kept (PostgreSQL skips everything after the failure up to the sync)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from weakref import WeakSet

from psycopg import Error
from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import ExceptionContext, ExecutionContext
from sqlalchemy.exc import DBAPIError, StatementError

PIPELINE = "creditctl.pipeline"  # in Connection.info while a batched unit is open: its psycopg Pipeline
_TOLD = "creditctl.pipeline.told"  # constraint name -> the exception a violation of it is told as
_WRITES = ("INSERT", "UPDATE", "DELETE")
_LISTENING: WeakSet[Engine] = WeakSet()  # engines whose batched units answer reads at once
_LISTENING_LOCK = threading.Lock()


def _answer_reads(
    conn: Connection,
    _cursor: Any,
    statement: str,
    _parameters: Any,
    context: ExecutionContext | None,
    _executemany: bool,
) -> None:
    """Sync a batched unit's pipeline after every statement whose answer is read (see the module)."""
    pipeline = conn.info.get(PIPELINE)
    if pipeline is not None and _answer_is_read(statement, context):
        pipeline.sync()


def _tell_violation(context: ExceptionContext) -> None:
    """A queued write's failure reaches the caller at whatever statement or commit follows it: a
    violation the unit named is told as its own exception wherever it surfaces."""
    conn = context.connection
    if conn is None or context.is_disconnect or context.sqlalchemy_exception is None:
        return  # (the info of a connection that died cannot be read, and nothing in it matters now)
    if PIPELINE not in conn.info:
        return
    told = conn.info.get(_TOLD, {}).get(violated_constraint(context.sqlalchemy_exception))
    if told is not None:
        raise told() from context.original_exception


def told_exception(conn: Connection, exc: Error) -> Exception | None:
    """The exception a batched unit named for the constraint `exc` violated (None: not named, or no
    batch open)."""
    told = conn.info.get(_TOLD)
    exception = told.get(getattr(exc.diag, "constraint_name", None)) if told else None
    return exception() if exception is not None else None


def _answer_is_read(statement: str, context: ExecutionContext | None) -> bool:
    if context is None or context.execution_options.get("preserve_rowcount"):
        return True
    compiled = context.compiled
    if compiled is not None and not context.is_text:
        if not (context.isinsert or context.isupdate or context.isdelete):
            return True
        return bool(getattr(compiled, "effective_returning", None))
    return not statement.lstrip()[:6].upper().startswith(_WRITES) or "RETURNING" in statement.upper()


@dataclass(frozen=True, slots=True)
class Batch:
    """An open batch: psycopg's pipeline context, and the connection's info dict as it was at the start
    (Connection.info itself raises once SQLAlchemy has invalidated a connection that died)."""

    pipeline_mode: Any
    info: dict[Any, Any]
    driver: Any  # the psycopg connection

    def forget(self) -> dict[str, Callable[[], Exception]]:
        self.info.pop(PIPELINE, None)
        told: dict[str, Callable[[], Exception]] = self.info.pop(_TOLD, {})
        return told


def begin_batch(conn: Connection, told: Mapping[str, Callable[[], Exception]]) -> Batch:
    """Put the connection's psycopg connection in pipeline mode. `told`: constraints whose violation,
    wherever in the unit it surfaces, is raised as the mapped exception."""
    if conn.engine not in _LISTENING:
        with _LISTENING_LOCK:
            if conn.engine not in _LISTENING:
                event.listen(conn.engine, "after_cursor_execute", _answer_reads)
                event.listen(conn.engine, "handle_error", _tell_violation)
                _LISTENING.add(conn.engine)
    driver = conn.connection.driver_connection
    assert driver is not None
    pipeline_mode = driver.pipeline()
    info = conn.info
    info[PIPELINE] = pipeline_mode.__enter__()
    info[_TOLD] = dict(told)
    return Batch(pipeline_mode, info, driver)


def commit_batch(batch: Batch) -> None:
    """Queue COMMIT after the writes and leave pipeline mode: the writes, the COMMIT and the Sync that
    ends the pipeline are one round trip. SQLAlchemy's own commit() afterwards finds the driver idle
    and sends nothing. A failure is raised as SQLAlchemy raises the driver's errors (or as `told`)."""
    told = batch.forget()
    failure: Error | None = None
    try:  # queuing it may already collect an earlier write's failure; the pipeline is left either way
        batch.driver.execute("COMMIT")
    except Error as exc:
        failure = exc
    try:
        batch.pipeline_mode.__exit__(None, None, None)
    except Error as exc:
        failure = failure or exc
    if failure is not None:  # nothing was committed; the caller's rollback ends the aborted transaction
        exception = told.get(getattr(failure.diag, "constraint_name", None))
        if exception is not None:
            raise exception() from failure
        raise DBAPIError.instance("COMMIT", None, failure, Error) from failure


def abandon_batch(conn: Connection, batch: Batch) -> None:
    """Leave a batch that will not be committed: what is queued is sent and answered, then rolled back.
    Its failures are not raised: nothing of the batch is kept, and the one that made the caller give up
    (a taken order id, say) was told already."""
    batch.forget()
    with contextlib.suppress(Error):
        batch.pipeline_mode.__exit__(None, None, None)
    # Through SQLAlchemy, so that a connection that died is invalidated and the error is one it raises.
    conn.rollback()


def violated_constraint(exc: StatementError | DBAPIError) -> str | None:
    """The name of the constraint a failed write violated, as PostgreSQL reports it."""
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None)
