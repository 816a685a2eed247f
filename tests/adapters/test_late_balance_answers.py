"""An upstream answer that lands after its requester's deadline, wired as bootstrap wires haier
(SharedBalanceProvider around AsOfBalanceProvider around the client; the fetch goes on in the background,
applies what it brings to the customer's accounts and stores it as the customer's report).

The question (a reviewer's, from reliability test 16): such a late answer is kept as the account's snapshot
and stamped with the moment its request left, around when its requester asked. Is that a defect? The
design says what a snapshot carries: "a snapshot is as of when its request was sent, not when its answer
arrived" (design.md, holds; conventions §15). The upstream reads its ledger somewhere between the request
leaving and the answer arriving, so the send time is the one moment the answer is certainly at least as
recent as; a late answer is then only an older snapshot, judged by the same rules as any other. What
follows proves, on SQLite and PostgreSQL, that keeping it that way:

  * never makes it look younger than it is: its age, for max_balance_age_s and refresh_after_s, counts from
    the request, so a decision never approves on a balance older than the rules allow;
  * never frees money settled while it was on the wire (the settle is after its as-of moment);
  * never replaces a newer snapshot another fetch brought meanwhile;
  * approves nothing while it is unknown (the requester that gave up defers);
  * keeps the upstream's economy: the kept answer serves the rest of its refresh window.

Each scenario also runs against the variant that stamps an answer when it arrives (the client's own
stamp, no AsOfBalanceProvider), where it must go wrong: the proof that these tests can fail."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, update

from adapters.bootstrap import Settings, bootstrap
from adapters.fake.clock import FakeClock
from adapters.sql.balance_reports import SqlSharedBalanceReports
from adapters.sql.tables import credit_accounts
from creditctl.domain.balance import BalanceReport, BalanceSnapshot
from creditctl.domain.decision import Decision, Order
from creditctl.services.as_of_balances import AsOfBalanceProvider
from creditctl.services.context import AppContext
from creditctl.services.customers import apply_report, refresh_balances, register_customer
from creditctl.services.decide_order import DecisionResult, decide_order
from creditctl.services.get_decision import get_decision
from creditctl.services.resolve_hold import settle_order
from creditctl.services.shared_balances import SharedBalanceProvider
from rules import Outcome
from tests.adapters.haier_support import clear_upstream_tables, flights_ended_at_exit
from tests.invariants import check_invariants
from tests.ledger_upstream import Flight, LedgerUpstream
from tests.outside_checker import OutsideBooks
from tests.random_refs import random_customer_code, random_order_id

pytestmark = pytest.mark.adapters

GROUP = "GA10"
THOUSAND = Decimal("1000.00")
GAVE_UP_S = 0.2  # the requester's deadline; the held answer lands long after it


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    try:
        with flights_ended_at_exit():  # before the shared report rows they may wait for are cleared
            yield engine
    finally:
        clear_upstream_tables(engine)


@dataclass
class Gate:
    """Holds a fetched report between its arrival and the update of its accounts."""

    entered: threading.Event = field(default_factory=threading.Event)
    go: threading.Event = field(default_factory=threading.Event)


@dataclass
class Instance:
    """One creditctl instance: bootstrap's haier wiring over the test's ledger, the fake clock standing in
    for the database's. `landed` holds every report its background fetches stored."""

    ctx: AppContext
    clock: FakeClock
    landed: list[BalanceReport] = field(default_factory=list)
    gate: Gate | None = None  # set: the next fetched report waits at it before its accounts are updated

    def decide(self, name: str, customer: str, amount: Decimal = THOUSAND) -> DecisionResult:
        order = Order(random_order_id(name), customer, GROUP, amount)
        return decide_order(
            order, scope=None, uow=self.ctx.uow(), balances=self.ctx.balances, deadline_s=GAVE_UP_S
        )

    def settle(self, order_id: str) -> Decision:
        return settle_order(order_id, scope=None, uow=self.ctx.uow())

    def decision(self, order_id: str) -> Decision:
        return get_decision(order_id, scope=None, uow=self.ctx.uow())

    def snapshot(self, customer: str) -> BalanceSnapshot | None:
        with self.ctx.uow() as uow:
            account = uow.accounts.get(customer, GROUP)
        assert account is not None
        return account.snapshot

    def hold_reports(self) -> Gate:
        self.gate = Gate()
        return self.gate

    def wait_landed(self, count: int) -> None:
        """`count` reports applied, and their flights over (the report stored, the lease ended)."""
        assert wait_until(lambda: len(self.landed) >= count), "the late answer never landed"
        assert wait_until(lambda: not self.ctx.balances._inflight), "its flight never ended"  # type: ignore[attr-defined]


def start_instance(
    engine: Engine, upstream: LedgerUpstream, clock: FakeClock, tmp_path: Path, name: str, *, on_arrival: bool
) -> Instance:
    """As `_balance_provider` wires haier: SharedBalanceProvider(AsOfBalanceProvider(client), ...,
    on_report=apply_report). `on_arrival`: the broken variant without AsOfBalanceProvider, whose snapshots
    carry the client's own stamp, taken when the answer arrives."""
    settings = Settings(instance_path=tmp_path / name, database_url=str(engine.url))
    ctx = bootstrap(
        settings, balances=upstream.provider(clock), clock=clock, engine=engine, database_clock=clock
    )
    as_of = ctx.balances
    assert isinstance(as_of, AsOfBalanceProvider)
    instance = Instance(ctx, clock)

    def on_report(report: BalanceReport) -> None:
        if instance.gate is not None:
            instance.gate.entered.set()
            assert instance.gate.go.wait(10), "the test never opened the gate"
        apply_report(report, uow=ctx.uow())
        instance.landed.append(report)

    ctx.balances = SharedBalanceProvider(
        as_of.inner if on_arrival else as_of,
        SqlSharedBalanceReports(engine),
        clock,
        poll_s=0.02,
        on_report=on_report,
    )
    return instance


def open_account(engine: Engine, one: Instance, upstream: LedgerUpstream, **params: Any) -> str:
    """A customer with 1,000.00 at the ledger, registered and fetched once, the account's params set."""
    customer = random_customer_code()
    upstream.open_account(customer, GROUP, THOUSAND)
    register_customer(customer, uow=one.ctx.uow(), clock=one.clock)
    refresh_balances(customer, scope=None, uow=one.ctx.uow(), balances=one.ctx.balances, clock=one.clock)
    one.wait_landed(1)
    if params:
        with engine.begin() as conn:
            conn.execute(
                update(credit_accounts)
                .where(
                    credit_accounts.c.customer_code == customer, credit_accounts.c.sale_group_code == GROUP
                )
                .values(params=dict(params))
            )
    return customer


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def reasons(result: DecisionResult | Decision) -> set[str]:
    decision = result.decision if isinstance(result, DecisionResult) else result
    return {r.reason for r in decision.reasons}


def gave_up(one: Instance, name: str, customer: str, flight: Flight, amount: Decimal = THOUSAND) -> Decision:
    """A decision whose fetch reaches the ledger and is held there past the requester's deadline."""
    result = one.decide(name, customer, amount)  # returns while the answer is still held
    flight.wait_read()
    return result.decision


# -- the scenarios: each returns what it observed; the tests below judge it --------------------------------


@dataclass
class Settled:
    o2: DecisionResult
    books: OutsideBooks
    one: Instance
    upstream: LedgerUpstream
    customer: str
    asked_at: datetime  # when the late answer's request left


def settle_while_the_late_answer_is_on_the_wire(
    engine: Engine, tmp_path: Path, *, on_arrival: bool
) -> Settled:
    """O0 takes all 1,000.00. The snapshot goes stale; O1's fetch reads 1,000.00 at the ledger and is held
    past O1's deadline; meanwhile Haier debits O0 and it is settled; then the answer lands. O2 follows,
    decided on the kept answer (young for refresh_after_s)."""
    clock, upstream = FakeClock(), LedgerUpstream()
    books = OutsideBooks(upstream)
    one = start_instance(engine, upstream, clock, tmp_path, "one", on_arrival=on_arrival)
    customer = open_account(engine, one, upstream)
    o0 = one.decide("o0", customer).decision
    assert books.saw(o0), f"O0 must be approved on 1,000.00: {reasons(o0)}"

    clock.advance(301)  # older than refresh_after_s (300): the next decision asks the upstream
    flight = upstream.hold_next_answer(customer)
    asked_at = clock.now()
    gave_up(one, "o1", customer, flight)
    assert flight.balances[GROUP] == THOUSAND  # read before O0's debit
    clock.advance(5)
    upstream.debit(customer, GROUP, THOUSAND)
    books.settle(o0.order.order_id)
    one.settle(o0.order.order_id)
    clock.advance(5)  # the answer lands 10 s after its request left
    flight.release.set()
    one.wait_landed(2)

    o2 = one.decide("o2", customer)
    books.saw(o2.decision)
    return Settled(o2, books, one, upstream, customer, asked_at)


def late_answer_older_than_the_rules_allow(
    engine: Engine, tmp_path: Path, *, on_arrival: bool
) -> tuple[Decision, DecisionResult, Instance, str]:
    """max_balance_age_s 60. The snapshot is 100 s old (unusable); O1 (100.00) asks, its fetch is held
    past its deadline; the answer lands 70 s after its request left: older than the rules allow by the time
    it arrives. O1 (deferred, re-checked when a balance is adopted) and a new O2 (whose own fetch is held
    past its deadline too) may not be approved on it."""
    clock, upstream = FakeClock(), LedgerUpstream()
    one = start_instance(engine, upstream, clock, tmp_path, "one", on_arrival=on_arrival)
    customer = open_account(engine, one, upstream, max_balance_age_s=60, refresh_after_s=30)
    clock.advance(100)
    first = upstream.hold_next_answer(customer)
    o1 = gave_up(one, "o1", customer, first, Decimal("100.00"))
    assert o1.outcome is Outcome.DEFER and "BALANCE_UNAVAILABLE" in reasons(o1), reasons(o1)
    clock.advance(70)
    first.release.set()
    one.wait_landed(2)

    second = upstream.hold_next_answer(customer)  # O2's fetch, if it makes one, is held past its deadline
    o2 = one.decide("o2", customer, Decimal("100.00"))
    rechecked = one.decision(o1.order.order_id)
    second.release.set()
    if "UPSTREAM_TIMEOUT" in reasons(o2):
        one.wait_landed(3)
    return rechecked, o2, one, customer


def newer_snapshot_stored_while_the_late_answer_is_on_the_wire(
    engine: Engine, tmp_path: Path, *, on_arrival: bool
) -> tuple[BalanceSnapshot | None, BalanceSnapshot | None, Instance, str]:
    """Instance A's fetch (1,000.00 read) is held past its requester's deadline and past its lease; a
    payment of 500.00 arrives; instance B fetches (1,500.00) and stores it; A's answer lands after.
    Returns the account's snapshot before and after A's answer landed."""
    clock, upstream = FakeClock(), LedgerUpstream()
    a = start_instance(engine, upstream, clock, tmp_path, "a", on_arrival=on_arrival)
    b = start_instance(engine, upstream, clock, tmp_path, "b", on_arrival=on_arrival)
    customer = open_account(engine, a, upstream)
    clock.advance(301)
    flight = upstream.hold_next_answer(customer)
    gave_up(a, "o1", customer, flight, Decimal("100.00"))
    clock.advance(40)  # past A's lease (fetch_timeout_s 30 + 5)
    upstream.credit(customer, GROUP, Decimal("500.00"))
    assert b.decide("o2", customer, Decimal("100.00")).decision.outcome is Outcome.APPROVE
    b.wait_landed(1)
    newer = b.snapshot(customer)
    clock.advance(1)  # A's answer arrives a second after B's request left
    flight.release.set()
    a.wait_landed(2)
    return newer, a.snapshot(customer), a, customer


# -- correct wiring: none of it goes wrong ------------------------------------------------------------------


class TestALateAnswerAsBootstrapWiresHaier:
    def test_is_kept_as_of_when_its_request_left_not_when_it_arrived(
        self, db: Engine, tmp_path: Path
    ) -> None:
        run = settle_while_the_late_answer_is_on_the_wire(db, tmp_path, on_arrival=False)
        snapshot = run.one.snapshot(run.customer)
        assert snapshot is not None and snapshot.amount == THOUSAND
        assert snapshot.fetched_at == run.asked_at, "stamped when it arrived, 10 s after its request left"
        assert snapshot.age_s(run.one.clock.now()) == 10

    def test_never_frees_money_settled_while_it_was_on_the_wire(self, db: Engine, tmp_path: Path) -> None:
        run = settle_while_the_late_answer_is_on_the_wire(db, tmp_path, on_arrival=False)
        assert run.o2.decision.outcome is not Outcome.APPROVE, (
            f"O2 approved on an answer read before O0's settle: {reasons(run.o2)}; "
            f"outside: {run.books.problems()}"
        )
        assert run.books.problems() == []
        assert check_invariants(db) == []

    def test_approves_nothing_once_older_than_max_balance_age_by_its_request_time(
        self, db: Engine, tmp_path: Path
    ) -> None:
        rechecked, o2, _, _ = late_answer_older_than_the_rules_allow(db, tmp_path, on_arrival=False)
        assert rechecked.outcome is Outcome.DEFER, (
            f"O1 re-checked on a 70 s old balance: {reasons(rechecked)}"
        )
        assert o2.decision.outcome is Outcome.DEFER, f"O2 on a 70 s old balance: {reasons(o2)}"
        assert {"BALANCE_UNAVAILABLE", "UPSTREAM_TIMEOUT"} <= reasons(o2)
        assert o2.decision.hold is None

    def test_never_replaces_a_newer_snapshot_stored_meanwhile(self, db: Engine, tmp_path: Path) -> None:
        newer, after, a, customer = newer_snapshot_stored_while_the_late_answer_is_on_the_wire(
            db, tmp_path, on_arrival=False
        )
        assert newer is not None and newer.amount == Decimal("1500.00")
        assert after == newer, f"A's late answer ({a.landed[-1]}) replaced B's newer snapshot"
        stored, _, _ = SqlSharedBalanceReports(db).latest(customer)
        assert stored is not None and stored.fetched_at == newer.fetched_at
        assert stored.for_sale_group(GROUP).amount == Decimal("1500.00")  # type: ignore[union-attr]

    def test_serves_the_rest_of_its_refresh_window_and_no_longer(self, db: Engine, tmp_path: Path) -> None:
        """The kept answer spares the upstream until refresh_after_s after its request, then one call."""
        run = settle_while_the_late_answer_is_on_the_wire(db, tmp_path, on_arrival=False)
        calls = run.upstream.fetches
        run.one.clock.advance(289)  # 299 s after the late answer's request: still its window
        run.one.decide("o3", run.customer, Decimal("1.00"))
        assert run.upstream.fetches == calls
        run.one.clock.advance(1)  # 300 s: the window is over
        run.one.decide("o4", run.customer, Decimal("1.00"))
        assert run.upstream.fetches == calls + 1


# -- the broken variant: the same scenarios go wrong there ---------------------------------------------------


class TestTheScenariosCatchAVariantThatStampsAnswersOnArrival:
    def test_the_settled_money_is_spent_twice(self, db: Engine, tmp_path: Path) -> None:
        run = settle_while_the_late_answer_is_on_the_wire(db, tmp_path, on_arrival=True)
        assert run.o2.decision.outcome is Outcome.APPROVE, reasons(run.o2)
        assert run.books.problems(), "the outside checker must see 2,000.00 approved against 1,000.00"

    def test_a_balance_older_than_the_rules_allow_approves(self, db: Engine, tmp_path: Path) -> None:
        rechecked, o2, _, _ = late_answer_older_than_the_rules_allow(db, tmp_path, on_arrival=True)
        assert Outcome.APPROVE in (rechecked.outcome, o2.decision.outcome)

    def test_the_late_answer_replaces_the_newer_snapshot(self, db: Engine, tmp_path: Path) -> None:
        newer, after, _, _ = newer_snapshot_stored_while_the_late_answer_is_on_the_wire(
            db, tmp_path, on_arrival=True
        )
        assert newer is not None and after is not None
        assert after.amount == THOUSAND and after.fetched_at > newer.fetched_at


# -- the upstream's economy while a late answer is being applied ---------------------------------------------


class TestTheUpstreamEconomyAroundALateAnswer:
    """Between a late answer's arrival and its accounts being brought up to date (one transaction per payer
    account, deferred orders re-checked), a decision still sees the stale snapshot and asks again. The
    shared report answers such a caller when it is younger than reuse_s (1 s) by its request time, which a
    late answer never is: the caller must find the flight or the lease still there instead, else it makes
    a second upstream call inside the refresh window."""

    @pytest.mark.parametrize("where", ["on the same instance", "on another instance"])
    def test_a_decision_while_the_late_answer_is_applied_makes_no_second_upstream_call(
        self, db: Engine, tmp_path: Path, where: str
    ) -> None:
        clock, upstream = FakeClock(), LedgerUpstream()
        a = start_instance(db, upstream, clock, tmp_path, "a", on_arrival=False)
        b = start_instance(db, upstream, clock, tmp_path, "b", on_arrival=False)
        customer = open_account(db, a, upstream)
        clock.advance(301)
        flight = upstream.hold_next_answer(customer)
        gave_up(a, "o1", customer, flight, Decimal("1.00"))
        calls = upstream.fetches
        clock.advance(10)
        gate = a.hold_reports()
        flight.release.set()
        assert gate.entered.wait(10), "the late answer never arrived"
        decider = a if where == "on the same instance" else b
        started = time.monotonic()
        decided = decider.decide("o2", customer, Decimal("1.00")).decision
        waited = time.monotonic() - started
        gate.go.set()
        a.wait_landed(2)
        assert upstream.fetches == calls, (
            f"{upstream.fetches - calls} more upstream call(s) 10 s into the late answer's refresh window"
        )
        assert waited < 2.0, f"the decision waited {waited:.1f} s past its {GAVE_UP_S} s deadline"
        assert decided.balance is not None  # decided on the snapshot it had (311 s old, usable)
        snapshot = a.snapshot(customer)
        assert snapshot is not None and snapshot.age_s(clock.now()) == 10  # the late answer, applied
