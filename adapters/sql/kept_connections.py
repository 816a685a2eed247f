"""The process keeps the connections its units of work gave back, and hands the one given back last to
the next unit: no checkout and checkin of SQLAlchemy's pool a unit (PostgreSQL).

Why: every unit of work checked a connection out of SQLAlchemy's pool and in again (the pool's queue and
lock, its checkout and checkin events, the reset's rollback of an idle connection, a new `Connection`):
on a decision, about 100 µs of a thread's CPU in the running application, some 9 % of a decision
(`bench/thread_cpu.py --toggle kept`: -99 µs a decision, median of 20 paired blocks, 16 lower), for a
connection the next unit takes again a millisecond later. The last given back goes first (a stack), so
under load the connection handed out is one used a moment ago: never one that sat idle. (Keeping one
connection a thread was tried first: on one hot account a thread waits while others decide its orders,
its connection went stale, and the ping before its next use cost the whole queue: 0.77x the pool's
decisions/s.)

What keeps this as safe as the pool:
- only a connection left clean is kept: open, valid, its transaction ended on both sides, out of
  pipeline mode; a unit that raised returns its connection to the pool, which resets or discards it;
- one that sat longer than `idle_s` (PING_IDLE_AFTER_S, as the pool's) is pinged before it is used; if
  it does not answer, it is thrown away and every other kept one goes back to the pool, whose checkout
  pings them and throws them all away if the server is gone;
- one kept for `KEEP_AT_MOST_S` goes back to the pool, so that the pool's recycling still reaches it, and
  so does one that sat that long unused (the process keeps what its busiest moment needed, not more);
  whatever goes back to the pool goes back as idle as it was (engine.IDLE_FOR), so that the pool pings
  one idle since before an outage;
- once any connection of the engine is invalidated (a connection found dead: SQLAlchemy then takes
  every pooled connection older than that for dead too), none lent before is kept and every kept one
  goes back to the pool, whose checkout replaces it if it is older than the invalidation;
- every kept connection counts against the pool's size, as one in use does; no more are kept than the
  pool's size (its overflow connections go back to it, which closes them);
- `engine.dispose()` closes the kept connections with the pool's; `release()` returns them to the pool
  as they are (a test that needs the pool's only connection);
- after a fork, the child never uses nor closes what its parent kept (closing it there would end the
  parent's session on the shared socket).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary, ref

from psycopg import pq
from sqlalchemy import Connection, Engine, event

from adapters.sql.engine import IDLE_FOR, PING_IDLE_AFTER_S, ping
from adapters.sql.pipeline import PIPELINE

KEEP_AT_MOST_S = 60.0
KEEP_MOST = 64  # connections kept at most on an engine (and no more than its pool's size)
_IDLE = pq.TransactionStatus.IDLE
_PIPELINE_OFF = pq.PipelineStatus.OFF
_LENT = "creditctl.kept.lent"  # in a lent connection's pool record: the keeper's generation then
log = logging.getLogger(__name__)
# Connections a parent process kept, found in this one after a fork: held here for good.
_INHERITED: list[Any] = []
_KEEPERS: WeakKeyDictionary[Engine, KeptConnections] = WeakKeyDictionary()
_KEEPERS_LOCK = threading.Lock()


def kept_for(engine: Engine) -> KeptConnections | None:
    """The engine's keeper (one per engine, made on first use); None on SQLite, whose connections are
    a file away and are not kept."""
    if engine.dialect.name != "postgresql":
        return None
    keeper = _KEEPERS.get(engine)
    if keeper is None:
        with _KEEPERS_LOCK:
            keeper = _KEEPERS.get(engine)
            if keeper is None:
                keeper = _KEEPERS[engine] = KeptConnections(engine)
    return keeper


@dataclass(slots=True)
class _Kept:
    conn: Connection
    first: float  # when it was first kept (since it came from the pool)
    used: float  # when it was last given back
    generation: int  # the keeper's when it was lent


class KeptConnections:
    """The connections this process's units of work gave back on one engine, the last on top."""

    def __init__(
        self,
        engine: Engine,
        *,
        idle_s: float = PING_IDLE_AFTER_S,
        keep_at_most_s: float = KEEP_AT_MOST_S,
        most: int = KEEP_MOST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = ref(engine)  # the keeper lives in a weak dictionary keyed by its engine
        # No more than the pool keeps: one checked out beyond its size (its overflow) the pool closes at
        # checkin, and so it goes back to the pool here.
        pool_size = getattr(engine.pool, "size", None)
        most = min(most, pool_size()) if callable(pool_size) else most
        self._idle_s, self._at_most_s, self._most, self._clock = idle_s, keep_at_most_s, most, clock
        self._stack: list[_Kept] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._generation = 0  # moved on by every invalidation and dispose: what was lent before is not kept
        event.listen(engine, "engine_disposed", self._disposed)
        event.listen(engine, "invalidate", self._invalidated)

    def take(self) -> Connection:
        """The connection given back last, if it is still good, else one from the pool."""
        while True:
            kept, generation = self._pop()
            if kept is None:
                conn, first = self._connect(), None
                break
            now = self._clock()
            if kept.generation != generation or now - kept.first >= self._at_most_s:
                self._to_pool(kept, now)  # the pool replaces one older than an invalidation, recycles
                continue
            if now - kept.used < self._idle_s or self._answers(kept):
                conn, first = kept.conn, kept.first
                break
        conn.info[_LENT] = (generation, first)
        return conn

    def give_back(self, conn: Connection) -> None:
        """Keep `conn` for a next unit if it is clean and no invalidation came since it was lent; else
        return it to the pool."""
        lent = None if conn.closed or conn.invalidated else conn.info.pop(_LENT, None)
        now, trimmed, kept = self._clock(), [], False
        if lent is not None and _clean(conn):
            with self._lock:
                if lent[0] == self._generation and os.getpid() == self._pid and len(self._stack) < self._most:
                    first = lent[1] if lent[1] is not None else now
                    self._stack.append(_Kept(conn, first, now, lent[0]))
                    kept = True
                    trimmed = self._trimmed(now)
        for old in trimmed:
            self._to_pool(old, now)
        if not kept:
            conn.close()

    def release(self) -> None:
        """Return every kept connection to the pool, sessions as they are."""
        now = self._clock()
        for kept in self._take_all():
            self._to_pool(kept, now)

    def kept(self) -> int:
        """How many connections are kept now."""
        with self._lock:
            return len(self._stack) if os.getpid() == self._pid else 0

    def _connect(self) -> Connection:
        engine = self._engine()
        if engine is None:  # pragma: no cover - a unit holds its engine
            raise RuntimeError("the engine is gone")
        return engine.connect()

    def _pop(self) -> tuple[_Kept | None, int]:
        """The top of the stack (after the bottom unused too long went back to the pool), and the
        generation to lend it under."""
        now = self._clock()
        with self._lock:
            if os.getpid() != self._pid:  # a forked child: the parent's sockets stay untouched
                self._forsake()
            trimmed = self._trimmed(now)
            kept = self._stack.pop() if self._stack else None
            generation = self._generation
        for old in trimmed:
            self._to_pool(old, now)
        return kept, generation

    def _trimmed(self, now: float) -> list[_Kept]:
        """(Under the lock) the bottom of the stack unused for KEEP_AT_MOST_S, taken off it."""
        gone = 0
        while gone < len(self._stack) and now - self._stack[gone].used >= self._at_most_s:
            gone += 1
        trimmed, self._stack[:gone] = self._stack[:gone], []
        return trimmed

    def _forsake(self) -> None:
        """(Under the lock, in a forked child) what the parent kept: never used nor closed here."""
        _INHERITED.extend(self._stack)
        self._stack, self._pid = [], os.getpid()

    def _take_all(self) -> list[_Kept]:
        with self._lock:
            if os.getpid() != self._pid:
                return []
            taken, self._stack = self._stack, []
        return taken

    def _to_pool(self, kept: _Kept, now: float) -> None:
        """Back to the pool as idle as it was: its checkout pings it if it sat past the idle limit."""
        if not (kept.conn.closed or kept.conn.invalidated):  # (an invalidated one is discarded)
            kept.conn.info[IDLE_FOR] = max(0.0, now - kept.used)
        _close(kept.conn)

    def _answers(self, kept: _Kept) -> bool:
        """Ping a connection that sat past the idle limit. One that does not answer is thrown away, and
        every other kept one goes back to the pool, whose checkout pings each (not one by one here,
        each waiting out a server that is gone) and throws them all away if the server is."""
        try:
            ping_with = self._engine()
            if ping_with is None:  # pragma: no cover - a unit holds its engine
                raise RuntimeError("the engine is gone")
            ping(ping_with, kept.conn.connection.dbapi_connection)
        except BaseException as exc:
            log.info("a kept connection did not answer (%s)", type(exc).__name__)
            try:
                kept.conn.invalidate()
            finally:
                _close(kept.conn)
                self.release()
            if not isinstance(exc, Exception):
                raise  # interrupted (a worker's timeout): the connection is not lost, the signal goes on
            return False
        return True

    def _invalidated(self, *_args: Any) -> None:
        """A connection of the engine was invalidated: none lent before is kept, and each kept one goes
        back to the pool when next popped (not here: this runs inside SQLAlchemy's invalidation)."""
        with self._lock:
            self._generation += 1

    def _disposed(self, _engine: Engine) -> None:
        """The pool's connections were closed: the kept ones are closed too, not returned to it."""
        with self._lock:
            self._generation += 1
        for kept in self._take_all():
            kept.conn.invalidate()
            _close(kept.conn)


def _after_fork_in_child() -> None:
    """A lock another thread held at the fork stays held for good in the child: each keeper gets a new
    one, and what the parent kept is forsaken."""
    for keeper in list(_KEEPERS.values()):
        keeper._lock = threading.Lock()
        with keeper._lock:
            keeper._forsake()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _clean(conn: Connection) -> bool:
    """Open, valid, out of any transaction on both sides, no batch left on it, not in pipeline mode."""
    if conn.closed or conn.invalidated or conn.in_transaction() or PIPELINE in conn.info:
        return False
    pgconn: Any = getattr(conn.connection.driver_connection, "pgconn", None)
    if pgconn is None:
        return False
    return bool(pgconn.transaction_status == _IDLE and pgconn.pipeline_status == _PIPELINE_OFF)


def _close(conn: Connection) -> None:
    try:
        conn.close()
    except Exception as exc:  # one that cannot be returned is discarded by the pool itself
        log.debug("a kept connection could not be closed: %s", type(exc).__name__)
