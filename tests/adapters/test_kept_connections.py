"""The process keeps the connections its units gave back and hands out the one given back last
(adapters/sql/kept_connections.py), no less safely than the pool: only a clean connection is kept, a
stale one is pinged and a dead one replaced without an error, one kept long or unused long goes back to
the pool, an invalidation or a dispose ends what was kept before it, and a forked child never touches
its parent's (PostgreSQL)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, text

from adapters.sql.engine import make_engine
from adapters.sql.kept_connections import KeptConnections, kept_for
from adapters.sql.pipeline import PIPELINE
from adapters.sql.unit_of_work import SqlUnitOfWork

pytestmark = pytest.mark.postgres


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine(postgres_engine: Engine) -> Iterator[Engine]:
    """An engine of its own (the keeper listens on it), counting the pool's checkouts."""
    own = make_engine(postgres_engine.url.render_as_string(hide_password=False), pool_size=4, max_overflow=0)
    own.checkouts = 0  # type: ignore[attr-defined]

    @event.listens_for(own, "checkout")
    def _count(*_args: Any) -> None:
        own.checkouts += 1  # type: ignore[attr-defined]

    yield own
    own.dispose()


def _backend(conn: Connection) -> int:
    pid: int = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    conn.rollback()
    return pid


def _unit_backend(uow: SqlUnitOfWork) -> int:
    with uow:
        return _backend(uow._conn)  # type: ignore[arg-type]  # (the unit's connection: tests only)


def _terminate(engine: Engine, pid: int) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        for _ in range(100):
            if not conn.execute(text("SELECT 1 FROM pg_stat_activity WHERE pid = :p"), {"p": pid}).first():
                return
            time.sleep(0.02)
    pytest.fail(f"backend {pid} still there")


def test_the_next_units_run_on_the_connection_the_last_one_gave_back_without_the_pool(
    engine: Engine,
) -> None:
    kept = KeptConnections(engine)
    backends = {_unit_backend(SqlUnitOfWork(engine, kept=kept)) for _ in range(5)}
    batched = SqlUnitOfWork(engine, kept=kept)
    with batched.batched():
        backends.add(_backend(batched._conn))  # type: ignore[arg-type]
    assert len(backends) == 1
    assert engine.checkouts == 1  # type: ignore[attr-defined]
    assert kept.kept() == 1 and engine.pool.checkedout() == 1  # kept counts against the pool's size


def test_the_one_given_back_last_goes_first_so_a_warm_one_is_never_pinged_for_a_cold_one(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One account's orders: a thread waits while another decides its order; what it kept would sit
    idle and be pinged at its next use. Shared and last-in first-out, the warm connection serves."""
    clock = _Clock()
    kept = KeptConnections(engine, idle_s=1.0, clock=clock)
    pings: list[object] = []
    real_ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda c: pings.append(c) or real_ping(c))
    first, second = kept.take(), kept.take()
    kept.give_back(first)
    clock.now += 0.9
    kept.give_back(second)
    clock.now += 0.6  # `first` sat 1.5 s, `second` 0.6 s
    assert kept.take() is second and pings == []
    assert kept.take() is first and len(pings) == 1  # the cold one, pinged before use
    kept.give_back(first)
    kept.give_back(second)


def test_units_on_several_threads_share_what_is_kept(engine: Engine) -> None:
    kept = KeptConnections(engine)
    backends: set[int] = set()
    start = threading.Barrier(3)

    in_use: set[int] = set()
    shared: list[int] = []
    guard = threading.Lock()

    def work() -> None:
        start.wait()
        for _ in range(20):
            uow = SqlUnitOfWork(engine, kept=kept)
            with uow:
                backend = _backend(uow._conn)  # type: ignore[arg-type]
                with guard:
                    if backend in in_use:
                        shared.append(backend)
                    in_use.add(backend)
                time.sleep(0.002)  # units overlap
                with guard:
                    in_use.discard(backend)
            backends.add(backend)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert shared == []  # never one connection in two units at once
    assert len(backends) <= 3 and engine.checkouts <= 3  # type: ignore[attr-defined]
    assert kept.kept() == engine.pool.checkedout() == engine.checkouts  # type: ignore[attr-defined]


def test_a_unit_that_raised_or_left_a_transaction_open_leaves_nothing_kept(engine: Engine) -> None:
    kept = KeptConnections(engine)
    uow = SqlUnitOfWork(engine, kept=kept)
    with pytest.raises(ZeroDivisionError), uow:
        _ = 1 / 0
    assert kept.kept() == 0 and engine.pool.checkedout() == 0
    conn = kept.take()
    conn.exec_driver_sql("SELECT 1")  # SQLAlchemy's transaction begun, not ended
    kept.give_back(conn)
    assert kept.kept() == 0 and conn.closed and engine.pool.checkedout() == 0
    conn = kept.take()
    driver: Any = conn.connection.driver_connection
    driver.execute("SELECT 1")  # a transaction the driver began behind SQLAlchemy's back
    kept.give_back(conn)
    assert kept.kept() == 0 and engine.pool.checkedout() == 0
    conn = kept.take()
    driver = conn.connection.driver_connection
    with pytest.raises(Exception, match="division by zero"):
        driver.execute("SELECT 1/0")  # an aborted transaction (INERROR)
    kept.give_back(conn)
    assert kept.kept() == 0 and engine.pool.checkedout() == 0
    conn = kept.take()
    conn.info[PIPELINE] = object()  # a batch left on it
    kept.give_back(conn)
    assert kept.kept() == 0 and engine.pool.checkedout() == 0


def test_one_kept_past_the_idle_limit_is_pinged_and_a_dead_one_replaced_without_an_error(
    engine: Engine, postgres_engine: Engine
) -> None:
    clock = _Clock()
    kept = KeptConnections(engine, idle_s=1.0, clock=clock)
    first = _unit_backend(SqlUnitOfWork(engine, kept=kept))
    clock.now += 0.5  # fresh: not pinged, the same session
    assert _unit_backend(SqlUnitOfWork(engine, kept=kept)) == first
    _terminate(postgres_engine, first)  # the server ends it while it is kept
    clock.now += 1.5  # stale: pinged, found dead, replaced
    again = _unit_backend(SqlUnitOfWork(engine, kept=kept))
    assert again != first
    assert engine.checkouts == 2  # type: ignore[attr-defined]
    clock.now += 1.5  # stale and alive: pinged, kept
    assert _unit_backend(SqlUnitOfWork(engine, kept=kept)) == again


def test_one_kept_for_long_goes_back_to_the_pool(engine: Engine) -> None:
    clock = _Clock()
    kept = KeptConnections(engine, keep_at_most_s=60.0, clock=clock)
    for _ in range(4):
        _unit_backend(SqlUnitOfWork(engine, kept=kept))
        clock.now += 25.0  # used every 25 s; kept since the first
    assert engine.checkouts == 2  # type: ignore[attr-defined]  # at 75 s: returned, checked out again
    assert kept.kept() == 1


def test_units_open_at_once_each_have_a_connection_and_both_are_kept(engine: Engine) -> None:
    kept = KeptConnections(engine)
    outer, inner = SqlUnitOfWork(engine, kept=kept), SqlUnitOfWork(engine, kept=kept)
    with outer:
        with inner:
            assert _backend(outer._conn) != _backend(inner._conn)  # type: ignore[arg-type]
        assert kept.kept() == 1
    assert kept.kept() == 2 and engine.pool.checkedout() == 2


def test_one_unused_since_a_busy_moment_goes_back_to_the_pool(engine: Engine) -> None:
    clock = _Clock()
    kept = KeptConnections(engine, keep_at_most_s=60.0, clock=clock)
    busy = [kept.take() for _ in range(3)]  # three units at once
    for conn in busy:
        kept.give_back(conn)
    assert kept.kept() == 3
    for _ in range(4):  # then one at a time, on the one given back last
        clock.now += 20.0
        kept.give_back(kept.take())
    assert kept.kept() == 1 and engine.pool.checkedout() == 1


def test_dispose_closes_the_kept_connections_and_release_returns_them_to_the_pool(engine: Engine) -> None:
    kept = KeptConnections(engine)
    backend = _unit_backend(SqlUnitOfWork(engine, kept=kept))
    kept.release()
    assert kept.kept() == 0 and engine.pool.checkedout() == 0
    with engine.connect() as conn:
        assert _backend(conn) == backend  # the same session, back in the pool
    _unit_backend(SqlUnitOfWork(engine, kept=kept))
    conn = kept.take()
    kept.give_back(conn)
    driver: Any = conn.connection.driver_connection
    engine.dispose()
    assert kept.kept() == 0 and conn.closed and driver.closed  # closed, not left open in a dead pool


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_takes_a_new_connection_and_leaves_its_parents_alone(engine: Engine) -> None:
    kept = KeptConnections(engine)
    parent = _unit_backend(SqlUnitOfWork(engine, kept=kept))
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's outcome is read by the parent
        code = 1
        try:
            engine.dispose(close=False)  # as a forking server does
            mine = _unit_backend(SqlUnitOfWork(engine, kept=kept))
            os.write(write, str(mine).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    seen = os.read(read, 64).decode()
    os.close(read)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert seen and int(seen) != parent
    assert _unit_backend(SqlUnitOfWork(engine, kept=kept)) == parent  # the parent's session, unharmed


def test_the_composition_root_keeps_connections_on_postgresql_and_not_on_sqlite(
    postgres_engine: Engine, sqlite_engine: Engine
) -> None:
    keeper = kept_for(postgres_engine)
    assert keeper is not None and kept_for(postgres_engine) is keeper  # one per engine
    assert kept_for(sqlite_engine) is None


def test_after_any_connection_is_invalidated_none_lent_before_is_kept_and_the_kept_go_to_the_pool(
    engine: Engine,
) -> None:
    """SQLAlchemy takes every pooled connection older than an invalidation for dead; a kept one goes back
    to the pool so that its checkout can do the same."""
    kept = KeptConnections(engine)
    _unit_backend(SqlUnitOfWork(engine, kept=kept))
    with engine.connect() as other:
        other.invalidate()  # another connection found dead
    assert engine.checkouts == 2  # type: ignore[attr-defined]
    _unit_backend(SqlUnitOfWork(engine, kept=kept))
    assert engine.checkouts == 3  # type: ignore[attr-defined]  # not the kept one: from the pool
    assert kept.kept() == 1
    uow = SqlUnitOfWork(engine, kept=kept)
    with uow, engine.connect() as other:
        other.invalidate()  # while the unit runs on the kept connection
    assert kept.kept() == 0 and engine.pool.checkedout() == 0  # given back to the pool, not kept


def test_one_kept_past_its_time_goes_back_to_the_pool_as_idle_as_it_was_and_is_pinged_there(
    engine: Engine, postgres_engine: Engine
) -> None:
    """After an outage a connection kept since before it must not reach a unit unpinged by the pool's way
    round: going back to the pool would make it look freshly used."""
    clock = _Clock()
    kept = KeptConnections(engine, keep_at_most_s=60.0, clock=clock)
    first = _unit_backend(SqlUnitOfWork(engine, kept=kept))
    _terminate(postgres_engine, first)  # the server ends it while it is kept
    clock.now += 61.0  # kept past its time: back to the pool, not pinged here
    again = _unit_backend(SqlUnitOfWork(engine, kept=kept))  # answered: the pool's checkout pinged it
    assert again != first


def test_a_kept_one_that_does_not_answer_sends_the_others_to_the_pool_not_one_ping_after_another(
    engine: Engine, postgres_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _Clock()
    kept = KeptConnections(engine, idle_s=1.0, clock=clock)
    conns = [kept.take() for _ in range(3)]
    backends = [_backend(c) for c in conns]
    for conn in conns:
        kept.give_back(conn)
    for backend in backends:
        _terminate(postgres_engine, backend)  # the server restarted, say
    pinged_here: list[object] = []
    real_answers = KeptConnections._answers
    monkeypatch.setattr(
        KeptConnections, "_answers", lambda self, k: pinged_here.append(k) or real_answers(self, k)
    )
    clock.now += 2.0  # all three stale
    fresh = _unit_backend(SqlUnitOfWork(engine, kept=kept))
    assert len(pinged_here) == 1  # the top one; the other two went to the pool, which pinged them
    assert fresh not in backends


def test_no_more_are_kept_than_the_pool_keeps(postgres_engine: Engine) -> None:
    url = postgres_engine.url.render_as_string(hide_password=False)
    small = make_engine(url, pool_size=2, max_overflow=3)
    try:
        kept = KeptConnections(small)
        busy = [kept.take() for _ in range(5)]  # two from the pool, three from its overflow
        for conn in busy:
            kept.give_back(conn)
        assert kept.kept() == 2 and small.pool.checkedout() == 2
    finally:
        small.dispose()
