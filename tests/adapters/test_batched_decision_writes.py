"""A decision's writes travel with its COMMIT (libpq's pipeline mode, adapters/sql/pipeline.py): whatever
breaks between them, nothing is half-written; and the statements it prepares on the session are prepared
again when something dropped them.

Two ways to break it on PostgreSQL: the process that sent the writes dies before the COMMIT reaches the
server (a child process is SIGKILLed while its transaction holds the written decision and hold, which
pg_locks shows), and a write late in the batch fails on the server (a trigger refuses the audit insert).
Either way no decision, hold, exposure, outbox or audit row of the order is left, the account is not
left locked, and the same order id sent again is decided once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    cast,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError

from adapters.sql import driver_statements
from adapters.sql.accounts import _PG_LOCK
from adapters.sql.audit import _PG_APPEND
from adapters.sql.driver_statements import DriverStatement
from adapters.sql.engine import make_engine
from adapters.sql.kept_connections import kept_for
from adapters.sql.pipeline import begin_batch, commit_batch
from adapters.sql.tables import audit_events, credit_accounts, decisions, holds
from adapters.sql.types import ExactJson, UtcDateTime
from creditctl.domain.decision import Order
from creditctl.services.context import AppContext
from creditctl.services.decide_order import decide_order
from tests.adapters.concurrency import hold_count
from tests.conftest import make_context
from tests.random_refs import random_order_id

pytestmark = pytest.mark.postgres

CUSTOMER, GROUP = "8800000001", "GA10"  # 1000.00 in TEST_BALANCES
AMOUNT = Decimal("100.00")
CHILD_WAIT_S = 60


def exposure_fen(engine: Engine) -> int:
    a = credit_accounts.c
    with engine.connect() as conn:
        stmt = select(a.exposure_fen).where(a.customer_code == CUSTOMER, a.sale_group_code == GROUP)
        return int(conn.execute(stmt).scalar_one())


def traces_of(engine: Engine, order_id: str) -> dict[str, int]:
    """Rows anywhere that name the order."""
    with engine.connect() as conn:

        def count(table: Any, where: Any) -> int:
            return int(conn.execute(select(func.count()).select_from(table).where(where)).scalar_one())

        return {
            "decisions": count(decisions, decisions.c.order_id == order_id),
            "holds": count(holds, holds.c.order_id == order_id),
            "audit_events": count(audit_events, audit_events.c.order_id == order_id),
            "outbox": int(
                conn.execute(
                    text("SELECT count(*) FROM outbox WHERE payload::text LIKE :o"), {"o": f"%{order_id}%"}
                ).scalar_one()
            ),
        }


NOTHING = {"decisions": 0, "holds": 0, "audit_events": 0, "outbox": 0}


def decide(ctx: AppContext, order: Order) -> Any:
    return decide_order(order, scope=None, uow=ctx.uow(), balances=ctx.balances)


def test_a_process_killed_between_the_batched_writes_leaves_nothing_half_written(
    pg_context: AppContext, postgres_engine: Engine
) -> None:
    order = Order(random_order_id("killed"), CUSTOMER, GROUP, AMOUNT)
    exposure_before = exposure_fen(postgres_engine)
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.adapters.test_batched_decision_writes",
            str(postgres_engine.url.render_as_string(hide_password=False)),
            order.order_id,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline().decode().split()
        assert line[:1] == ["WRITTEN"], (
            line,
            child.stderr.read().decode() if child.poll() is not None else "",
        )
        backend = int(line[1])
        with postgres_engine.connect() as conn:
            # The child's transaction has written the decision and the hold and holds the account's lock:
            # it is open, it has a transaction id (it wrote), and it holds row-exclusive locks on both tables.
            state, xid = conn.execute(
                text("SELECT state, backend_xid FROM pg_stat_activity WHERE pid = :p"), {"p": backend}
            ).one()
            assert state == "idle in transaction" and xid is not None
            written = set(
                conn.execute(
                    text(
                        "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                        "WHERE l.pid = :p AND l.mode = 'RowExclusiveLock'"
                    ),
                    {"p": backend},
                ).scalars()
            )
            assert {"decisions", "holds"} <= written, written
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(CHILD_WAIT_S)
        child.stdout.close()  # type: ignore[union-attr]
        child.stderr.close()  # type: ignore[union-attr]
    _wait_until_gone(postgres_engine, backend)

    assert traces_of(postgres_engine, order.order_id) == NOTHING
    assert exposure_fen(postgres_engine) == exposure_before
    again = decide(pg_context, order)  # the account is not left locked, and the order is decided once
    assert again.created and again.decision.hold is not None
    assert hold_count(postgres_engine, order.order_id) == 1
    assert exposure_fen(postgres_engine) == exposure_before + 10000


def test_a_write_that_fails_late_in_the_batch_takes_the_earlier_ones_with_it(
    pg_context: AppContext, postgres_engine: Engine
) -> None:
    order = Order(random_order_id("refused"), CUSTOMER, GROUP, AMOUNT)
    exposure_before = exposure_fen(postgres_engine)
    with postgres_engine.begin() as conn:  # the audit insert, the last write before the COMMIT, fails
        conn.execute(
            text(
                "CREATE FUNCTION refuse_order() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.order_id = '{order.order_id}' THEN RAISE EXCEPTION 'refused in a test'; END IF; "
                "RETURN NEW; END $$; CREATE TRIGGER refuse_order BEFORE INSERT ON audit_events "
                "FOR EACH ROW EXECUTE FUNCTION refuse_order()"
            )
        )
    try:
        with pytest.raises(Exception, match="refused in a test"):
            decide(pg_context, order)
    finally:
        with postgres_engine.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse_order ON audit_events; DROP FUNCTION refuse_order()"))

    assert traces_of(postgres_engine, order.order_id) == NOTHING
    assert exposure_fen(postgres_engine) == exposure_before
    again = decide(pg_context, order)
    assert again.created
    assert traces_of(postgres_engine, order.order_id)["holds"] == 1
    assert exposure_fen(postgres_engine) == exposure_before + 10000


def test_a_session_whose_prepared_statements_were_dropped_prepares_them_again_and_decides(
    pg_context: AppContext, postgres_engine: Engine, balances: Any, clock: Any, tmp_path: Path
) -> None:
    """DEALLOCATE ALL (or a pooler's DISCARD ALL) on the session between two decisions: the next lock
    read is told its statement is gone, ends the transaction it began and asks again, prepared anew."""
    one = make_engine(postgres_engine.url.render_as_string(hide_password=False), pool_size=1, max_overflow=0)
    kept_for_one = kept_for(one)
    assert kept_for_one is not None
    try:
        ctx = make_context(one, balances, clock, tmp_path / "one")
        exposure_before = exposure_fen(postgres_engine)
        assert decide(ctx, Order(random_order_id("prepared"), CUSTOMER, GROUP, AMOUNT)).created
        kept_for_one.release()  # the thread's kept connection back to the pool, its session as it is
        with one.connect() as conn:  # the pool's only connection: the session the decisions run on
            assert conn.exec_driver_sql("SELECT count(*) FROM pg_prepared_statements").scalar_one() >= 5
            conn.exec_driver_sql("DEALLOCATE ALL")
            conn.commit()
        after = Order(random_order_id("dropped"), CUSTOMER, GROUP, AMOUNT)
        assert decide(ctx, after).created
        assert traces_of(postgres_engine, after.order_id) == {
            **NOTHING,
            "decisions": 1,
            "holds": 1,
            "audit_events": 1,
        }
        assert exposure_fen(postgres_engine) == exposure_before + 2 * 10000
    finally:
        one.dispose()


def test_a_session_that_lost_one_of_its_prepared_statements_decides_and_goes_on_deciding(
    pg_context: AppContext, postgres_engine: Engine, balances: Any, clock: Any, tmp_path: Path
) -> None:
    """DEALLOCATE of the lock's statement alone: the lock read is told it is gone, and the others are
    still on the session. On main the retry forgot every name, prepared the writes again at commit,
    was told they exist (DuplicatePreparedStatement), and every later decision on the connection failed
    the same way (the names were never learnt back)."""
    one = make_engine(postgres_engine.url.render_as_string(hide_password=False), pool_size=1, max_overflow=0)
    kept_for_one = kept_for(one)
    assert kept_for_one is not None
    try:
        ctx = make_context(one, balances, clock, tmp_path / "one")
        exposure_before = exposure_fen(postgres_engine)
        assert decide(ctx, Order(random_order_id("prepared"), CUSTOMER, GROUP, AMOUNT)).created
        kept_for_one.release()  # the thread's kept connection back to the pool, its session as it is
        with one.connect() as conn:  # the pool's only connection: the session the decisions run on
            conn.exec_driver_sql(f"DEALLOCATE {_PG_LOCK.wire_name.decode()}")
            conn.commit()
        for n in range(3):
            assert decide(ctx, Order(random_order_id(f"lost-{n}"), CUSTOMER, GROUP, AMOUNT)).created
        assert exposure_fen(postgres_engine) == exposure_before + 4 * 10000
    finally:
        one.dispose()


def test_a_session_that_lost_a_write_statement_fails_that_decision_only(
    pg_context: AppContext, postgres_engine: Engine, balances: Any, clock: Any, tmp_path: Path
) -> None:
    """DEALLOCATE of the audit INSERT's statement alone: the next decision's lock read finds its own
    statement, and the write sent by name fails at commit (nothing of it is kept). That one fails; on
    main the failure made the connection forget every name, and from then on every decision on it failed
    preparing the lock's statement, which the session still had (DuplicatePreparedStatement)."""
    one = make_engine(postgres_engine.url.render_as_string(hide_password=False), pool_size=1, max_overflow=0)
    kept_for_one = kept_for(one)
    assert kept_for_one is not None
    try:
        ctx = make_context(one, balances, clock, tmp_path / "one")
        exposure_before = exposure_fen(postgres_engine)
        assert decide(ctx, Order(random_order_id("prepared"), CUSTOMER, GROUP, AMOUNT)).created
        kept_for_one.release()
        with one.connect() as conn:
            conn.exec_driver_sql(f"DEALLOCATE {_PG_APPEND.wire_name.decode()}")
            conn.commit()
        failed = Order(random_order_id("gone"), CUSTOMER, GROUP, AMOUNT)
        with pytest.raises(DBAPIError, match="does not exist"):
            decide(ctx, failed)
        assert traces_of(postgres_engine, failed.order_id) == NOTHING
        for n in range(3):
            assert decide(ctx, Order(random_order_id(f"after-{n}"), CUSTOMER, GROUP, AMOUNT)).created
        assert decide(ctx, failed).created  # the one that failed, sent again
        assert exposure_fen(postgres_engine) == exposure_before + 5 * 10000
    finally:
        one.dispose()


def _wait_until_gone(engine: Engine, backend: int) -> None:
    """The server notices the dead client and ends its backend (rolling its transaction back)."""
    deadline = time.monotonic() + CHILD_WAIT_S
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if not conn.execute(
                text("SELECT 1 FROM pg_stat_activity WHERE pid = :p"), {"p": backend}
            ).first():
                return
        time.sleep(0.05)
    pytest.fail(f"backend {backend} still there {CHILD_WAIT_S}s after its client was killed")


def _child(url: str, order_id: str) -> None:
    """Decide `order_id` and stop dead after the hold's INSERT reached the server, before the COMMIT:
    the writes so far are sent and answered (a sync), the process then waits to be SIGKILLed."""
    import tempfile

    from adapters.fake.balance_provider import FakeBalanceProvider
    from adapters.fake.clock import FakeClock
    from adapters.sql import holds as sql_holds
    from adapters.sql.engine import make_engine
    from adapters.sql.pipeline import PIPELINE
    from tests.conftest import TEST_BALANCES, make_context

    real_add = sql_holds.SqlHoldRepository.add

    def add_then_stop(self: Any, hold: Any) -> None:
        real_add(self, hold)
        self._conn.info[PIPELINE].flush()
        driver = self._conn.connection.driver_connection
        print("WRITTEN", driver.info.backend_pid, flush=True)
        time.sleep(CHILD_WAIT_S)
        os._exit(3)  # never reached: the parent kills first

    sql_holds.SqlHoldRepository.add = add_then_stop  # type: ignore[method-assign]
    clock = FakeClock()
    balances = FakeBalanceProvider({k: [dict(e) for e in v] for k, v in TEST_BALANCES.items()}, clock=clock)
    ctx = make_context(make_engine(url), balances, clock, Path(tempfile.mkdtemp()))
    decide(ctx, Order(order_id, CUSTOMER, GROUP, AMOUNT))
    print("COMMITTED", flush=True)  # the parent fails on this


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])


# The column types the batched statements write (adapters/sql/tables.py: decisions, holds, audit_events,
# credit_accounts), and values whose text form could be read back otherwise than the cursor sent them.
_TYPES = Table(
    f"batched_types_{uuid4().hex[:12]}",
    MetaData(),
    Column("k", String(20), primary_key=True),
    Column("big", BigInteger),
    Column("i", Integer),
    Column("b", Boolean),
    Column("s", String(64)),
    Column("t", Text),
    Column("at", UtcDateTime),
    Column("doc", ExactJson),
    Column("d", Date),
)
_EDGES: list[dict[str, Any]] = [
    {
        "big": 2**63 - 1,
        "i": -(2**31),
        "b": True,
        "s": "PO/2026/'x'\\y",
        "t": "",
        "at": datetime(2026, 12, 5, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=8))),
        "doc": {"n": Decimal("1E+2"), "z": Decimal("-0"), "u": 'ünï\u2028\u0001"', "l": [None, True]},
        "d": date(2026, 2, 28),
    },
    {
        "big": -(2**63),
        "i": 0,
        "b": False,
        "s": " leading and trailing ",
        "t": "NULL",
        "at": datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
        "doc": "just a string",
        "d": date(1, 1, 1),
    },
    {"big": None, "i": None, "b": None, "s": None, "t": None, "at": None, "doc": None, "d": None},
]


@pytest.mark.parametrize("zone", ["UTC", "Asia/Shanghai", "America/St_Johns"])
def test_a_row_written_through_the_batch_equals_one_written_through_the_cursor(
    postgres_engine: Engine, zone: str
) -> None:
    """The batch sends its parameters as untyped text ($n, the server infers each from where it stands);
    the cursor sent them as psycopg types them. For every column type the batched statements write, in
    a session whose time zone is not UTC too, both rows read back the same, as values and as text."""
    engine = make_engine(
        postgres_engine.url.render_as_string(hide_password=False),
        pool_size=1,
        connect_args={"options": f"-c TimeZone={zone}"},
    )
    statement = DriverStatement.of(insert(_TYPES), keys=[c.key for c in _TYPES.c])
    as_text = select(*(cast(c, Text) for c in _TYPES.c if c.key != "k"))
    try:
        with engine.begin() as conn:
            _TYPES.create(conn)
        for n, values in enumerate(_EDGES):
            batched, plain = f"batched-{n}", f"plain-{n}"
            with engine.connect() as conn:
                batch = begin_batch(conn, {})
                driver_statements.execute(conn, statement, values | {"k": batched})
                commit_batch(batch)
                conn.commit()
            with engine.connect() as conn:
                driver_statements.execute(conn, statement, values | {"k": plain})
                conn.commit()
            with engine.connect() as conn:
                rows = {
                    k: conn.execute(select(_TYPES).where(_TYPES.c.k == k)).one() for k in (batched, plain)
                }
                texts = {k: conn.execute(as_text.where(_TYPES.c.k == k)).one() for k in (batched, plain)}
            assert rows[batched][1:] == rows[plain][1:], n
            assert texts[batched] == texts[plain], n
            assert rows[batched].at == values["at"], n  # the same instant, whatever the zones
    finally:
        with engine.begin() as conn:
            _TYPES.drop(conn, checkfirst=True)
        engine.dispose()
