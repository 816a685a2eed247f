"""Through PgBouncer in transaction pooling (deploy/pgbouncer/pgbouncer.ini, before a private PostgreSQL):
server-side prepared statements break there; CREDITCTL_DATABASE_POOLER=transaction turns them off.

The decision path prepares its few statements on the server (adapters/sql/pipeline.py) and from then on
sends only their names. In transaction pooling the next transaction may run on another server connection,
which never saw them. The first test makes that happen on purpose (another client holds the server
connection that has the statement), so the second can show the same sequence passing with the setting;
psycopg's own automatic preparing is off everywhere, which the third shows. Then the service's own
decisions, whose writes travel with their COMMIT in libpq's pipeline mode (adapters/sql/pipeline.py),
run through the pooler from several threads on two server connections: every one decided once, the books
sound. The whole service runs through the same pooler in tests/e2e/test_production_shape.py."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError

from adapters.bootstrap import load_settings
from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.fake.clock import FakeClock
from adapters.sql.engine import make_engine
from adapters.sql.migrate import upgrade
from adapters.sql.tables import decisions
from adapters.sql.unit_of_work import SqlUnitOfWork
from creditctl.domain.audit import SYSTEM
from creditctl.domain.decision import Order
from creditctl.services.decide_order import decide_order
from tests.conftest import make_context, seed
from tests.invariants import assert_invariants
from tests.private_postgres import PrivatePostgres, private_postgres
from tests.proxies import Pgbouncer, pgbouncer

STATEMENT = text("SELECT count(*) FROM pg_class WHERE relname = :name")


@dataclass(frozen=True)
class Pooled:
    pg: PrivatePostgres
    bouncer: Pgbouncer

    @property
    def url(self) -> str:
        return self.bouncer.url("creditctl_app", "pooled-secret")

    @property
    def owner_url(self) -> str:
        return self.bouncer.url("postgres", "pooled-owner")


@pytest.fixture(scope="module")
def pooled() -> Iterator[Pooled]:
    with private_postgres() as pg:
        direct = make_engine(pg.url)
        with direct.begin() as conn:
            conn.execute(text("CREATE ROLE creditctl_app LOGIN"))
        direct.dispose()
        upgrade(pg.url)
        users = {"creditctl_app": "pooled-secret", "postgres": "pooled-owner"}
        with pgbouncer(pg.port, users, default_pool_size="2") as bouncer:
            yield Pooled(pg, bouncer)


def _lock_then_switch_server(engine: Engine, other: Engine) -> None:
    """The decision path's statements in batched units on one client connection, moved between two
    server connections by `other` holding one of them in a transaction (PgBouncer hands out the server
    connection released last): a unit that only locks (the first block of a decision on a stale
    balance) on server A; one that locks and writes on server B (the lock's statement is not there: the
    read ends its transaction and asks again, prepared anew, and the write is prepared there too); then
    one that locks and writes on A again, where the lock's statement is and the write's never was.
    Unless the setting says a transaction pooler is in front, that write is sent by name and fails."""
    uow = SqlUnitOfWork(engine)
    with uow.batched():
        assert uow.accounts.lock("8800000001", "GA10") is None  # (no such account: the read is enough)
    with other.connect() as holder:
        holder.execute(text("SELECT 1"))  # a transaction is open: its server connection (A) is held
        for _ in range(2):
            with uow.batched():
                assert uow.accounts.lock("8800000001", "GA10") is None
                holder.rollback()  # A is free again, B released after it: the holder's next is B
                uow.audit.append("test.pooled", at=uow.now(), actor=SYSTEM, subject={"test": "pooled"})
                uow.commit()
            holder.execute(text("SELECT 1"))


@pytest.mark.postgres
def test_the_decision_paths_prepared_statements_break_behind_a_transaction_pooler(pooled: Pooled) -> None:
    engine = make_engine(pooled.owner_url, pool_size=1, max_overflow=0)
    other = make_engine(pooled.owner_url, pool_size=1, max_overflow=0)
    try:
        with pytest.raises(DBAPIError, match=r"prepared statement .* does not exist"):
            _lock_then_switch_server(engine, other)
    finally:
        engine.dispose()
        other.dispose()


@pytest.mark.postgres
def test_the_transaction_pooler_setting_prepares_nothing_and_the_same_sequence_passes(pooled: Pooled) -> None:
    engine = make_engine(pooled.owner_url, pooler="transaction", pool_size=1, max_overflow=0)
    other = make_engine(pooled.owner_url, pooler="transaction", pool_size=1, max_overflow=0)
    try:
        _lock_then_switch_server(engine, other)
    finally:
        engine.dispose()
        other.dispose()


@pytest.mark.postgres
def test_psycopg_prepares_nothing_of_its_own_so_plain_statements_pass_without_the_setting(
    pooled: Pooled,
) -> None:
    """psycopg's automatic preparing is off for every engine (adapters/sql/engine.py): a statement run
    many times is never sent by name, so it survives the switch of server connection."""
    engine = make_engine(pooled.url, pool_size=1, max_overflow=0)
    other = make_engine(pooled.url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            for _ in range(7):
                assert conn.execute(STATEMENT, {"name": "pg_class"}).scalar_one() == 1
                conn.commit()
            with other.connect() as holder:
                holder.execute(text("SELECT 1"))
                assert conn.execute(STATEMENT, {"name": "pg_class"}).scalar_one() == 1
                conn.commit()
                holder.rollback()
    finally:
        engine.dispose()
        other.dispose()


def test_an_unknown_pooler_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="pooler must be one of"):
        make_engine("postgresql+psycopg://u@127.0.0.1:1/x", pooler="statement")


def test_the_pooler_setting_is_read_and_defaults_to_none(tmp_path: Path) -> None:
    base = {"CREDITCTL_INSTANCE_PATH": str(tmp_path)}
    assert load_settings(base).database_pooler == "none"
    assert (
        load_settings(base | {"CREDITCTL_DATABASE_POOLER": " Transaction "}).database_pooler == "transaction"
    )
    with pytest.raises(
        SystemExit, match="CREDITCTL_DATABASE_POOLER must be one of none, session, transaction"
    ):
        load_settings(base | {"CREDITCTL_DATABASE_POOLER": "statement"})


@pytest.mark.postgres
def test_pipelined_decisions_through_the_pooler_are_decided_once_with_sound_books(
    pooled: Pooled, balances: FakeBalanceProvider, clock: FakeClock, tmp_path: Path
) -> None:
    """8 threads, 2 server connections: each transaction (the account's lock read, then the writes and
    the COMMIT in one pipeline sync) runs on whichever server connection is free. Every order id is sent
    twice at once; one of the two decides it, the other gets the same decision back."""
    engine = make_engine(pooled.bouncer.url("postgres", "pooled-owner"), pooler="transaction", pool_size=8)
    try:
        context = make_context(engine, balances, clock, tmp_path)
        seed(context)
        orders = [
            Order(f"pooled-{n}", "8800000001", "GB20" if n % 2 else "GA10", Decimal("90.00"))
            for n in range(40)
        ]

        def decide(order: Order) -> tuple[str, str, bool]:
            result = decide_order(order, scope=None, uow=context.uow(), balances=context.balances)
            return order.order_id, result.decision.id, result.created

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(decide, [o for o in orders for _ in range(2)]))
        by_order: dict[str, set[str]] = {}
        created = Counter(order_id for order_id, _, new in answers if new)
        for order_id, decision_id, _ in answers:
            by_order.setdefault(order_id, set()).add(decision_id)
        assert all(len(ids) == 1 for ids in by_order.values()), by_order
        assert created == Counter({o.order_id: 1 for o in orders})
        direct = make_engine(pooled.pg.url)
        try:
            with direct.connect() as conn:
                stored = conn.execute(select(decisions.c.order_id, decisions.c.id)).all()
            assert sorted(stored) == sorted((o, ids.pop()) for o, ids in by_order.items())
            assert_invariants(direct)
        finally:
            direct.dispose()
    finally:
        engine.dispose()
