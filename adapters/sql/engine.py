"""Engines for both databases, set up for the hot path: WAL and immediate transactions on SQLite; on
PostgreSQL a bounded connect, a pool that comes back by itself after the server went away, and no
server-side prepared statements behind a transaction pooler."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InvalidatePoolError

from adapters.sql.pipeline import PREPARE_ON_SERVER

CONNECT_TIMEOUT_S = 5  # a server that accepts TCP and never answers: a request fails after this, not never
# A connection whose server vanished without a word (a failover, a cut network path, a host that died)
# is found dead in about 25 s while a request waits on its answer, not after the kernel's two hours of
# silence: a keepalive probe after 10 s of silence, every 5 s, the third unanswered ends it. A live server's
# kernel answers the probes however long a query or a lock wait takes. Not tcp_user_timeout: it also cuts a
# live connection whose server does not read for that long (a large insert queued behind a lock: the
# receive window fills), which a lock wait behind a migration can exceed. libpq options; one in the URL
# wins; ignored on a Unix socket.
TCP_OPTIONS: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}
PING_IDLE_AFTER_S = 1.0  # a pooled connection unused this long is pinged before it is handed out
_USED_AT = "creditctl.used_at"
# In a connection's record, set just before it goes back to the pool: the seconds it sat unused before
# (so that the checkin does not make a connection idle since before an outage look freshly used).
IDLE_FOR = "creditctl.idle_for"
# What sits between the service and PostgreSQL (CREDITCTL_DATABASE_POOLER): nothing, a session pooler
# (a server connection per client connection: as good as direct), or a transaction pooler (PgBouncer's
# pool_mode=transaction: each transaction may run on another server connection).
POOLER_MODES = frozenset({"none", "session", "transaction"})


def make_engine(url: str, *, threads: int = 0, pooler: str = "none", **kwargs: Any) -> Engine:
    """An engine for `url`. On SQLite every transaction is BEGIN IMMEDIATE: decisions write, and a
    read transaction that later writes is what makes SQLite answer "database is locked".

    `threads` serve requests at once in this process: the pool holds a connection for each, and as
    many again in overflow (a request may hold a second one, e.g. for the shared balance report).

    psycopg's own preparing is off (prepare_threshold None): it prepares a statement after its 5th
    execution and every executemany at once, and whenever it rolls back a transaction while it has
    statements prepared it sends DEALLOCATE ALL (one more round trip, after every read-only request),
    which also drops the statements the decision path prepares itself (adapters.sql.pipeline) under its
    own names. Those few are what the hot path runs; everything else is planned when run.

    pooler="transaction": behind a transaction pooler the next transaction may run on a server
    connection that never saw a PREPARE ("prepared statement ... does not exist"), so the decision path
    prepares nothing either (PREPARE_ON_SERVER in each connection's info says so). Everything else the service
    does is transaction-scoped already (locks, the advisory lock of a rule set publication, SET-free;
    see docs/running-in-production.md)."""
    if pooler not in POOLER_MODES:
        raise ValueError(f"pooler must be one of {sorted(POOLER_MODES)}, not {pooler!r}")
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database not in (None, "", ":memory:") and "mode=memory" not in url:
            kwargs.setdefault("pool_size", max(5, threads))  # SQLAlchemy's QueuePool for a file
            kwargs.setdefault("max_overflow", max(10, threads))
        return _sqlite_engine(url, **kwargs)
    kwargs.setdefault("pool_size", max(10, threads))
    kwargs.setdefault("max_overflow", max(20, threads))
    kwargs.setdefault("pool_recycle", 1800)
    # No pre-ping on every checkout: it costs a round trip on the hot path. Only a connection that sat
    # idle is pinged (ping_idle_connections); a busy one that drops is detected on use, and SQLAlchemy
    # then invalidates the whole pool.
    kwargs.setdefault("pool_pre_ping", False)
    if "connect_timeout" not in parsed.query:
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S, **kwargs.get("connect_args", {})}
    tcp = {option: value for option, value in TCP_OPTIONS.items() if option not in parsed.query}
    kwargs["connect_args"] = {**tcp, **kwargs.get("connect_args", {}), "prepare_threshold": None}
    engine = create_engine(url, **kwargs)
    prepare_on_server = pooler != "transaction"

    @event.listens_for(engine, "connect")
    def _say_whether_to_prepare(_dbapi_conn: Any, record: Any) -> None:
        record.info[PREPARE_ON_SERVER] = prepare_on_server

    ping_idle_connections(engine)
    return engine


def ping_idle_connections(engine: Engine, idle_s: float = PING_IDLE_AFTER_S) -> None:
    """Ping a pooled connection that has not been used for `idle_s` before handing it out; if the server
    does not answer, throw every pooled connection away and open a new one.

    After the database went away and came back (a restart, a failover), the pool still holds connections
    to the server that is gone. A process that was busy during the outage found out on use; one that was
    idle would answer its first requests after the outage with errors. A connection idle since before the
    outage has been idle at least as long as the outage, so this catches every outage longer than `idle_s`
    and costs nothing while connections are in constant use."""

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _used(_dbapi_conn: Any, record: Any) -> None:
        # One kept out of the pool (adapters.sql.kept_connections) comes back as idle as it was.
        record.info[_USED_AT] = time.monotonic() - record.info.pop(IDLE_FOR, 0.0)

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        used_at = record.info.get(_USED_AT)
        if used_at is None or time.monotonic() - used_at < idle_s:
            return
        try:
            ping(engine, dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool retries with a new connection; if that fails too, the caller gets the error.
            raise InvalidatePoolError(f"an idle connection did not answer: {exc}") from exc


def ping(engine: Engine, dbapi_conn: Any) -> None:
    """One round trip on an idle DB-API connection, left as it was; raises the driver's error if the
    server does not answer."""
    engine.dialect.do_ping(dbapi_conn)
    dbapi_conn.rollback()  # the ping began a transaction; hand the connection out as it was


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("timeout", 30)
    connect_args.setdefault("check_same_thread", False)
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        if ":memory:" not in url and "mode=memory" not in url:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
