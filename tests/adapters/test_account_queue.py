"""One account's orders take turns in a process before its row lock (adapters/sql/account_queue.py).

The queue itself: the same key one at a time, other keys never held up, nothing kept once nobody holds or
waits. Then on PostgreSQL, while another session holds the account's row lock: eight threads deciding on
it reach the database one at a time with the queue (one connection waits on the lock) and all at once
without it (eight wait); either way each is decided once and the books hold when the lock is let go."""

from __future__ import annotations

import os
import select
import socket
import threading
import time
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
from creditctl.services.decide_order import DecisionResult, decide_order
from tests.conftest import seed
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
                pool.submit(decide_order, o, scope=None, uow=ctx.uow(), balances=ctx.balances) for o in orders
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
        assert_invariants(postgres_engine)
    finally:
        engine.dispose()


def test_a_unit_that_cannot_connect_gives_its_turn_back() -> None:
    """No database to connect to: the next unit for the account is not left waiting behind it."""
    queue = AccountQueue()
    nowhere = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    try:
        with (
            pytest.raises(OperationalError),
            SqlUnitOfWork(nowhere, account_queue=queue).batched(queue_key=(CUSTOMER, GROUP)),
        ):
            pass
    finally:
        nowhere.dispose()
    assert len(queue) == 0


@pytest.mark.postgres
def test_a_turn_is_given_back_when_the_batch_cannot_be_opened(
    postgres_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The turn is taken before the connection and the batch: if opening the batch fails (any exception,
    a signal's included), __exit__ never runs, so __enter__ itself must give the turn back. Kept, every
    later order for the account in the process would wait on it for ever."""
    from adapters.sql import unit_of_work as sql_unit_of_work
    from adapters.sql.unit_of_work import SqlUnitOfWork

    def refuse(*_args: object) -> None:
        raise RuntimeError("the batch could not be opened")

    queue = AccountQueue()
    monkeypatch.setattr(sql_unit_of_work, "begin_batch", refuse)
    uow = SqlUnitOfWork(postgres_engine, account_queue=queue)
    with pytest.raises(RuntimeError, match="could not be opened"), uow.batched(queue_key=(CUSTOMER, GROUP)):
        pytest.fail("the block ran without its batch")
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
            outcome.append(decide_order(order, scope=None, uow=ctx.uow(), balances=ctx.balances))
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
