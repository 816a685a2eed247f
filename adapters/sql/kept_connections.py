"""Each thread keeps the connection of its last unit of work for its next one, as a bare-stack server
keeps one connection per thread (PostgreSQL).

Why: every unit of work checked a connection out of SQLAlchemy's pool and in again (the pool's queue and
lock, its checkout and checkin events, the reset's rollback of an idle connection, a new `Connection`):
on a decision, some 100 µs of a thread's CPU in the running application, about 9 % of a decision
(`bench/thread_cpu.py --toggle kept`: -99 µs a decision, median of 20 paired blocks, 16 lower), for a
connection the same thread takes again a millisecond later. Kept here, it is handed back to its thread
without going through the pool.

What keeps this as safe as the pool:
- only a connection left clean is kept: open, valid, its transaction ended on both sides, out of
  pipeline mode; a unit that raised returns its connection to the pool, which resets or discards it;
- one kept longer than `idle_s` (PING_IDLE_AFTER_S, as the pool's) is pinged before it is used, and one
  that does not answer is thrown away and a pooled one taken (the pool pings its own idle ones, and
  throws them all away if the server is gone);
- one kept for `KEEP_AT_MOST_S` goes back to the pool, so that the pool's recycling still reaches it;
- a thread keeps at most one, and every connection counts against the pool's size while kept (a thread
  that ran a unit holds one, as a thread in the middle of one does); a unit opened while another is
  open on the same thread checks one out of the pool as before; when a thread ends, its connection goes
  back to the pool;
- `engine.dispose()` closes every kept connection with the pool's; `release()` returns them to the pool
  as they are (a test that needs the pool's only connection);
- a connection kept before a fork is never used, nor closed, in the child (closing it there would end
  the parent's session on the shared socket).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary, WeakSet

from psycopg import pq
from sqlalchemy import Connection, Engine, event

from adapters.sql.engine import PING_IDLE_AFTER_S, ping

KEEP_AT_MOST_S = 60.0
_IDLE = pq.TransactionStatus.IDLE
_PIPELINE_OFF = pq.PipelineStatus.OFF
log = logging.getLogger(__name__)
# Connections kept in a parent process and found in this one after a fork: held here for good.
_INHERITED: list[Connection] = []
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


class _Slot:
    """One thread's kept connection. Dropped with the thread's locals when the thread ends."""

    __slots__ = ("__weakref__", "conn", "first", "lent", "pid", "used")

    def __init__(self) -> None:
        self.conn: Connection | None = None  # kept, between units
        self.lent: Connection | None = None  # handed to the thread's unit from here, until given back
        self.used = 0.0  # when it was last given back
        self.first = 0.0  # when it was first kept
        self.pid = os.getpid()

    def __del__(self) -> None:  # the thread ended (its locals are dropped): back to the pool
        conn, self.conn = self.conn, None
        if conn is not None and self.pid == os.getpid():
            _close(conn)
        elif conn is not None:
            _INHERITED.append(conn)


class KeptConnections:
    """The connections each thread keeps between its units of work on one engine."""

    def __init__(
        self,
        engine: Engine,
        *,
        idle_s: float = PING_IDLE_AFTER_S,
        keep_at_most_s: float = KEEP_AT_MOST_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._idle_s, self._at_most_s, self._clock = idle_s, keep_at_most_s, clock
        self._local = threading.local()
        self._slots: WeakSet[_Slot] = WeakSet()
        self._lock = threading.Lock()  # a slot against release() and dispose from other threads
        event.listen(engine, "engine_disposed", self._disposed)

    def take(self) -> Connection:
        """This thread's kept connection if it is still good, else one from the pool."""
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is not None and slot.conn is not None:
            with self._lock:
                conn, slot.conn = slot.conn, None
            if conn is not None:
                if slot.pid != os.getpid():  # inherited over a fork: another process's socket
                    _INHERITED.append(conn)
                    slot.pid = os.getpid()
                elif self._clock() - slot.first >= self._at_most_s:
                    _close(conn)  # to the pool, which recycles it in its time
                elif self._clock() - slot.used < self._idle_s or self._answers(conn):
                    slot.lent = conn
                    return conn
        return self._engine.connect()

    def give_back(self, conn: Connection) -> None:
        """Keep `conn` for this thread's next unit if it is clean and the thread keeps none; else return
        it to the pool."""
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is None:
            slot = self._local.slot = _Slot()
            with self._lock:
                self._slots.add(slot)
        lent, slot.lent = slot.lent, None
        if slot.pid == os.getpid() and _clean(conn):
            now = self._clock()
            with self._lock:
                if slot.conn is None:
                    slot.conn, slot.used = conn, now
                    if conn is not lent:  # newly kept (else kept since `first`)
                        slot.first = now
                    return
        conn.close()

    def release(self) -> None:
        """Return every thread's kept connection to the pool, sessions as they are."""
        for conn in self._take_all():
            _close(conn)

    def kept(self) -> int:
        """How many connections are kept now."""
        with self._lock:
            return sum(1 for slot in self._slots if slot.conn is not None)

    def _take_all(self) -> list[Connection]:
        with self._lock:
            mine = [slot for slot in self._slots if slot.conn is not None and slot.pid == os.getpid()]
            conns = [slot.conn for slot in mine if slot.conn is not None]
            for slot in mine:
                slot.conn = None
        return conns

    def _answers(self, conn: Connection) -> bool:
        """Ping a connection kept past the idle limit; one that does not answer is thrown away."""
        try:
            ping(self._engine, conn.connection.dbapi_connection)
        except Exception as exc:  # gone or broken: the pool's checkout decides what next
            log.info("a kept connection did not answer (%s); taking one from the pool", type(exc).__name__)
            conn.invalidate()
            _close(conn)
            return False
        return True

    def _disposed(self, _engine: Engine) -> None:
        """The pool's connections were closed: the kept ones are closed too, not returned to it."""
        for conn in self._take_all():
            conn.invalidate()
            _close(conn)


def _clean(conn: Connection) -> bool:
    """Open, valid, out of any transaction on both sides, and not in pipeline mode."""
    if conn.closed or conn.invalidated or conn.in_transaction():
        return False
    pgconn: Any = getattr(conn.connection.driver_connection, "pgconn", None)
    return (
        pgconn is not None and pgconn.transaction_status == _IDLE and pgconn.pipeline_status == _PIPELINE_OFF
    )


def _close(conn: Connection) -> None:
    try:
        conn.close()
    except Exception as exc:  # one that cannot be returned is discarded by the pool itself
        log.debug("a kept connection could not be closed: %s", type(exc).__name__)
