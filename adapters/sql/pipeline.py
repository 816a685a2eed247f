"""Batched units of work on PostgreSQL: the decision's statements in libpq's pipeline mode, two round trips.

A batched unit (UnitOfWork.batched()) holds its driver statements (adapters.sql.driver_statements) and
sends them itself, in libpq's pipeline mode through psycopg's `pgconn`:

- a read (the account's `SELECT ... FOR UPDATE`) goes out with the BEGIN and any write queued before it,
  and is answered at once: one round trip;
- a write (INSERT, UPDATE without RETURNING) is queued, not sent; at commit the queued writes, the COMMIT
  and the Sync go out together: one round trip, and the account's row lock is released one round trip
  after the read plus the evaluation in between.

Why not psycopg's own pipeline (`Connection.pipeline()`, used here before): its per-statement machinery
(a cursor, generators driven through the wait loop, result bookkeeping) cost about 60 µs of CPU a
statement under load, more than twice a plain execute (bench/cpu_split.py on bench.py's profile), on the
path every order takes. Here a statement costs its parameters' dump (psycopg's C Transformer), one libpq
call to queue it, and its result's status.

A statement another part of the unit runs through SQLAlchemy meanwhile (an outbox row, say) first sends
what is queued (before_cursor_execute), so statements reach the server in the order they were issued.
What changes for the caller is when a write's failure is seen: at the next read, statement or commit,
and then nothing of the transaction is kept (PostgreSQL skips everything after a failure up to the Sync;
the caller's rollback ends the aborted transaction). A violation of a constraint the unit named (the
unique order id) is raised as its exception wherever it surfaces. SQLite has no round trips to save and
keeps the plain path."""

from __future__ import annotations

import select
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias
from weakref import WeakSet

from psycopg import Connection as DriverConnection
from psycopg import Error, OperationalError, errors, pq
from psycopg.adapt import PyFormat, Transformer
from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DBAPIError, StatementError

PIPELINE = "creditctl.pipeline"  # in Connection.info while a batched unit is open: its Batch
# In a pooled connection's info (adapters.sql.engine): True if statements may be prepared on its server
# session, False behind a transaction pooler (absent: not prepared, the safe side).
PREPARE_ON_SERVER = "creditctl.prepare_on_server"
_LISTENING: WeakSet[Engine] = WeakSet()  # engines whose batched units send what is queued first
_LISTENING_LOCK = threading.Lock()
# In a pooled connection's info (it lives as long as the DB-API connection does): its _DriverState. Not a
# WeakKeyDictionary on the driver connection: the state's Transformers hold that connection, which then
# never left such a dictionary (every connection the pool ever replaced kept for good).
_STATE = "creditctl.pipeline.state"
_BEGIN, _COMMIT = b"BEGIN", b"COMMIT"
_SESSION_STATEMENTS = "SELECT name FROM pg_prepared_statements"
# A statement sent by a name the session does not have, or prepared under a name it already has.
_NOT_AS_BELIEVED = (errors.InvalidSqlStatementName, errors.DuplicatePreparedStatement)
_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)
_IDLE = pq.TransactionStatus.IDLE


class WireStatement:
    """What a batch needs of a statement (adapters.sql.driver_statements.DriverStatement provides it):
    its text with $n placeholders, a name to prepare it under, and its parameters in $n order."""

    wire_sql: bytes
    wire_name: bytes
    sql: str

    def wire_params(self, values: Mapping[str, Any]) -> Sequence[Any]:  # pragma: no cover - protocol
        raise NotImplementedError


Queued: TypeAlias = tuple[WireStatement, list[bytes | None]]  # a statement and its parameters, dumped
Expected: TypeAlias = WireStatement | bytes | tuple[bytes, bool]  # a statement, a command, a PREPARE
Failure: TypeAlias = tuple[Expected, Error]


class _DriverState:
    """Kept per psycopg connection: the statements prepared on its server session, and psycopg's
    Transformers (their dumper and loader caches) for its parameters and rows."""

    def __init__(self, driver: DriverConnection[Any]) -> None:
        self.driver = driver
        self.prepared: set[bytes] = set()
        self.dumper = Transformer(driver)
        self.loader = Transformer(driver)
        self.formats: dict[int, list[PyFormat]] = {}


class Batch:
    """An open batched unit on one psycopg connection: the writes queued and not yet sent."""

    def __init__(self, conn: Connection, told: Mapping[str, Callable[[], Exception]]) -> None:
        driver = conn.connection.driver_connection
        assert driver is not None
        self.conn = conn
        self.info = conn.info  # (Connection.info raises once SQLAlchemy invalidated a dead connection)
        self.driver: DriverConnection[Any] = driver
        self.told = dict(told)
        self._queued: list[Queued] = []
        record = conn.connection.info
        state = record.get(_STATE)
        if state is None or state.driver is not driver:
            state = record[_STATE] = _DriverState(driver)
        self._state = state
        # Server-side prepared statements, unless a transaction pooler is in front (each
        # transaction may run on another server connection, which never saw the PREPARE).
        self._prepared = state.prepared if conn.connection.info.get(PREPARE_ON_SERVER) else None

    def write(self, statement: WireStatement, values: Mapping[str, Any]) -> None:
        """Queue a write whose answer nobody reads: it goes with the next read, statement or commit."""
        self._queued.append((statement, self._dump(statement, values)))

    def read(self, statement: WireStatement, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Send what is queued and `statement`, and return its first row (as psycopg loads it)."""
        sent = [*self._queued, (statement, self._dump(statement, values))]
        first = len(sent) == 1 and self.driver.pgconn.transaction_status == _IDLE
        self._queued.clear()
        try:
            results = self._send(sent, None)
        except DBAPIError as exc:
            if not (first and isinstance(exc.orig, _NOT_AS_BELIEVED)):
                raise
            # The session's prepared statements are not those believed (DEALLOCATE ALL, DISCARD ALL, or
            # only some of them; or a failure at commit made the connection forget them all) and this
            # read began the transaction: nothing is lost by ending it, asking the session which it has
            # (those are not prepared again) and asking again.
            self.driver.rollback()
            self._learn_prepared()
            results = self._send(sent, None)
        answer = results[-1]
        if answer.ntuples == 0:
            return None
        loader = self._state.loader
        loader.set_pgresult(answer)
        row: tuple[Any, ...] = loader.load_row(0, tuple)
        return row

    def _learn_prepared(self) -> None:
        """Believe prepared what the session has now (one round trip, in a transaction the next send
        goes on with)."""
        if self._prepared is None:
            return
        names = self.driver.execute(_SESSION_STATEMENTS).fetchall()
        self._prepared.clear()
        self._prepared.update(name.encode() for (name,) in names)

    def flush(self) -> None:
        """Send what is queued and wait for its answers (before a statement that does not go through
        the batch, so that the server sees statements in the order they were issued)."""
        if self._queued:
            self._send(self._queued, None)
            self._queued.clear()

    def commit(self) -> None:
        """The queued writes, COMMIT and the Sync: one round trip."""
        queued, self._queued = self._queued, []
        self._send(queued, _COMMIT)

    def discard(self) -> None:
        """Forget what is queued: it was never sent, so there is nothing of it to undo on the server."""
        self._queued.clear()

    def _dump(self, statement: WireStatement, values: Mapping[str, Any]) -> list[bytes | None]:
        params = statement.wire_params(values)
        formats = self._state.formats.get(len(params))
        if formats is None:
            formats = self._state.formats[len(params)] = [PyFormat.TEXT] * len(params)
        # Text, untyped: the server gives each parameter the type of where it stands (a column, a
        # comparison), whatever Python type carried it; psycopg's dumpers write the text.
        dumped: list[bytes | None] = list(self._state.dumper.dump_sequence(params, formats))  # type: ignore[arg-type]
        return dumped

    def _send(self, statements: Sequence[Queued], last: bytes | None) -> list[Any]:
        """One round trip: BEGIN if none is open, each statement (prepared on first use), `last`, Sync.
        Returns each statement's result; raises the first failure, after the pipeline is left."""
        pgconn = self.driver.pgconn
        try:
            expected = self._queue(pgconn, statements, last)
            pgconn.pipeline_sync()
            _flush(pgconn)
            results, failure = self._collect(pgconn, expected)
            pgconn.exit_pipeline_mode()
        except BaseException as exc:
            # Lost mid-exchange (the connection died, or a signal): its protocol state is unknown, so
            # it is never used again; the server rolls back what it had of the transaction.
            self.conn.invalidate(exc if isinstance(exc, Exception) else None)
            if isinstance(exc, Error):
                sql = statements[0][0].sql if statements else ""
                raise DBAPIError.instance(sql, None, exc, Error, connection_invalidated=True) from exc
            raise
        if failure is not None:
            what, exc = failure
            if isinstance(exc, errors.InvalidSqlStatementName):  # DEALLOCATE ALL or DISCARD ALL ran on
                self._state.prepared.clear()  # the session: prepare again from the next round trip on
            raise self._raised(what, exc) from exc
        return results

    def _queue(self, pgconn: Any, statements: Sequence[Queued], last: bytes | None) -> list[Expected]:
        """Enter pipeline mode and queue everything in libpq's buffer; returns what each result answers."""
        expected: list[Expected] = []
        pgconn.enter_pipeline_mode()
        if pgconn.transaction_status == _IDLE:
            pgconn.send_query_params(_BEGIN, None)
            expected.append(_BEGIN)
        for statement, params in statements:
            if self._prepared is None:
                pgconn.send_query_params(statement.wire_sql, params)
            else:
                name = statement.wire_name
                if name not in self._prepared and (name, True) not in expected:
                    pgconn.send_prepare(name, statement.wire_sql, None)
                    expected.append((name, True))
                pgconn.send_query_prepared(name, params)
            expected.append(statement)
        if last is not None:
            pgconn.send_query_params(last, None)
            expected.append(last)
        return expected

    def _collect(self, pgconn: Any, expected: list[Expected]) -> tuple[list[Any], Failure | None]:
        """Read a result for each of `expected`, then the Sync's. Statements' results in order, and the
        first failure (those after it answer PIPELINE_ABORTED: skipped)."""
        results: list[Any] = []
        failure: Failure | None = None
        for what in expected:
            result = _next_result(pgconn)
            _next_result(pgconn)  # the None that ends each command's results
            status = result.status
            if status in _OK:
                if isinstance(what, tuple):  # a statement prepared: it stays on the session
                    assert self._prepared is not None
                    self._prepared.add(what[0])
                elif not isinstance(what, bytes):
                    results.append(result)
            elif failure is None and status != pq.ExecStatus.PIPELINE_ABORTED:
                failure = (what, errors.error_from_result(result, self.driver.info.encoding))
        sync = _next_result(pgconn)
        if sync is None or sync.status != pq.ExecStatus.PIPELINE_SYNC:
            raise OperationalError(f"pipeline out of step: {sync and pq.ExecStatus(sync.status).name}")
        return results, failure

    def _raised(self, what: Expected, exc: Error) -> BaseException:
        """A statement's failure as SQLAlchemy raises the driver's errors; a violation of a constraint
        the unit named, as its exception."""
        told = self.told.get(getattr(exc.diag, "constraint_name", None) or "")
        if told is not None:
            return told()
        if isinstance(what, bytes):
            sql = what.decode()
        elif isinstance(what, tuple):
            sql = f"PREPARE {what[0].decode()}"
        else:
            sql = what.sql
        return DBAPIError.instance(sql, None, exc, Error)


def _flush(pgconn: Any) -> None:
    """Send libpq's output buffer, reading what the server answers meanwhile (so neither side blocks)."""
    while pgconn.flush():
        readable, _, _ = select.select([pgconn.socket], [pgconn.socket], [])
        if readable:
            pgconn.consume_input()


def _next_result(pgconn: Any) -> Any:
    """libpq's next result, waiting for the server with the GIL released (select) while it is busy."""
    while pgconn.is_busy():
        select.select([pgconn.socket], [], [])
        pgconn.consume_input()
    return pgconn.get_result()


def _send_queued_first(conn: Connection, *_args: Any) -> None:
    """A statement outside the batch follows what the batch queued before it (see the module)."""
    batch = conn.info.get(PIPELINE)
    if batch is not None:
        batch.flush()


def batch_of(conn: Connection) -> Batch | None:
    """The batch open on `conn`, if any."""
    batch: Batch | None = conn.info.get(PIPELINE)
    return batch


def begin_batch(conn: Connection, told: Mapping[str, Callable[[], Exception]]) -> Batch:
    """Open a batch on the connection. `told`: constraints whose violation, wherever in the unit it
    surfaces, is raised as the mapped exception. Nothing is sent yet: the first read sends the BEGIN."""
    if conn.engine not in _LISTENING:
        with _LISTENING_LOCK:
            if conn.engine not in _LISTENING:
                event.listen(conn.engine, "before_cursor_execute", _send_queued_first)
                _LISTENING.add(conn.engine)
    if not conn.in_transaction():
        conn.begin()  # SQLAlchemy's transaction: its commit() and rollback() must reach this one
    batch = Batch(conn, told)
    conn.info[PIPELINE] = batch
    return batch


def commit_batch(batch: Batch) -> None:
    """Send the queued writes, COMMIT and the Sync: one round trip. SQLAlchemy's own commit()
    afterwards finds the driver idle and sends nothing. A failure is raised as SQLAlchemy raises the
    driver's errors (or as told); nothing was committed then, and the caller's rollback ends the
    aborted transaction."""
    batch.info.pop(PIPELINE, None)
    batch.commit()


def abandon_batch(conn: Connection, batch: Batch) -> None:
    """Leave a batch that will not be committed: what is queued was never sent and is forgotten, and
    the transaction is rolled back (through SQLAlchemy, so that a dead connection is invalidated)."""
    batch.info.pop(PIPELINE, None)
    batch.discard()
    conn.rollback()


def violated_constraint(exc: StatementError | DBAPIError) -> str | None:
    """The name of the constraint a failed write violated, as PostgreSQL reports it."""
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None)
