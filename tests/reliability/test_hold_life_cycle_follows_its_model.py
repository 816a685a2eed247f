"""Reliability 3: the hold life cycle as a state machine (Hypothesis), checked against a pure-Python model.

Steps: decide a new order, replay one (same body: the stored decision; another amount: a conflict that
changes nothing), settle (the driver debits the upstream's ledger first, as Haier does), release, let time
pass (holds expire by the moved database clock; a sweeper runs every step), and the balance moved up (a
payment) or down (a debit by someone else) then refreshed. After every step the database equals the model
(account balance and exposure, every hold's status, amounts, counting, expiry, every decision's outcome),
an ended hold never changes again, and both checkers pass.

The model, for one account with no credit line (refresh_after_s=0: every decision asks the ledger again):
  * a balance answer as of `now` replaces the snapshot; settled holds stop counting once one arrives
    after their settlement;
  * exposure = open holds + settled holds still counting; an order approves when the snapshot is positive
    and it fits in snapshot - exposure, blocks otherwise; a decision on a balance of zero or less freezes
    the account, and a frozen account blocks every order;
  * a hold expires hold_ttl_s after its decision, by the database clock, and stops counting then.

SQLite for speed (fresh database per example); a shorter run on PostgreSQL. Seeded from
CREDITCTL_TEST_SEED; Hypothesis prints the failing steps.
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, select, update

from adapters.bootstrap import Settings, bootstrap
from adapters.fake.clock import FakeClock
from adapters.sql.engine import make_engine
from adapters.sql.tables import credit_accounts, decisions, holds
from creditctl.domain.decision import Order
from creditctl.domain.errors import HoldNotOpen, OrderIdReused
from creditctl.services.context import AppContext
from creditctl.services.customers import refresh_balances, register_customer
from creditctl.services.decide_order import decide_order
from creditctl.services.expiry import sweep
from creditctl.services.resolve_hold import release_order, settle_order
from tests.ledger_upstream import LedgerUpstream
from tests.outside_checker import OutsideBooks
from tests.reliability.checkers import check_inside, check_outside
from tests.reliability.conftest import LONG

pytestmark = [pytest.mark.adapters]

GROUP = "GA10"
TTL_S = 3600  # the shortest hold_ttl_s a rule set may give
START_FEN = 100_000  # 1000.00
EXAMPLES, STEPS = (300, 50) if LONG else (10, 30)
_customers = count(1)
_epoch = [datetime.fromisoformat("2026-11-27T08:00:00+00:00")]  # each example starts after the last


def fen(amount: Decimal) -> int:
    return int(amount * 100)


def money(f: int) -> Decimal:
    return Decimal(f) / 100


@dataclass
class ModelHold:
    amount: int
    created_at: datetime
    status: str = "open"
    settled_at: datetime | None = None
    settled_counting: bool = False
    ended_at: datetime | None = None

    @property
    def expires_at(self) -> datetime:
        return self.created_at + timedelta(seconds=TTL_S)

    @property
    def counting(self) -> bool:
        return self.status == "open" or self.settled_counting

    @property
    def exposure(self) -> int:
        return self.amount if self.counting else 0


class Model:
    """What the service should hold, computed without it."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.ledger = START_FEN
        self.snapshot = START_FEN
        self.frozen = False
        self.holds: dict[str, ModelHold] = {}
        self.outcomes: dict[str, str] = {}
        self.amounts: dict[str, int] = {}

    def exposure(self) -> int:
        return sum(h.exposure for h in self.holds.values())

    def open_holds(self) -> int:
        return sum(h.amount for h in self.holds.values() if h.status == "open")

    def tick(self, seconds: int) -> list[str]:
        """Time passes and the sweeper runs: the holds it expires (the order system is told)."""
        self.now += timedelta(seconds=seconds)
        ended = []
        for order_id, h in self.holds.items():
            if h.status == "open" and h.expires_at <= self.now:
                h.status, h.ended_at = "expired", self.now  # ended when the sweeper ends it
                ended.append(order_id)
        return ended

    def refresh(self) -> None:
        """A balance as of now arrives: the snapshot is the ledger, settled holds before now are in it."""
        self.snapshot = self.ledger
        for h in self.holds.values():
            if h.settled_at is not None and h.settled_at < self.now:
                h.settled_counting = False

    def decide(self, order_id: str, amount: int) -> str:
        self.refresh()
        if self.frozen:
            outcome = "block"
        elif self.snapshot <= 0:
            outcome, self.frozen = "freeze", True
        elif amount <= self.snapshot - self.exposure():
            outcome = "approve"
            self.holds[order_id] = ModelHold(amount, self.now)
        else:
            outcome = "block"
        self.outcomes[order_id], self.amounts[order_id] = outcome, amount
        return outcome


class HoldLifeCycle(RuleBasedStateMachine):
    """Configured by `machine_for`: `engine_factory` gives each example its database."""

    engine_factory: Any = None
    folder: Path  # the instance folder's parent (set by machine_for)
    seen: Counter[str]  # what the run went through, over all examples (set by machine_for)

    orders = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        self.customer = f"77{next(_customers):08d}"
        self.engine: Engine = self.engine_factory()
        start = _epoch[0]
        self.clock = FakeClock(start)
        self.model = Model(start)
        self.upstream = LedgerUpstream()
        self.upstream.open_account(self.customer, GROUP, money(START_FEN))
        self.books = OutsideBooks(self.upstream)
        self.ended: dict[str, tuple[Any, ...]] = {}
        self.ctx = self._start()

    def _start(self) -> AppContext:
        settings_ = Settings(instance_path=self.folder / "instance", database_url=str(self.engine.url))
        ctx = bootstrap(
            settings_,
            balances=self.upstream.provider(self.clock),
            clock=self.clock,
            engine=self.engine,
            database_clock=self.clock,
        )
        register_customer(self.customer, uow=ctx.uow(), clock=self.clock)
        refresh_balances(self.customer, scope=None, uow=ctx.uow(), balances=ctx.balances, clock=self.clock)
        with self.engine.begin() as conn:
            conn.execute(
                update(credit_accounts)
                .where(credit_accounts.c.customer_code == self.customer)
                .values(params={"refresh_after_s": 0, "hold_ttl_s": TTL_S})
            )
        return ctx

    def teardown(self) -> None:
        _epoch[0] = self.model.now + timedelta(hours=1)

    # -- steps --------------------------------------------------------------------------------------

    def _tick(self, seconds: int = 1) -> None:
        self.clock.advance(seconds)
        sweep(uow=self.ctx.uow())
        for order_id in self.model.tick(seconds):  # the order system hears of the expiry: never settles
            self.books.release_requested(order_id)
            self.books.release_confirmed(order_id)
            self.seen["expired"] += 1

    @initialize(target=orders, amount=st.integers(1, START_FEN))
    def first_order(self, amount: int) -> str:
        """Every example starts with an order the balance carries (the rules after it may be switched
        off by Hypothesis's swarm testing: this one never is)."""
        return self.decide(amount)

    @rule(target=orders, amount=st.integers(1, 120_000))
    def decide(self, amount: int) -> str:
        self._tick()
        order_id = f"life-{self.customer}-{len(self.model.outcomes)}"
        result = decide_order(
            Order(order_id, self.customer, GROUP, money(amount)), scope=None, uow=self.ctx.uow(),
            balances=self.ctx.balances,
        )  # fmt: skip
        expected = self.model.decide(order_id, amount)
        assert result.created
        assert result.decision.outcome.value == expected, (result.decision.reasons, self.model.snapshot)
        self.books.saw(result.decision)
        self.seen[expected] += 1
        return order_id

    @rule(order_id=orders, same_body=st.booleans())
    def replay(self, order_id: str, same_body: bool) -> None:
        self._tick()
        amount = self.model.amounts[order_id] + (0 if same_body else 1)
        order = Order(order_id, self.customer, GROUP, money(amount))
        if same_body:
            result = decide_order(order, scope=None, uow=self.ctx.uow(), balances=self.ctx.balances)
            assert not result.created and result.decision.outcome.value == self.model.outcomes[order_id]
            self.seen["replay"] += 1
        else:
            with pytest.raises(OrderIdReused):
                decide_order(order, scope=None, uow=self.ctx.uow(), balances=self.ctx.balances)
            self.seen["conflict"] += 1

    @rule(order_id=orders)
    def settle(self, order_id: str) -> None:
        self._tick()
        h = self.model.holds.get(order_id)
        if h is None or h.status in ("released", "expired"):
            with pytest.raises(HoldNotOpen):
                settle_order(order_id, scope=None, uow=self.ctx.uow())
            self.seen["settle refused"] += 1
            return
        if h.status == "open":  # Haier debits first, then the order system reports the settlement
            self.upstream.debit(self.customer, GROUP, money(h.amount))
            self.books.settle(order_id)
            self.model.ledger -= h.amount
            now = self.model.now
            h.status, h.settled_at, h.settled_counting, h.ended_at = "settled", now, True, now
            self.seen["settled"] += 1
        settle_order(order_id, scope=None, uow=self.ctx.uow())  # a retry of a settled one: unchanged

    @rule(order_id=orders)
    def release(self, order_id: str) -> None:
        self._tick()
        h = self.model.holds.get(order_id)
        if h is None or h.status in ("settled", "expired"):
            with pytest.raises(HoldNotOpen):
                release_order(order_id, scope=None, uow=self.ctx.uow())
            self.seen["release refused"] += 1
            return
        if h.status == "open":
            self.books.release_requested(order_id)
            h.status, h.ended_at = "released", self.model.now
            self.seen["released"] += 1
        release_order(order_id, scope=None, uow=self.ctx.uow())  # a retry of a released one: unchanged
        self.books.release_confirmed(order_id)

    @rule(seconds=st.sampled_from([1, 30, TTL_S - 60, TTL_S - 1, TTL_S, TTL_S + 1, TTL_S + 60, 3 * TTL_S]))
    def time_passes(self, seconds: int) -> None:
        self._tick(seconds)

    @rule(up=st.booleans(), amount=st.integers(1, 50_000), share=st.floats(0.01, 1.0))
    def balance_moves(self, up: bool, amount: int, share: float) -> None:
        """A payment arrives (up), or Haier debits something creditctl never held (down: never below
        what open holds may still spend); then the balance is refreshed."""
        self._tick()
        room = self.model.ledger - self.model.open_holds()
        if up or room <= 1:
            self.books.pay((self.customer, GROUP), money(amount))
            self.model.ledger += amount
            self.seen["balance up"] += 1
        else:
            amount = max(1, int(room * share))
            self.upstream.debit(self.customer, GROUP, money(amount))
            self.model.ledger -= amount
            self.seen["balance down"] += 1
        self._refresh()

    def _refresh(self) -> None:
        refresh_balances(
            self.customer, scope=None, uow=self.ctx.uow(), balances=self.ctx.balances, clock=self.clock
        )
        self.model.refresh()

    # -- after every step ---------------------------------------------------------------------------

    @invariant()
    def database_equals_model(self) -> None:
        with self.engine.connect() as conn:
            account = conn.execute(
                select(credit_accounts).where(credit_accounts.c.customer_code == self.customer)
            ).one()
            rows = {
                h.order_id: h for h in conn.execute(select(holds).where(holds.c.account_id == account.id))
            }
            outcomes = dict(
                conn.execute(
                    select(decisions.c.order_id, decisions.c.outcome).where(
                        decisions.c.customer_code == self.customer
                    )
                ).all()
            )
        m = self.model
        assert (account.balance_fen, account.exposure_fen) == (m.snapshot, m.exposure())
        assert (account.status == "frozen") == m.frozen, account.status
        assert outcomes == m.outcomes
        assert set(rows) == set(m.holds)
        for order_id, h in m.holds.items():
            row = rows[order_id]
            got = (row.status, row.amount_fen, row.settled_fen, row.counting, row.expires_at, row.ended_at)
            settled = h.amount if h.status == "settled" else 0
            want = (h.status, h.amount, settled, h.counting, h.expires_at, h.ended_at)
            assert got == want, f"hold of {order_id}: database {got} != model {want}"
            lasting = (row.status, row.amount_fen, row.settled_fen, row.ended_at)
            if row.status != "open":  # an ended hold never changes again (its counting may, once)
                assert self.ended.setdefault(order_id, lasting) == lasting, f"ended hold {order_id} changed"

    @invariant()
    def both_checkers_pass(self) -> None:
        assert check_inside(self.engine) == []
        assert check_outside(self.books) == []


def machine_for(engine_factory: Any, folder: Path) -> type[HoldLifeCycle]:
    attributes = {"engine_factory": staticmethod(engine_factory), "seen": Counter(), "folder": folder}
    return type("HoldLifeCycleRun", (HoldLifeCycle,), attributes)


ENDINGS = ("settled", "released", "expired")


def run(machine: type[HoldLifeCycle], seed_value: int, examples: int, steps: int, *, must_end: bool) -> None:
    """Run the machine; then it must have approved, and (a run long enough) ended a hold."""
    hypothesis_seed(seed_value)(machine)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    print(f"steps seen: {dict(machine.seen)}")
    seen = machine.seen
    ended = any(seen[k] for k in ENDINGS)
    assert seen["approve"] and (ended or not must_end), f"vacuous run: {dict(seen)} (seed {seed_value})"


def test_holds_on_sqlite_follow_the_model_step_by_step(
    sqlite_template: Path, tmp_path: Path, seed_value: int
) -> None:
    made: list[Engine] = []

    def fresh() -> Engine:
        path = tmp_path / f"life-{len(made)}.db"
        shutil.copy(sqlite_template, path)
        made.append(make_engine(f"sqlite:///{path}"))
        return made[-1]

    try:
        run(machine_for(fresh, tmp_path), seed_value, examples=EXAMPLES, steps=STEPS, must_end=True)
    finally:
        for engine in made:
            engine.dispose()


@pytest.mark.postgres
def test_holds_on_postgres_follow_the_model_step_by_step(pg: Engine, seed_value: int, tmp_path: Path) -> None:
    run(
        machine_for(lambda: pg, tmp_path),
        seed_value,
        examples=max(3, EXAMPLES // 5),
        steps=STEPS // 2,
        must_end=False,
    )
