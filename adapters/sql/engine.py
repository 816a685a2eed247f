"""Engines for both databases, set up for the hot path: WAL and immediate transactions on SQLite."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def make_engine(url: str, *, threads: int = 0, **kwargs: Any) -> Engine:
    """An engine for `url`. On SQLite every transaction is BEGIN IMMEDIATE: decisions write, and a
    read transaction that later writes is what makes SQLite answer "database is locked".

    `threads` serve requests at once in this process: the pool holds a connection for each, and as
    many again in overflow (a request may hold a second one, e.g. for the shared balance report)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database not in (None, "", ":memory:") and "mode=memory" not in url:
            kwargs.setdefault("pool_size", max(5, threads))  # SQLAlchemy's QueuePool for a file
            kwargs.setdefault("max_overflow", max(10, threads))
        return _sqlite_engine(url, **kwargs)
    kwargs.setdefault("pool_size", max(10, threads))
    kwargs.setdefault("max_overflow", max(20, threads))
    kwargs.setdefault("pool_recycle", 1800)
    # No pre-ping: it costs a round trip per checkout on the hot path; a dropped connection is
    # detected on use, and SQLAlchemy then invalidates the whole pool.
    kwargs.setdefault("pool_pre_ping", False)
    return create_engine(url, **kwargs)


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
