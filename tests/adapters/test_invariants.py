"""The invariant checker itself: silent on a sound database, and it names each kind of corruption."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import Engine, text

from creditctl.domain.decision import Order
from creditctl.services.context import AppContext
from creditctl.services.decide_order import decide_order
from creditctl.services.resolve_hold import release_order, settle_order
from rules import Outcome
from tests.invariants import check_invariants
from tests.random_refs import random_order_id

pytestmark = pytest.mark.adapters

THIS_ACCOUNT = "WHERE customer_code = '8800000001' AND sale_group_code = 'GA10'"


@pytest.fixture(params=["context", pytest.param("pg_context", marks=pytest.mark.postgres)])
def ctx(request: pytest.FixtureRequest) -> AppContext:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def engine_of(ctx: AppContext) -> Engine:
    with ctx.uow() as uow:
        return uow._engine  # type: ignore[attr-defined,no-any-return]


def decide(ctx: AppContext, amount: str, group: str = "GA10") -> str:
    order = Order(random_order_id("inv"), "8800000001", group, Decimal(amount))
    decide_order(order, scope=None, uow=ctx.uow(), balances=ctx.balances)
    return order.order_id


@pytest.fixture
def busy(ctx: AppContext) -> Engine:
    """A little of everything: open, settled, partly settled and released holds, a block, a defer-free
    account."""
    approved = [decide(ctx, "300.00") for _ in range(3)]
    assert decide(ctx, "300.00") and decide(ctx, "5000.00")  # blocked: no room left
    settle_order(approved[0], scope=None, uow=ctx.uow())
    release_order(approved[1], scope=None, uow=ctx.uow())
    part = Decimal("100.00")
    settle_order(approved[2], amount=part, settlement_id="p1", scope=None, uow=ctx.uow())
    decide(ctx, "10.00", group="GB20")
    return engine_of(ctx)


def corrupt(engine: Engine, sql: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql))


class TestInvariantChecker:
    def test_a_sound_database_has_no_violations(self, busy: Engine) -> None:
        assert check_invariants(busy) == []

    def test_an_empty_database_has_no_violations(self, ctx: AppContext) -> None:
        assert check_invariants(engine_of(ctx)) == []

    def test_catches_exposure_that_differs_from_the_counting_holds(self, busy: Engine) -> None:
        corrupt(busy, f"UPDATE credit_accounts SET exposure_fen = exposure_fen + 1 {THIS_ACCOUNT}")
        [violation] = check_invariants(busy)
        assert "exposure_fen" in violation and "8800000001/GA10" in violation

    def test_catches_holds_beyond_balance_and_credit_limit(self, busy: Engine) -> None:
        corrupt(busy, f"UPDATE credit_accounts SET balance_fen = 100 {THIS_ACCOUNT}")
        [violation] = check_invariants(busy)
        assert "exceed balance 100" in violation

    def test_a_granted_credit_line_raises_the_ceiling(self, busy: Engine) -> None:
        corrupt(
            busy,
            'UPDATE credit_accounts SET balance_fen = 10000, params = \'{"base_credit_limit":"500.00"}\' '
            f"{THIS_ACCOUNT}",
        )
        assert check_invariants(busy) == []  # 600.00 counting <= 100.00 + 500.00

    def test_catches_an_ended_hold_that_still_counts(self, busy: Engine) -> None:
        corrupt(busy, "UPDATE holds SET counting = true WHERE status = 'released'")
        violations = check_invariants(busy)
        assert any("counts although it is released" in v for v in violations)

    def test_catches_an_open_hold_that_does_not_count(self, busy: Engine) -> None:
        corrupt(busy, "UPDATE holds SET counting = false WHERE status = 'open'")
        violations = check_invariants(busy)
        assert any("open but not counting" in v for v in violations)

    def test_catches_settled_parts_that_do_not_add_up_to_the_hold(self, busy: Engine) -> None:
        corrupt(
            busy, "UPDATE holds SET settled_fen = settled_fen + 1 WHERE status = 'open' AND settled_fen > 0"
        )
        violations = check_invariants(busy)
        assert any("settled_fen 10001, parts sum 10000" in v for v in violations)
        assert any("exposure_fen" in v for v in violations)  # the open remainder shrank by a fen

    def test_catches_a_settled_part_of_nothing(self, busy: Engine) -> None:
        corrupt(busy, "UPDATE hold_settlements SET amount_fen = 0 WHERE settlement_id = 'p1'")
        assert any("part" in v and "of 0 fen" in v for v in check_invariants(busy))

    def test_catches_a_settled_hold_whose_counting_part_is_not_counted(self, busy: Engine) -> None:
        corrupt(busy, "UPDATE holds SET counting = false WHERE status = 'settled'")
        assert any("settled but not counting (a settled part counts)" in v for v in check_invariants(busy))

    def test_catches_an_unknown_hold_status(self, busy: Engine) -> None:
        corrupt(busy, "UPDATE holds SET status = 'lost' WHERE status = 'settled'")
        assert any("unknown status 'lost'" in v for v in check_invariants(busy))

    def test_catches_an_approval_without_its_hold(self, busy: Engine) -> None:
        corrupt(busy, "DELETE FROM holds WHERE status = 'released'")
        assert any("approved with 0 holds" in v for v in check_invariants(busy))

    def test_catches_a_hold_on_an_order_that_was_not_approved(self, busy: Engine) -> None:
        corrupt(busy, "UPDATE decisions SET outcome = 'block' WHERE order_id IN (SELECT order_id FROM holds)")
        violations = check_invariants(busy)
        assert any("outcome block but 1 hold(s)" in v for v in violations)


def test_the_checker_agrees_with_the_service_on_outcomes(ctx: AppContext) -> None:
    outcomes = {
        decide_order(
            Order(random_order_id("agree"), "8800000001", "GA10", Decimal("250.00")),
            scope=None,
            uow=ctx.uow(),
            balances=ctx.balances,
        ).decision.outcome
        for _ in range(5)
    }
    assert outcomes == {Outcome.APPROVE, Outcome.BLOCK}
    assert check_invariants(engine_of(ctx)) == []
