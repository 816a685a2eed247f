"""The use cases end to end on the SQL adapter (SQLite and PostgreSQL), checked by the invariant checker.

The service tests in tests/unit/services prove the logic on the fakes; these prove the SQL adapter keeps
the same promises (a wrong rowcount or a lost boolean would only show here)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import Engine

from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.fake.clock import FakeClock
from creditctl.domain.account import AccountStatus
from creditctl.domain.decision import Decision, DecisionState, Order
from creditctl.domain.errors import HoldNotOpen, OrderIdReused, OverSettlement, UnknownCustomer
from creditctl.domain.hold import HoldStatus
from creditctl.services.account_holds import list_holds
from creditctl.services.account_view import view_account
from creditctl.services.context import AppContext
from creditctl.services.customers import refresh_balances
from creditctl.services.decide_order import DecisionResult, decide_order
from creditctl.services.expiry import sweep
from creditctl.services.freeze_account import freeze_account, unfreeze_account
from creditctl.services.get_decision import get_decision
from creditctl.services.recheck_order import recheck_order
from creditctl.services.resolve_hold import release_order, settle_order
from rules import Outcome
from tests.invariants import assert_invariants
from tests.keys import key
from tests.random_refs import random_order_id

pytestmark = pytest.mark.adapters

CUSTOMER, GROUP = "8800000001", "GA10"  # 1000.00


@pytest.fixture(params=["context", pytest.param("pg_context", marks=pytest.mark.postgres)])
def ctx(request: pytest.FixtureRequest) -> AppContext:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


@pytest.fixture
def engine(ctx: AppContext) -> Engine:
    with ctx.uow() as uow:
        return uow._engine  # type: ignore[attr-defined,no-any-return]


def order(amount: str, order_id: str | None = None, group: str = GROUP) -> Order:
    return Order(order_id or random_order_id("sqlsvc"), CUSTOMER, group, Decimal(amount))


def decide(ctx: AppContext, o: Order, scope: frozenset[str] | None = None) -> DecisionResult:
    return decide_order(o, scope=scope, uow=ctx.uow(), balances=ctx.balances)


def exposure(ctx: AppContext) -> Decimal:
    with ctx.uow() as uow:
        account = uow.accounts.get(CUSTOMER, GROUP)
    assert account is not None
    return account.exposure


def grant_credit(ctx: AppContext, amount: str) -> None:
    with ctx.uow() as uow:
        account = uow.accounts.lock(CUSTOMER, GROUP)
        assert account is not None
        account.params["base_credit_limit"] = amount
        uow.accounts.save(account)
        uow.commit()


def new_balance(ctx: AppContext, amount: str) -> None:
    fake = getattr(ctx.balances, "inner", ctx.balances)
    assert isinstance(fake, FakeBalanceProvider) and isinstance(ctx.clock, FakeClock)
    fake.set_balance(CUSTOMER, GROUP, amount)
    ctx.clock.advance(301)


class TestDecideOnSql:
    def test_approves_replays_and_refuses_a_reused_order_id(self, ctx: AppContext, engine: Engine) -> None:
        o = order("100.00")
        first = decide(ctx, o)
        again = decide(ctx, o)
        assert (first.created, again.created) == (True, False)
        assert first.decision.outcome is Outcome.APPROVE
        assert again.decision.id == first.decision.id
        assert again.decision.hold == first.decision.hold
        with pytest.raises(OrderIdReused, match="already decided with a different body"):
            decide(ctx, order("100.01", o.order_id))
        assert exposure(ctx) == Decimal("100.00")
        assert_invariants(engine)

    def test_the_stored_decision_reads_back_as_it_was_answered(self, ctx: AppContext) -> None:
        answered = decide(ctx, order("100.00")).decision
        read = get_decision(answered.order_id, scope=None, uow=ctx.uow())
        assert read.id == answered.id
        assert (read.outcome, read.reasons, read.actions) == (
            answered.outcome,
            answered.reasons,
            answered.actions,
        )
        assert (read.available, read.exposure, read.shortfall) == (
            answered.available,
            answered.exposure,
            None,
        )
        assert read.balance == answered.balance
        assert read.hold == answered.hold
        assert read.decided_at == answered.decided_at

    def test_blocks_beyond_the_balance_and_writes_nothing_for_an_out_of_scope_key(
        self, ctx: AppContext, engine: Engine
    ) -> None:
        blocked = decide(ctx, order("1000.01")).decision
        assert (blocked.outcome, blocked.shortfall) == (Outcome.BLOCK, Decimal("0.01"))
        with pytest.raises(UnknownCustomer):
            decide(ctx, order("1.00"), scope=frozenset({"8800000002"}))
        assert exposure(ctx) == Decimal("0.00")
        assert_invariants(engine)

    def test_freezes_a_depleted_account(self, ctx: AppContext, engine: Engine) -> None:
        new_balance(ctx, "0.00")
        assert decide(ctx, order("1.00")).decision.outcome is Outcome.FREEZE
        new_balance(ctx, "1000.00")
        blocked = decide(ctx, order("1.00")).decision
        assert (blocked.outcome, blocked.reasons[0].reason) == (Outcome.BLOCK, "ACCOUNT_FROZEN")
        assert_invariants(engine)


class TestHoldLifeCycleOnSql:
    def test_release_drops_exposure_at_once_and_only_once(self, ctx: AppContext, engine: Engine) -> None:
        approved = decide(ctx, order("400.00")).decision
        released = release_order(approved.order_id, scope=None, uow=ctx.uow())
        assert released.hold is not None and released.hold.status is HoldStatus.RELEASED
        assert exposure(ctx) == Decimal("0.00")
        again = release_order(approved.order_id, scope=None, uow=ctx.uow())
        assert again.hold == released.hold
        assert exposure(ctx) == Decimal("0.00")
        with pytest.raises(HoldNotOpen, match=r"\(it is released\)"):
            settle_order(approved.order_id, scope=None, uow=ctx.uow())
        assert_invariants(engine)

    def test_a_settled_hold_counts_until_a_later_balance(self, ctx: AppContext, engine: Engine) -> None:
        approved = decide(ctx, order("400.00")).decision
        settle_order(approved.order_id, scope=None, uow=ctx.uow())
        assert exposure(ctx) == Decimal("400.00")
        assert_invariants(engine)
        new_balance(ctx, "600.00")
        refresh_balances(CUSTOMER, scope=None, uow=ctx.uow(), balances=ctx.balances, clock=ctx.clock)
        assert exposure(ctx) == Decimal("0.00")
        assert_invariants(engine)

    def test_the_sweeper_ends_holds_past_expiry_once(self, ctx: AppContext, engine: Engine) -> None:
        approved = decide(ctx, order("400.00")).decision
        assert isinstance(ctx.clock, FakeClock)
        ctx.clock.advance(604800)
        view = view_account(CUSTOMER, GROUP, scope=None, uow=ctx.uow())
        assert view.exposure == Decimal("0.00")  # even before the sweeper
        assert sweep(uow=ctx.uow()).holds_expired_on == 1
        assert sweep(uow=ctx.uow()).holds_expired_on == 0
        read = get_decision(approved.order_id, scope=None, uow=ctx.uow())
        assert read.hold is not None and (read.hold.status, read.hold.counting) == (HoldStatus.EXPIRED, False)
        assert exposure(ctx) == Decimal("0.00")
        assert_invariants(engine)


def settle_part(ctx: AppContext, order_id: str, amount: str, sid: str) -> Decision:
    return settle_order(order_id, amount=Decimal(amount), settlement_id=sid, scope=None, uow=ctx.uow())


class TestPartialSettlementOnSql:
    def test_parts_read_back_and_a_retry_writes_nothing(self, ctx: AppContext, engine: Engine) -> None:
        approved = decide(ctx, order("400.00")).decision
        first = settle_part(ctx, approved.order_id, "100.00", "DN-1")
        assert settle_part(ctx, approved.order_id, "100.00", "DN-1") == first
        read = get_decision(approved.order_id, scope=None, uow=ctx.uow())
        assert read.hold is not None and read.hold == first.hold
        assert (read.hold.settled, read.hold.remaining) == (Decimal("100.00"), Decimal("300.00"))
        assert [s.settlement_id for s in read.hold.settlements] == ["DN-1"]
        with pytest.raises(OverSettlement, match=r"300\.00 is left"):
            settle_part(ctx, approved.order_id, "300.01", "DN-2")
        assert exposure(ctx) == Decimal("400.00")
        assert_invariants(engine)

    def test_release_after_parts_and_each_part_leaves_with_its_balance(
        self, ctx: AppContext, engine: Engine
    ) -> None:
        approved = decide(ctx, order("400.00")).decision
        settle_part(ctx, approved.order_id, "100.00", "DN-1")
        released = release_order(approved.order_id, scope=None, uow=ctx.uow()).hold
        assert released is not None and (released.status, released.counting) == (HoldStatus.RELEASED, True)
        assert exposure(ctx) == Decimal("100.00")
        assert_invariants(engine)
        new_balance(ctx, "900.00")
        refresh_balances(CUSTOMER, scope=None, uow=ctx.uow(), balances=ctx.balances, clock=ctx.clock)
        assert exposure(ctx) == Decimal("0.00")
        read = get_decision(approved.order_id, scope=None, uow=ctx.uow()).hold
        assert read is not None and read.counting is False and not read.settlements[0].counting
        assert_invariants(engine)

    def test_the_sweeper_expires_the_remainder_and_keeps_parts_counting(
        self, ctx: AppContext, engine: Engine
    ) -> None:
        approved = decide(ctx, order("400.00")).decision
        settle_part(ctx, approved.order_id, "150.00", "DN-1")
        assert isinstance(ctx.clock, FakeClock)
        ctx.clock.advance(604800)
        assert view_account(CUSTOMER, GROUP, scope=None, uow=ctx.uow()).exposure == Decimal("150.00")
        assert sweep(uow=ctx.uow()).holds_expired_on == 1
        read = get_decision(approved.order_id, scope=None, uow=ctx.uow()).hold
        assert read is not None and (read.status, read.counting) == (HoldStatus.EXPIRED, True)
        assert [(e.type, e.amount) for e in read.events][-1] == ("expired", Decimal("250.00"))
        assert exposure(ctx) == Decimal("150.00")
        assert_invariants(engine)

    def test_the_holds_page_filters_and_pages_newest_first(self, ctx: AppContext) -> None:
        ids = []
        for _ in range(3):
            ids.append(decide(ctx, order("10.00")).decision.order_id)
            assert isinstance(ctx.clock, FakeClock)
            ctx.clock.advance(1)
        release_order(ids[0], scope=None, uow=ctx.uow())
        first = list_holds(CUSTOMER, GROUP, statuses=None, after=None, limit=2, scope=None, uow=ctx.uow())
        assert [h.order_id for h in first.items] == [ids[2], ids[1]] and first.next_cursor is not None
        rest = list_holds(
            CUSTOMER, GROUP, statuses=None, after=first.next_cursor, limit=2, scope=None, uow=ctx.uow()
        )
        assert [h.order_id for h in rest.items] == [ids[0]] and rest.next_cursor is None
        released = list_holds(
            CUSTOMER, GROUP, statuses=frozenset({"released"}), after=None, limit=9, scope=None, uow=ctx.uow()
        )
        assert [h.order_id for h in released.items] == [ids[0]]


class TestDeferralsOnSql:
    def deferred(self, ctx: AppContext) -> Decision:
        grant_credit(ctx, "500.00")
        decision = decide(ctx, order("1200.00")).decision
        assert (decision.outcome, decision.shortfall) == (Outcome.DEFER, Decimal("200.00"))
        return decision

    def test_a_recheck_approves_once_the_balance_goes_up(self, ctx: AppContext, engine: Engine) -> None:
        deferred = self.deferred(ctx)
        new_balance(ctx, "2000.00")
        rechecked = recheck_order(deferred.order_id, scope=None, uow=ctx.uow(), balances=ctx.balances)
        assert (rechecked.outcome, rechecked.state, rechecked.rechecks) == (
            Outcome.APPROVE,
            DecisionState.DECIDED,
            1,
        )
        read = get_decision(deferred.order_id, scope=None, uow=ctx.uow())
        assert read.hold is not None and read.hold.amount == Decimal("1200.00")
        assert exposure(ctx) == Decimal("1200.00")
        assert_invariants(engine)

    def test_a_deferral_past_its_deadline_is_blocked_by_the_sweeper(
        self, ctx: AppContext, engine: Engine
    ) -> None:
        deferred = self.deferred(ctx)
        assert isinstance(ctx.clock, FakeClock)
        ctx.clock.advance(86400)
        assert sweep(uow=ctx.uow()).deferrals_expired == 1
        read = get_decision(deferred.order_id, scope=None, uow=ctx.uow())
        assert (read.outcome, read.state, read.reasons[-1].reason) == (
            Outcome.BLOCK,
            DecisionState.EXPIRED,
            "DEFERRAL_EXPIRED",
        )
        assert_invariants(engine)

    def test_releasing_a_deferred_order_cancels_it(self, ctx: AppContext, engine: Engine) -> None:
        deferred = self.deferred(ctx)
        cancelled = release_order(deferred.order_id, scope=None, uow=ctx.uow())
        assert cancelled.state is DecisionState.CANCELLED
        assert_invariants(engine)


class TestFreezeOnSql:
    def test_admin_freeze_blocks_until_unfrozen(self, ctx: AppContext, engine: Engine) -> None:
        kw = {"who": key("ops")}
        frozen = freeze_account(CUSTOMER, GROUP, reason="chargeback", uow=ctx.uow(), **kw)  # type: ignore[arg-type]
        assert frozen.status is AccountStatus.FROZEN
        assert decide(ctx, order("1.00")).decision.outcome is Outcome.BLOCK
        unfreeze_account(CUSTOMER, GROUP, reason="cleared", uow=ctx.uow(), **kw)  # type: ignore[arg-type]
        assert decide(ctx, order("1.00")).decision.outcome is Outcome.APPROVE
        assert_invariants(engine)
