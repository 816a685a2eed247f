"""One account's orders take turns in a process before its row lock (adapters/sql/account_queue.py).

The queue itself: the same key one at a time, other keys never held up, nothing kept once nobody holds or
waits; the holder takes the work of those waiting and answers them, and whatever it took and did not
answer is answered ALONE. Then on PostgreSQL, while another session holds the account's row lock: eight
threads deciding on it reach the database one at a time with the queue (one connection waits on the lock)
and all at once without it (eight wait); with the queue the one that reaches it decides all eight in one
transaction, without it each its own; either way each is decided once and the books hold."""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from adapters.bootstrap import Settings, bootstrap, load_settings
from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.fake.clock import FakeClock
from adapters.sql import audit as sql_audit
from adapters.sql.account_queue import AccountQueue
from adapters.sql.engine import make_engine
from adapters.sql.unit_of_work import SqlUnitOfWork
from creditctl.domain.decision import Order
from creditctl.domain.errors import OrderIdReused
from creditctl.ports.turns import ALONE
from creditctl.services.context import AppContext
from creditctl.services.decide_order import DecisionResult, decide_order
from tests.conftest import seed
from tests.first_commit import before_the_first_commit
from tests.invariants import assert_invariants
from tests.random_refs import random_order_id

CUSTOMER, GROUP = "8800000001", "GA10"
THREADS = 8
WAIT_S = 10.0


def test_the_same_key_is_held_by_one_at_a_time_and_others_pass() -> None:
    queue = AccountQueue()
    inside, most = [0], [0]
    guard = threading.Lock()

    def hold(key: str, pause: float) -> None:
        with queue.turn(key):
            with guard:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(pause)
            with guard:
                inside[0] -= 1

    def pass_other() -> None:
        with queue.turn("other"):
            pass

    with ThreadPoolExecutor(THREADS + 1) as pool:
        held = [pool.submit(hold, "busy", 0.02) for _ in range(THREADS)]
        time.sleep(0.01)  # "busy" is held and queued for about 0.16 s now
        started = time.monotonic()
        pool.submit(pass_other).result(timeout=WAIT_S)
        other_wait = time.monotonic() - started
        for f in held:
            f.result(timeout=WAIT_S)
    assert most[0] == 1, "two holders of one key at once"
    assert other_wait < 0.1, f"another key waited {other_wait:.3f} s behind a busy one"


def test_nothing_is_kept_once_nobody_holds_or_waits_even_after_a_failure() -> None:
    queue = AccountQueue()
    with queue.turn(("8800000001", "GA10")):
        assert len(queue) == 1
    with pytest.raises(RuntimeError), queue.turn("k"):
        raise RuntimeError("the block failed")
    assert len(queue) == 0
    with queue.turn("k"):  # and the key is free again
        pass


def _when(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.005)


def _waiting(queue: AccountQueue, key: str) -> int:
    with queue._guard:
        entry = queue._keys.get(key)
        return 0 if entry is None else len(entry.waiting)


def test_the_holder_takes_what_the_callers_waiting_brought_and_each_gets_its_answer() -> None:
    queue = AccountQueue()
    handed: dict[str, object] = {}

    def bring(item: str) -> None:
        with queue.turn("k", item) as turn:
            handed[item] = turn.handed

    with ThreadPoolExecutor(3) as pool:
        with queue.turn("k") as holder:
            futures = [pool.submit(bring, item) for item in ("a", "b", "c")]
            _when(lambda: _waiting(queue, "k") == 3)
            taken = holder.take(2)  # the first two that came; the third waits for the turn
            handed_items = [t.item for t in taken]
            assert len(handed_items) == 2
            assert _waiting(queue, "k") == 1
            for t in taken:
                t.hand(f"done {t.item}")
            _when(lambda: len(handed) == 2)
        for f in futures:
            f.result(timeout=WAIT_S)
    (left,) = {"a", "b", "c"} - set(handed_items)
    assert handed == {**{i: f"done {i}" for i in handed_items}, left: None}  # the third held the turn
    assert len(queue) == 0


def test_what_a_holder_took_and_did_not_answer_is_answered_alone_when_its_turn_ends() -> None:
    queue = AccountQueue()
    handed: list[object] = []

    def bring() -> None:
        with queue.turn("k", "work") as turn:
            handed.append(turn.handed)

    with ThreadPoolExecutor(1) as pool:
        with pytest.raises(RuntimeError), queue.turn("k") as holder:
            future = pool.submit(bring)
            _when(lambda: _waiting(queue, "k") == 1)
            assert [t.item for t in holder.take(5)] == ["work"]
            raise RuntimeError("the holder failed before it answered")
        future.result(timeout=WAIT_S)
    assert handed == [ALONE]


def test_a_caller_without_the_turn_takes_nothing_and_one_that_brought_nothing_is_never_taken() -> None:
    queue = AccountQueue(wait_s=0.2)
    with queue.turn("k") as holder, ThreadPoolExecutor(1) as pool:
        waited = pool.submit(lambda: _took_without_turn(queue))
        assert _waiting(queue, "k") == 0  # it brought nothing: nothing to take
        assert holder.take(5) == []
        assert waited.result(timeout=WAIT_S) == []  # past wait_s it went on, holding no turn


def _took_without_turn(queue: AccountQueue) -> list[object]:
    with queue.turn("k") as turn:
        return list(turn.take(5))


def test_a_caller_whose_work_was_taken_waits_for_the_answer_only_for_wait_s() -> None:
    queue = AccountQueue(wait_s=0.2)
    with queue.turn("k") as holder, ThreadPoolExecutor(1) as pool:
        future = pool.submit(lambda: _handed(queue))
        _when(lambda: _waiting(queue, "k") == 1)
        (taken,) = holder.take(1)
        started = time.monotonic()
        assert future.result(timeout=WAIT_S) is None  # no answer: it goes on alone
        assert time.monotonic() - started < 1.0
        taken.hand("too late")  # answered after it left: nobody is waiting for it


def _handed(queue: AccountQueue) -> object:
    with queue.turn("k", "work") as turn:
        return turn.handed


def test_the_setting_is_on_by_default_and_read_as_on_or_off(tmp_path: Path) -> None:
    base = {"CREDITCTL_INSTANCE_PATH": str(tmp_path)}
    assert load_settings(base).account_queue is True
    assert load_settings(base | {"CREDITCTL_ACCOUNT_QUEUE": " Off "}).account_queue is False
    assert load_settings(base | {"CREDITCTL_ACCOUNT_QUEUE": "on"}).account_queue is True
    with pytest.raises(SystemExit, match="CREDITCTL_ACCOUNT_QUEUE must be 'on' or 'off'"):
        load_settings(base | {"CREDITCTL_ACCOUNT_QUEUE": "sometimes"})


def _waiting_on_a_lock(admin: Engine, application_name: str) -> int:
    with admin.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :n "
                    "AND wait_event_type = 'Lock'"
                ),
                {"n": application_name},
            ).scalar_one()
        )


@pytest.mark.postgres
@pytest.mark.parametrize(("queued", "waiting"), [(True, 1), (False, THREADS)])
def test_orders_for_a_locked_account_reach_its_row_lock_one_per_process_with_the_queue(
    postgres_engine: Engine,
    balances: FakeBalanceProvider,
    clock: FakeClock,
    tmp_path: Path,
    queued: bool,
    waiting: int,
) -> None:
    name = f"queue-{queued}"
    url = postgres_engine.url.render_as_string(hide_password=False)
    engine = make_engine(url, pool_size=THREADS, connect_args={"application_name": name})
    settings = Settings(instance_path=tmp_path / "instance", database_url=url, account_queue=queued)
    ctx = bootstrap(settings, balances=balances, clock=clock, engine=engine, database_clock=clock)
    seed(ctx)
    orders = [Order(random_order_id("queued"), CUSTOMER, GROUP, Decimal("10.00")) for _ in range(THREADS)]
    try:
        with postgres_engine.connect() as holder, ThreadPoolExecutor(THREADS) as pool:
            holder.execute(
                text(
                    "SELECT id FROM credit_accounts WHERE customer_code = :c AND sale_group_code = :g "
                    "FOR UPDATE"
                ),
                {"c": CUSTOMER, "g": GROUP},
            )
            futures = [
                pool.submit(
                    decide_order, o, scope=None, uow=ctx.uow(), balances=ctx.balances, turns=ctx.turns
                )
                for o in orders
            ]
            deadline = time.monotonic() + WAIT_S
            while _waiting_on_a_lock(postgres_engine, name) < waiting and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)  # had more been let through, they would be waiting by now
            assert _waiting_on_a_lock(postgres_engine, name) == waiting
            holder.rollback()
            results = [f.result(timeout=WAIT_S) for f in futures]
        assert all(r.created for r in results)
        assert {r.decision.order_id for r in results} == {o.order_id for o in orders}
        # decided together: the eight decisions, holds and audit events in one transaction
        assert _transactions(postgres_engine, orders) == (1 if queued else THREADS)
        assert_invariants(postgres_engine)
    finally:
        engine.dispose()


def _decided_behind_a_held_lock(
    postgres_engine: Engine, ctx: AppContext, orders: list[Order]
) -> list[DecisionResult | Exception]:
    """Each order in a thread of its own while another session holds the account's row lock, which it
    lets go once all are waiting (on the turn, or on the lock); each one's result or exception."""

    def decide(order: Order) -> DecisionResult | Exception:
        try:
            return decide_order(order, scope=None, uow=ctx.uow(), balances=ctx.balances, turns=ctx.turns)
        except Exception as exc:
            return exc

    with postgres_engine.connect() as holder, ThreadPoolExecutor(len(orders)) as pool:
        holder.execute(
            text(
                "SELECT id FROM credit_accounts WHERE customer_code = :c AND sale_group_code = :g FOR UPDATE"
            ),
            {"c": CUSTOMER, "g": GROUP},
        )
        futures = [pool.submit(decide, o) for o in orders]
        queue = ctx.turns
        assert isinstance(queue, AccountQueue)
        _when(lambda: _waiting(queue, (CUSTOMER, GROUP)) == len(orders) - 1)  # and one on the row lock
        holder.rollback()
        return [f.result(timeout=WAIT_S) for f in futures]


@pytest.mark.postgres
def test_orders_decided_together_each_see_the_exposure_the_one_before_left(
    postgres_engine: Engine, balances: FakeBalanceProvider, clock: FakeClock, tmp_path: Path
) -> None:
    """Eight orders of 300.00 on a balance of 1,000.00, decided in one transaction: had each been decided
    on the account as it was read, all eight would be approved (2,400.00 reserved)."""
    ctx = _queued_context(postgres_engine, balances, clock, tmp_path)
    orders = [Order(random_order_id("together"), CUSTOMER, GROUP, Decimal("300.00")) for _ in range(THREADS)]
    results = _decided_behind_a_held_lock(postgres_engine, ctx, orders)
    assert all(isinstance(r, DecisionResult) and r.created and r.together for r in results), results
    approved = [r.decision.order.amount for r in results if isinstance(r, DecisionResult) and r.decision.hold]
    assert 0 < len(approved) < THREADS and sum(approved) <= Decimal("1000.00"), approved
    assert _transactions(postgres_engine, orders) == 1
    assert_invariants(postgres_engine)


@pytest.mark.postgres
def test_an_order_whose_id_is_used_is_refused_alone_and_the_others_are_made(
    postgres_engine: Engine, balances: FakeBalanceProvider, clock: FakeClock, tmp_path: Path
) -> None:
    """One of eight orders reuses an id decided before with another body: it is left out of the
    transaction that decides the others (or, if it holds the turn, all go alone) and refused as a
    reused id; the seven others are made, once each."""
    ctx = _queued_context(postgres_engine, balances, clock, tmp_path)
    used = Order(random_order_id("used"), CUSTOMER, GROUP, Decimal("1.00"))
    assert decide_order(used, scope=None, uow=ctx.uow(), balances=ctx.balances).created
    orders = [Order(random_order_id("fresh"), CUSTOMER, GROUP, Decimal("2.00")) for _ in range(THREADS - 1)]
    orders.insert(THREADS // 2, Order(used.order_id, CUSTOMER, GROUP, Decimal("3.00")))  # another body
    results = _decided_behind_a_held_lock(postgres_engine, ctx, orders)
    reused = results.pop(THREADS // 2)
    assert isinstance(reused, OrderIdReused), reused
    assert all(isinstance(r, DecisionResult) and r.created for r in results), results
    assert_invariants(postgres_engine)


@pytest.mark.postgres
def test_orders_whose_answer_came_too_late_are_still_answered_as_made(
    postgres_engine: Engine,
    balances: FakeBalanceProvider,
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The holder takes the orders waiting, and its commit of all of them comes after they stopped
    waiting for its answer (wait_s): each, deciding alone, meets its own decision (its id, which the
    request brought: PostgreSQL names the primary key, not the order id's) and is answered as made."""
    ctx = _queued_context(postgres_engine, balances, clock, tmp_path)
    ctx.turns = AccountQueue(wait_s=0.5)
    # the first commit: the holder's, of every order
    before_the_first_commit(monkeypatch, SqlUnitOfWork, lambda _unit: time.sleep(1.5))
    orders = [Order(random_order_id("late"), CUSTOMER, GROUP, Decimal("2.00")) for _ in range(3)]
    results = _decided_behind_a_held_lock(postgres_engine, ctx, orders)
    assert all(isinstance(r, DecisionResult) and r.created for r in results), results
    assert _transactions(postgres_engine, orders) == 1  # made by the holder, in one
    assert_invariants(postgres_engine)


def _queued_context(
    postgres_engine: Engine, balances: FakeBalanceProvider, clock: FakeClock, tmp_path: Path
) -> AppContext:
    url = postgres_engine.url.render_as_string(hide_password=False)
    settings = Settings(instance_path=tmp_path / "instance", database_url=url, account_queue=True)
    ctx = bootstrap(settings, balances=balances, clock=clock, engine=postgres_engine, database_clock=clock)
    seed(ctx)
    return ctx


def _transactions(engine: Engine, orders: list[Order]) -> int:
    """How many transactions wrote these orders' decisions, holds and audit events (their xmin)."""
    ids = [o.order_id for o in orders]
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(DISTINCT xmin::text) FROM ("
                    " SELECT xmin FROM decisions WHERE order_id = ANY(:ids)"
                    " UNION ALL SELECT xmin FROM holds WHERE order_id = ANY(:ids)"
                    " UNION ALL SELECT xmin FROM audit_events WHERE order_id = ANY(:ids)) AS w"
                ),
                {"ids": ids},
            ).scalar_one()
        )


def test_an_order_whose_unit_cannot_connect_gives_its_turn_back() -> None:
    """No database to connect to: the next order for the account is not left waiting behind it."""
    queue = AccountQueue()
    nowhere = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    order = Order(random_order_id("nowhere"), CUSTOMER, GROUP, Decimal("1.00"))
    try:
        with pytest.raises(OperationalError):
            decide_order(
                order, scope=None, uow=SqlUnitOfWork(nowhere), balances=FakeBalanceProvider({}), turns=queue
            )
    finally:
        nowhere.dispose()
    assert len(queue) == 0


@pytest.mark.postgres
def test_a_turn_is_given_back_when_the_batch_cannot_be_opened(
    postgres_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening the batch fails (any exception, a signal's included): the turn taken before it is given
    back. Kept, every later order for the account in the process would wait on it for ever."""
    from adapters.sql import unit_of_work as sql_unit_of_work

    def refuse(*_args: object) -> None:
        raise RuntimeError("the batch could not be opened")

    queue = AccountQueue()
    monkeypatch.setattr(sql_unit_of_work, "begin_batch", refuse)
    order = Order(random_order_id("refused"), CUSTOMER, GROUP, Decimal("1.00"))
    with pytest.raises(RuntimeError, match="could not be opened"):
        decide_order(
            order,
            scope=None,
            uow=SqlUnitOfWork(postgres_engine),
            balances=FakeBalanceProvider({}),
            turns=queue,
        )
    assert len(queue) == 0

    def take_turn() -> bool:
        with queue.turn((CUSTOMER, GROUP)):
            return True

    with ThreadPoolExecutor(1) as pool:  # another request for the account gets its turn
        assert pool.submit(take_turn).result(timeout=WAIT_S)


def test_a_turn_held_for_ever_holds_the_others_up_only_for_wait_s() -> None:
    queue = AccountQueue(wait_s=0.2)
    stuck, release = threading.Event(), threading.Event()

    def hold_for_ever() -> None:
        with queue.turn("k"):
            stuck.set()
            release.wait(WAIT_S)

    def take_turn() -> float:
        started = time.monotonic()
        with queue.turn("k"):
            return time.monotonic() - started

    with ThreadPoolExecutor(2) as pool:
        holder = pool.submit(hold_for_ever)
        assert stuck.wait(WAIT_S)
        waited = pool.submit(take_turn).result(timeout=WAIT_S)
        assert 0.2 <= waited < 1.0, waited
        assert len(queue) == 1  # the holder still holds
        release.set()
        holder.result(timeout=WAIT_S)
    assert len(queue) == 0


class SilentProxy:
    """A TCP relay to PostgreSQL whose connections can be cut silently: nothing forwarded either way and
    nothing closed, as in a network partition (neither end can tell it from a slow peer)."""

    def __init__(self, upstream_port: int) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.upstream_port = upstream_port
        self.cut: set[int] = set()  # the application-side ports of the connections cut
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, (_, client_port) = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.sockets += [client, upstream]
            threading.Thread(target=self._relay, args=(client, upstream, client_port), daemon=True).start()

    def _relay(self, a: socket.socket, b: socket.socket, port: int) -> None:
        try:
            while True:
                readable, _, _ = select.select([a, b], [], [], 0.05)
                if port in self.cut:
                    continue
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except (OSError, ValueError):  # closed (select() on a closed socket raises ValueError)
            return

    def close(self) -> None:
        self.server.close()
        for s in self.sockets:
            s.close()


@pytest.mark.postgres
@pytest.mark.parametrize("queued", [False, True])
def test_an_order_is_not_held_in_the_process_behind_one_whose_connection_was_cut_silently(
    postgres_engine: Engine,
    balances: FakeBalanceProvider,
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    queued: bool,
) -> None:
    """The first order's connection goes silent after its lock read, before its COMMIT: its thread waits
    on a socket nothing will ever answer, while the server ends the idle transaction (here after 1 s)
    and frees the row. The next order for the account is decided then without the queue; with it, it
    was held in the process behind the stuck thread's turn for as long as that thread is stuck (still
    waiting 15 s later on main), and now goes on to the row lock after the queue's wait."""
    proxy = SilentProxy(postgres_engine.url.port or 5432)
    url = postgres_engine.url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    engine = make_engine(
        url, pool_size=4, connect_args={"options": "-c idle_in_transaction_session_timeout=1000"}
    )
    settings = Settings(instance_path=tmp_path / "instance", database_url=url, account_queue=queued)
    ctx = bootstrap(settings, balances=balances, clock=clock, engine=engine, database_clock=clock)
    seed(ctx)
    real_append = sql_audit.SqlAuditLog.append
    cut = threading.Event()

    def append_then_cut(self: sql_audit.SqlAuditLog, *args: object, **kwargs: object) -> None:
        real_append(self, *args, **kwargs)  # type: ignore[arg-type]
        if threading.current_thread().name == "cut-off" and not cut.is_set():
            driver = self._conn.connection.driver_connection
            assert driver is not None
            with socket.socket(fileno=os.dup(driver.pgconn.socket)) as own:
                proxy.cut.add(int(own.getsockname()[1]))
            cut.set()

    def decide(order: Order, outcome: list[object]) -> None:
        try:
            outcome.append(
                decide_order(order, scope=None, uow=ctx.uow(), balances=ctx.balances, turns=ctx.turns)
            )
        except Exception as exc:  # the cut-off one fails when the proxy closes
            outcome.append(exc)

    monkeypatch.setattr(sql_audit.SqlAuditLog, "append", append_then_cut)
    first: list[object] = []
    second: list[object] = []
    cut_off = threading.Thread(
        target=decide,
        args=(Order(random_order_id("cut"), CUSTOMER, GROUP, Decimal("1.00")), first),
        name="cut-off",
        daemon=True,
    )
    try:
        cut_off.start()
        assert cut.wait(WAIT_S)
        started = time.monotonic()
        nxt = threading.Thread(
            target=decide, args=(Order(random_order_id("next"), CUSTOMER, GROUP, Decimal("1.00")), second)
        )
        nxt.daemon = True
        nxt.start()
        nxt.join(15)
        waited = time.monotonic() - started
    finally:
        proxy.close()  # the cut-off thread sees its connection closed and ends
        cut_off.join(WAIT_S)
        engine.dispose()
    assert second, f"the next order was still waiting {waited:.1f} s later"
    assert isinstance(second[0], DecisionResult) and second[0].created, second
    assert first and not isinstance(first[0], DecisionResult), first  # never committed


def test_on_sqlite_orders_waiting_behind_the_turn_are_decided_together_and_a_used_id_goes_alone(
    context: AppContext, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite keeps the plain unit (no pipeline): a taken order id surfaces at its INSERT, not at the
    commit. The holder's transaction decides the new orders; the one whose id is used is refused alone."""
    queue = AccountQueue()
    used = Order(random_order_id("used"), CUSTOMER, GROUP, Decimal("1.00"))
    assert decide_order(used, scope=None, uow=context.uow(), balances=context.balances).created
    orders = [Order(random_order_id("sqlite"), CUSTOMER, GROUP, Decimal("2.00")) for _ in range(4)]
    orders.insert(2, Order(used.order_id, CUSTOMER, GROUP, Decimal("3.00")))  # another body: a conflict
    commits: list[int] = []
    real_commit, real_enter = SqlUnitOfWork.commit, SqlUnitOfWork.__enter__
    everyone_waits = threading.Event()

    def enter(self: SqlUnitOfWork) -> SqlUnitOfWork:
        if threading.current_thread().name.startswith("first"):
            assert everyone_waits.wait(WAIT_S), "the others never all waited"
        return real_enter(self)

    monkeypatch.setattr(SqlUnitOfWork, "commit", lambda self: (commits.append(1), real_commit(self)))
    monkeypatch.setattr(SqlUnitOfWork, "__enter__", enter)

    def decide(order: Order) -> DecisionResult | Exception:
        try:
            return decide_order(order, scope=None, uow=context.uow(), balances=context.balances, turns=queue)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(1, thread_name_prefix="first") as first, ThreadPoolExecutor(8) as pool:
        futures = [first.submit(decide, orders[0])]
        _when(lambda: (CUSTOMER, GROUP) in queue._keys and queue._keys[(CUSTOMER, GROUP)].held)
        futures += [pool.submit(decide, o) for o in orders[1:]]
        _when(lambda: _waiting(queue, (CUSTOMER, GROUP)) == len(orders) - 1)
        everyone_waits.set()
        results = [f.result(timeout=WAIT_S) for f in futures]
    reused = results.pop(2)
    assert isinstance(reused, OrderIdReused), reused
    assert all(isinstance(r, DecisionResult) and r.created for r in results), results
    assert len(commits) == 1  # the four new orders in one; the conflict failed at its INSERT, alone
    assert_invariants(sqlite_engine)


@pytest.mark.postgres
def test_a_batch_whose_connection_dies_at_its_commit_keeps_nothing_and_the_others_are_made_alone(
    postgres_engine: Engine,
    balances: FakeBalanceProvider,
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The holder's connection is killed as it sends the batch's writes and COMMIT: nothing of the batch
    is kept, and every order, the holder's own among them, is then decided alone, once, on the books as
    committed (the holder on a new connection)."""
    ctx = _queued_context(postgres_engine, balances, clock, tmp_path)

    def kill_its_connection(unit: SqlUnitOfWork) -> None:
        assert unit._conn is not None
        pid = unit._conn.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
        with postgres_engine.connect() as admin:
            assert admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
            gone = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p")
            _when(lambda: admin.execute(gone, {"p": pid}).scalar_one() == 0)

    # the first commit: the holder's, of every order
    killed = before_the_first_commit(monkeypatch, SqlUnitOfWork, kill_its_connection)
    orders = [Order(random_order_id("dead"), CUSTOMER, GROUP, Decimal("2.00")) for _ in range(4)]
    results = _decided_behind_a_held_lock(postgres_engine, ctx, orders)
    assert killed.is_set()
    assert all(isinstance(r, DecisionResult) and r.created and not r.together for r in results), results
    assert _transactions(postgres_engine, orders) == len(orders)  # each alone; the batch left nothing
    assert_invariants(postgres_engine)
