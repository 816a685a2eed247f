"""SharedBalanceProvider on SQLite and PostgreSQL: one upstream call per customer per database, a fetch
that outlives its caller's deadline and still refreshes the snapshot, failures shared, and decisions that
fall back to the stored snapshot (or defer, saying why) when the upstream cannot answer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from adapters.bootstrap import Settings, bootstrap
from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.fake.clock import FakeClock
from adapters.sql.balance_reports import SqlSharedBalanceReports
from creditctl.domain.balance import BalanceReport
from creditctl.domain.decision import Order
from creditctl.ports.balance_provider import BalanceUnavailable
from creditctl.services.context import AppContext
from creditctl.services.customers import register_customer, store_report
from creditctl.services.decide_order import decide_order
from creditctl.services.shared_balances import SharedBalanceProvider
from rules import Outcome
from tests.adapters.concurrency import all_at_once
from tests.adapters.haier_support import clear_upstream_tables, flights_ended_at_exit
from tests.conftest import TEST_BALANCES
from tests.random_refs import random_order_id

pytestmark = pytest.mark.adapters

CUSTOMER, GROUP = "8800000001", "GA10"  # 1000.00 in TEST_BALANCES


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    try:
        with flights_ended_at_exit():  # before the shared report rows they may wait for are cleared
            yield engine
    finally:
        clear_upstream_tables(engine)


def fake(clock: FakeClock, *, delay_s: float = 0.0) -> FakeBalanceProvider:
    provider = FakeBalanceProvider({k: [dict(e) for e in v] for k, v in TEST_BALANCES.items()}, clock=clock)
    provider.delay_s = delay_s
    return provider


def shared(inner: Any, db: Engine, clock: FakeClock, **kwargs: Any) -> SharedBalanceProvider:
    kwargs.setdefault("poll_s", 0.02)
    return SharedBalanceProvider(inner, SqlSharedBalanceReports(db), clock, **kwargs)


def codes(results: list[Any]) -> list[str]:
    return [getattr(r.error, "code", repr(r.error)) for r in results]


class TestSingleFlight:
    def test_fifty_concurrent_fetches_of_one_customer_make_one_inner_call(
        self, db: Engine, clock: FakeClock
    ) -> None:
        inner = fake(clock, delay_s=0.3)
        provider = shared(inner, db, clock)
        results = all_at_once(50, lambda i: provider.fetch(CUSTOMER, timeout_s=10))
        assert [r.error for r in results if r.error] == []
        assert inner.calls == [CUSTOMER]
        assert {r.value.accounts for r in results} == {results[0].value.accounts}

    def test_two_instances_on_one_database_make_one_inner_call_in_total(
        self, db: Engine, clock: FakeClock
    ) -> None:
        """Two providers, each with its own upstream client, as two processes would have."""
        inners = [fake(clock, delay_s=0.3), fake(clock, delay_s=0.3)]
        providers = [shared(inner, db, clock) for inner in inners]
        results = all_at_once(50, lambda i: providers[i % 2].fetch(CUSTOMER, timeout_s=10))
        assert [r.error for r in results if r.error] == []
        assert len(inners[0].calls) + len(inners[1].calls) == 1
        assert len({r.value.fetched_at for r in results}) == 1

    def test_a_report_stored_between_the_read_and_the_lease_is_used(
        self, db: Engine, clock: FakeClock
    ) -> None:
        """B reads "nothing fresh", A fetches and stores (ending its lease), then B takes the free
        lease: B must use A's report instead of calling the upstream a second time."""
        paused, release = threading.Event(), threading.Event()
        reports = SqlSharedBalanceReports(db)

        class PausedBeforeLease(SqlSharedBalanceReports):
            def try_lease(self, customer_code: str, holder: str, now: datetime, until: datetime) -> bool:
                paused.set()
                assert release.wait(10)
                return super().try_lease(customer_code, holder, now, until)

        inner_a, inner_b = fake(clock), fake(clock)
        a = SharedBalanceProvider(inner_a, reports, clock, poll_s=0.02)
        b = SharedBalanceProvider(inner_b, PausedBeforeLease(db), clock, poll_s=0.02)
        got: dict[str, BalanceReport] = {}
        waiter = threading.Thread(target=lambda: got.setdefault("b", b.fetch(CUSTOMER, timeout_s=10)))
        waiter.start()
        assert paused.wait(5)
        got["a"] = a.fetch(CUSTOMER, timeout_s=10)
        release.set()
        waiter.join(10)
        assert inner_b.calls == [], "a second upstream call although a fresh report had just been stored"
        assert got["b"] == got["a"]
        # and the lease B took to find that out is free again: the next stale fetch is not blocked
        clock.advance(60)
        assert a.fetch(CUSTOMER, timeout_s=2).fetched_at == clock.now()

    def test_a_fresh_stored_report_is_reused_and_a_stale_one_fetched_again(
        self, db: Engine, clock: FakeClock
    ) -> None:
        inner = fake(clock)
        provider = shared(inner, db, clock, reuse_s=10)
        first = provider.fetch(CUSTOMER, timeout_s=2)
        clock.advance(5)
        assert provider.fetch(CUSTOMER, timeout_s=2) == first
        clock.advance(6)
        assert provider.fetch(CUSTOMER, timeout_s=2).fetched_at == clock.now()
        assert len(inner.calls) == 2


class TestDeadline:
    def test_a_slow_upstream_times_the_caller_out_and_still_refreshes_the_snapshot(
        self, db: Engine, clock: FakeClock, tmp_path: Path
    ) -> None:
        inner = fake(clock)
        ctx = seeded(db, inner, clock, tmp_path)
        clock.advance(600)
        inner.set_balance(CUSTOMER, GROUP, "2222.00")
        inner.delay_s = 0.8
        applied = threading.Event()

        def on_report(report: BalanceReport) -> None:
            store_report(report, uow=ctx.uow())
            applied.set()

        provider = shared(inner, db, clock, on_report=on_report)
        started = time.monotonic()
        with pytest.raises(BalanceUnavailable) as caught:
            provider.fetch(CUSTOMER, timeout_s=0.1)
        assert caught.value.code == "UPSTREAM_TIMEOUT"
        assert time.monotonic() - started < 0.5
        assert account_balance(ctx) == (Decimal("1000.00"), 600)  # not refreshed yet
        assert applied.wait(5), "the background fetch never applied its report"
        stored, error, _ = SqlSharedBalanceReports(db).latest(CUSTOMER)
        assert error is None and stored is not None
        assert stored.for_sale_group(GROUP).amount == Decimal("2222.00")  # type: ignore[union-attr]
        assert account_balance(ctx) == (Decimal("2222.00"), 0)
        assert inner.calls == [CUSTOMER, CUSTOMER]  # the seed, then the one background fetch

    def test_a_decision_past_its_deadline_falls_back_then_the_fetch_refreshes_the_account(
        self, db: Engine, clock: FakeClock, tmp_path: Path
    ) -> None:
        inner = fake(clock)
        seeded(db, inner, clock, tmp_path)
        clock.advance(600)  # older than refresh_after_s (300), younger than max_balance_age_s (1800)
        inner.set_balance(CUSTOMER, GROUP, "50.00")
        inner.delay_s = 0.8
        ctx = wired(db, inner, clock, tmp_path)
        started = time.monotonic()
        result = decide(ctx, "600.00", deadline_s=0.2)
        assert time.monotonic() - started < 1.0
        assert result.decision.outcome is Outcome.APPROVE  # on the stored 1000.00, 600 s old
        assert wait_until(lambda: account_balance(ctx)[0] == Decimal("50.00"))
        inner.delay_s = 0
        assert decide(ctx, "100.00").decision.outcome is not Outcome.APPROVE  # 50.00 - 600.00 held


class TestFailures:
    def test_a_failure_is_recorded_and_every_follower_gets_its_code(
        self, db: Engine, clock: FakeClock
    ) -> None:
        inner = fake(clock, delay_s=0.2)
        inner.fail_with("RATE_LIMITED")
        provider = shared(inner, db, clock, error_reuse_s=2)
        results = all_at_once(10, lambda i: provider.fetch(CUSTOMER, timeout_s=5))
        assert codes(results) == ["RATE_LIMITED"] * 10
        assert len(inner.calls) == 1
        assert SqlSharedBalanceReports(db).latest(CUSTOMER)[1] == "RATE_LIMITED"
        other_inner = fake(clock)
        other = shared(other_inner, db, clock, error_reuse_s=2)
        with pytest.raises(BalanceUnavailable) as caught:
            other.fetch(CUSTOMER, timeout_s=2)  # moments later: not asked again
        assert caught.value.code == "RATE_LIMITED"
        assert other_inner.calls == []
        clock.advance(3)
        assert other.fetch(CUSTOMER, timeout_s=2).customer_code == CUSTOMER
        assert SqlSharedBalanceReports(db).latest(CUSTOMER)[1] is None

    def test_an_instance_waiting_on_another_gets_that_instance_failure_code(
        self, db: Engine, clock: FakeClock
    ) -> None:
        leader_inner = fake(clock, delay_s=0.5)
        leader_inner.fail_with("SERVICE_UNAVAILABLE")
        follower_inner = fake(clock)
        leader, follower = shared(leader_inner, db, clock), shared(follower_inner, db, clock)
        outcome: dict[str, BaseException] = {}

        def lead() -> None:
            try:
                leader.fetch(CUSTOMER, timeout_s=5)
            except BalanceUnavailable as exc:
                outcome["leader"] = exc

        thread = threading.Thread(target=lead)
        thread.start()
        assert wait_until(lambda: leader_inner.calls == [CUSTOMER])
        with pytest.raises(BalanceUnavailable) as caught:
            follower.fetch(CUSTOMER, timeout_s=5)
        thread.join(5)
        assert caught.value.code == outcome["leader"].code == "SERVICE_UNAVAILABLE"  # type: ignore[attr-defined]
        assert follower_inner.calls == []

    def test_an_unexpected_inner_error_is_recorded_as_service_unavailable(
        self, db: Engine, clock: FakeClock
    ) -> None:
        class Broken:
            source = "broken"

            def fetch(self, customer_code: str, *, timeout_s: float) -> BalanceReport:
                raise RuntimeError("bug in the client")

            def customers(self) -> list[str]:
                return []

        provider = shared(Broken(), db, clock)
        with pytest.raises(RuntimeError):
            provider.fetch(CUSTOMER, timeout_s=2)
        assert SqlSharedBalanceReports(db).latest(CUSTOMER)[1] == "SERVICE_UNAVAILABLE"


class TestDecisionsWithAFailingUpstream:
    @pytest.mark.parametrize("code", ["CIRCUIT_OPEN", "UPSTREAM_TIMEOUT", "SERVICE_UNAVAILABLE"])
    def test_a_stored_snapshot_younger_than_max_balance_age_is_used(
        self, db: Engine, clock: FakeClock, tmp_path: Path, code: str
    ) -> None:
        inner = fake(clock)
        seeded(db, inner, clock, tmp_path)
        clock.advance(1200)  # stale for refresh (300 s), still usable (1800 s)
        inner.fail_with(code)
        ctx = wired(db, inner, clock, tmp_path)
        result = decide(ctx, "600.00")
        assert result.decision.outcome is Outcome.APPROVE
        assert result.decision.balance.amount == Decimal("1000.00")  # type: ignore[union-attr]
        assert inner.calls[-1] == CUSTOMER  # it did ask first

    @pytest.mark.parametrize("code", ["CIRCUIT_OPEN", "RATE_LIMITED", "AUTH_FAILED"])
    def test_an_older_snapshot_defers_saying_which_upstream_failure(
        self, db: Engine, clock: FakeClock, tmp_path: Path, code: str
    ) -> None:
        inner = fake(clock)
        seeded(db, inner, clock, tmp_path)
        clock.advance(2000)  # older than max_balance_age_s
        inner.fail_with(code)
        ctx = wired(db, inner, clock, tmp_path)
        decision = decide(ctx, "10.00").decision
        assert decision.outcome is Outcome.DEFER
        reasons = {(r.rule, r.reason) for r in decision.reasons}
        assert ("stale", "BALANCE_UNAVAILABLE") in reasons
        assert ("upstream", code) in reasons
        assert decision.hold is None


# -- helpers ---------------------------------------------------------------------------------------


def wired(db: Engine, inner: Any, clock: FakeClock, tmp_path: Path) -> AppContext:
    """The service as bootstrap wires it for haier, with `inner` standing in for the Haier client."""
    settings = Settings(instance_path=tmp_path / "instance", database_url=str(db.url))
    ctx = bootstrap(settings, balances=inner, clock=clock, engine=db, database_clock=clock)
    ctx.balances = SharedBalanceProvider(
        inner,
        SqlSharedBalanceReports(db),
        clock,
        poll_s=0.02,
        on_report=lambda report: store_report(report, uow=ctx.uow()),
    )
    return ctx


def seeded(db: Engine, inner: FakeBalanceProvider, clock: FakeClock, tmp_path: Path) -> AppContext:
    """Customer CUSTOMER registered with its balances stored now."""
    ctx = wired(db, inner, clock, tmp_path)
    register_customer(CUSTOMER, uow=ctx.uow(), clock=clock)
    store_report(inner.fetch(CUSTOMER, timeout_s=2), uow=ctx.uow())
    return ctx


def decide(ctx: AppContext, amount: str, *, deadline_s: float = 2.0) -> Any:
    order = Order(random_order_id("shared"), CUSTOMER, GROUP, Decimal(amount))
    return decide_order(order, scope=None, uow=ctx.uow(), balances=ctx.balances, deadline_s=deadline_s)


def account_balance(ctx: AppContext) -> tuple[Decimal, int]:
    with ctx.uow() as uow:
        account = uow.accounts.get(CUSTOMER, GROUP)
    assert account is not None and account.snapshot is not None
    return account.snapshot.amount, account.snapshot.age_s(ctx.clock.now())


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        if condition():
            return True
        time.sleep(0.02)
    return condition()
