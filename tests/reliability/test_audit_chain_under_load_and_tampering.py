"""Reliability item 15: the audit chain under load and under tampering, on SQLite and PostgreSQL.

Under load: concurrent decisions, settles and releases (threads with their own connections on
PostgreSQL), then the sealer: the chain verifies, its positions have no gaps, every event is sealed once,
and both invariant checkers pass. Tampering: someone with the owner's powers (the triggers turned
off: dropped on SQLite, DISABLE TRIGGER ALL on PostgreSQL) updates a payload, deletes a middle row, swaps
two rows, truncates the tail: the service's own verifier (`verify_audit`) catches each and names the first
bad event. PostgreSQL tampering runs in a database of its own, cloned from a migrated template, because a
broken chain would otherwise break the next test's. That the service's database role cannot UPDATE or
DELETE audit rows at all is proven in test_audit_chain_against_its_operator.py (TestTheServiceRoleOnPostgres).
"""

from __future__ import annotations

import os
import random
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.fake.clock import FakeClock
from adapters.sql.engine import make_engine
from adapters.sql.migrate import upgrade
from adapters.sql.unit_of_work import SqlUnitOfWork
from creditctl.domain.audit import Actor, chain_hash
from creditctl.domain.decision import Order
from creditctl.services.audit import seal_audit, verify_audit
from creditctl.services.context import AppContext
from creditctl.services.decide_order import decide_order
from tests.conftest import PG_URL, TEST_BALANCES, _postgres_or_skip, make_context, seed
from tests.reliability.checkers import assert_checkers, books_for, starting_money

pytestmark = pytest.mark.adapters

SEED = int(os.environ.get("CREDITCTL_TEST_SEED", "0")) or random.randrange(1, 10**6)
AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
ALICE = Actor(name="alice", role="admin", request_id="req-1")


# -- a database that may be tampered with -----------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_template() -> Iterator[str]:
    """A migrated PostgreSQL database to clone (CREATE DATABASE ... TEMPLATE: a fraction of a second)."""
    base = _postgres_or_skip()
    name = f"creditctl_audit_tmpl_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    upgrade(base.rsplit("/", 1)[0] + "/" + name)
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def own_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A migrated database for this test alone: a copied SQLite file, or a PostgreSQL clone (dropped)."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_engine")
        return
    template = request.getfixturevalue("postgres_template")
    name = f"creditctl_audit_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    engine = make_engine(PG_URL.rsplit("/", 1)[0] + "/" + name, pool_size=20, max_overflow=5)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def append(uow: SqlUnitOfWork, n: int) -> None:
    with uow:
        for i in range(n):
            uow.audit.append(
                "account.frozen",
                at=AT,
                actor=ALICE,
                subject={"customer_code": "8800000001", "sale_group_code": "GB20", "order_id": f"PO-{i}"},
                before={"status": "active"},
                after={"status": "frozen", "n": i},
            )
        uow.commit()


def chain(uow: SqlUnitOfWork) -> list[tuple[int, int]]:
    """(position, seq) of every seal, in order."""
    with uow:
        return [(link[0], link[1]) for link in uow.audit.chain(after_position=0, limit=100_000)]


def as_owner_without_guards(engine: Engine, *statements: str) -> None:
    """Run `statements` as someone who turned the append-only triggers off (the owner, or file access)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            for table in ("audit_events", "audit_seals"):
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER ALL"))
        else:
            for table in ("audit_events", "audit_seals"):
                for verb in ("update", "delete"):
                    conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{verb}"))
        for statement in statements:
            conn.exec_driver_sql(statement)
        if engine.dialect.name == "postgresql":
            for table in ("audit_events", "audit_seals"):
                conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER ALL"))


def ten_sealed(engine: Engine) -> tuple[SqlUnitOfWork, list[tuple[int, int]]]:
    uow = SqlUnitOfWork(engine)
    append(uow, 10)
    seal_audit(uow=uow)
    assert verify_audit(uow=uow).ok
    links = chain(uow)
    assert len(links) == 10
    return uow, links


# -- under load ------------------------------------------------------------------------------------------


def test_under_concurrent_decisions_the_chain_verifies_with_no_gap_and_every_event_sealed_once(
    own_engine: Engine, tmp_path: Path
) -> None:
    """Threads decide orders at once (each its own connection on PostgreSQL); the sealer runs beside them
    and once more after. The chain then verifies, positions run 1..N without a gap, each event is sealed
    exactly once, and both checkers pass (checkers.py)."""
    clock = FakeClock()
    balances = FakeBalanceProvider({k: [dict(e) for e in v] for k, v in TEST_BALANCES.items()}, clock=clock)
    ctx: AppContext = make_context(own_engine, balances, clock, tmp_path)
    seed(ctx)
    threads = 8 if own_engine.dialect.name == "postgresql" else 2
    per_thread = int(os.environ.get("CREDITCTL_RELIABILITY_AUDIT_ORDERS", "25"))
    rng = random.Random(SEED)
    plans = [
        [
            (f"PO-A{t}-{i}", rng.choice(["GA10", "GB20"]), Decimal(rng.randrange(100, 50000)) / 100)
            for i in range(per_thread)
        ]
        for t in range(threads)
    ]
    errors: list[BaseException] = []
    stop = threading.Event()
    books = books_for(starting_money(TEST_BALANCES))  # the approvals the deciding threads were given

    def decide(plan: list[tuple[str, str, Decimal]]) -> None:
        try:
            for order_id, group, amount in plan:
                order = Order(order_id, "8800000001", group, amount)
                books.saw(decide_order(order, scope=None, uow=ctx.uow(), balances=ctx.balances).decision)
        except BaseException as exc:  # reported below, with the seed
            errors.append(exc)

    def sealer() -> None:
        while not stop.is_set():
            seal_audit(uow=ctx.uow())
            stop.wait(0.01)

    workers = [threading.Thread(target=decide, args=(plan,)) for plan in plans]
    sealing = threading.Thread(target=sealer)
    sealing.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    sealing.join()
    assert not errors, f"seed {SEED}: {errors[:3]}"
    seal_audit(uow=ctx.uow())

    report = verify_audit(uow=ctx.uow())
    assert report.ok, f"seed {SEED}: {report}"
    links = chain(SqlUnitOfWork(own_engine))
    positions = [p for p, _ in links]
    assert positions == list(range(positions[0], positions[0] + len(positions))), f"seed {SEED}"
    seqs = [s for _, s in links]
    assert len(seqs) == len(set(seqs)), f"seed {SEED}: an event sealed twice"
    with own_engine.connect() as conn:
        events = conn.execute(text("SELECT count(*) FROM audit_events")).scalar_one()
        decided = conn.execute(text("SELECT count(*) FROM decisions")).scalar_one()
    assert events == len(seqs), f"seed {SEED}: {events} events, {len(seqs)} sealed"
    assert decided == threads * per_thread
    with own_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM holds")).scalar_one() > 0  # not vacuous
    assert_checkers(own_engine, books, SEED)


# -- tampering -------------------------------------------------------------------------------------------


class TestVerifyCatchesTampering:
    def test_an_edited_payload_is_named(self, own_engine: Engine) -> None:
        uow, links = ten_sealed(own_engine)
        position, seq = links[4]
        as_owner_without_guards(
            own_engine,
            f"UPDATE audit_events SET payload = replace(payload, '\"n\":4', '\"n\":40') WHERE seq = {seq}",
        )
        report = verify_audit(uow=uow)
        assert (report.broken_seq, report.broken_position) == (seq, position)
        assert "does not match its hash" in (report.problem or "")

    def test_an_edited_filter_column_is_named(self, own_engine: Engine) -> None:
        uow, links = ten_sealed(own_engine)
        _, seq = links[2]
        as_owner_without_guards(
            own_engine, f"UPDATE audit_events SET customer_code = '8800000002' WHERE seq = {seq}"
        )
        report = verify_audit(uow=uow)
        assert report.broken_seq == seq
        assert "customer_code column was changed" in (report.problem or "")

    def test_a_deleted_middle_row_is_named(self, own_engine: Engine) -> None:
        uow, links = ten_sealed(own_engine)
        _, seq = links[6]
        as_owner_without_guards(own_engine, f"DELETE FROM audit_events WHERE seq = {seq}")
        report = verify_audit(uow=uow)
        assert (report.broken_seq, report.problem) == (seq, "the event row is missing")

    def test_a_deleted_event_and_its_seal_are_caught_at_the_gap(self, own_engine: Engine) -> None:
        uow, links = ten_sealed(own_engine)
        position, seq = links[5]
        as_owner_without_guards(
            own_engine,
            f"DELETE FROM audit_events WHERE seq = {seq}",
            f"DELETE FROM audit_seals WHERE seq = {seq}",
        )
        report = verify_audit(uow=uow)
        assert report.broken_position == position + 1
        assert f"seal {position} is missing" in (report.problem or "")

    def test_two_swapped_rows_are_caught_at_the_first(self, own_engine: Engine) -> None:
        uow, links = ten_sealed(own_engine)
        (_, first), (_, second) = links[3], links[7]
        as_owner_without_guards(
            own_engine,
            f"UPDATE audit_events SET seq = -1 WHERE seq = {first}",
            f"UPDATE audit_events SET seq = {first} WHERE seq = {second}",
            f"UPDATE audit_events SET seq = {second} WHERE seq = -1",
        )
        report = verify_audit(uow=uow)
        assert report.broken_seq == first

    def test_a_rehashed_seal_breaks_the_next_link(self, own_engine: Engine) -> None:
        """Recomputing one seal's hash after an edit still breaks the link from the seal after it."""
        uow, links = ten_sealed(own_engine)
        with uow:
            position, seq, payload, prev, _, _ = uow.audit.chain(after_position=links[1][0], limit=1)[0]
        forged = payload.replace('"n":2', '"n":99')
        assert forged != payload
        as_owner_without_guards(
            own_engine,
            f"UPDATE audit_events SET payload = '{forged}' WHERE seq = {seq}",
            f"UPDATE audit_seals SET hash = '{chain_hash(prev, forged)}' WHERE seq = {seq}",
        )
        report = verify_audit(uow=uow)
        assert report.broken_position == position + 1
        assert "previous hash" in (report.problem or "")

    def test_a_truncated_tail_is_caught_against_an_anchor(self, own_engine: Engine) -> None:
        uow, links = ten_sealed(own_engine)
        with uow:
            anchor = uow.audit.head()
        cut = links[7][0]
        as_owner_without_guards(
            own_engine,
            f"DELETE FROM audit_seals WHERE position > {cut}",
            f"DELETE FROM audit_events WHERE seq > {links[7][1]}",
        )
        assert verify_audit(uow=uow).ok  # what is left still links up...
        report = verify_audit(uow=uow, anchor=anchor)  # ...but not to the head an auditor kept
        assert report.broken_position == cut + 1  # the first position that is gone
        problem = report.problem or ""
        assert f"seals {cut + 1} to {links[-1][0]} are gone" in problem and "truncated" in problem

    def test_an_emptied_event_table_is_caught_at_the_first_event(self, own_engine: Engine) -> None:
        uow, links = ten_sealed(own_engine)
        as_owner_without_guards(own_engine, "DELETE FROM audit_events")
        report = verify_audit(uow=uow)
        assert (report.broken_position, report.broken_seq, report.checked) == (links[0][0], links[0][1], 0)
