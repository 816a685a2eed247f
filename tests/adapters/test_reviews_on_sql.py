"""The review queue, releases, the queue worked by a newer balance and the freeze history on the SQL
adapter (SQLite and PostgreSQL): filters and the cursor in SQL, the hold and exposure, the invariants."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from adapters.fake.clock import FakeClock
from creditctl.domain.api_key import ApiKey, Role
from creditctl.domain.audit import key_actor
from creditctl.domain.decision import Decision, DecisionState, Order
from creditctl.domain.freeze import LiftedHow
from creditctl.services.context import AppContext
from creditctl.services.customers import refresh_balances
from creditctl.services.decide_order import decide_order
from creditctl.services.freeze_account import freeze_account, unfreeze_account
from creditctl.services.freeze_history import account_freezes
from creditctl.services.reviews import QueueFilter, release_deferred, review_queue
from rules import Outcome
from tests.adapters.test_services_on_sql import CUSTOMER, GROUP, engine, grant_credit  # noqa: F401
from tests.invariants import assert_invariants
from tests.keys import key
from tests.random_refs import random_order_id

pytestmark = pytest.mark.adapters
LEAD = ApiKey(
    id=1,
    name="lead",
    role=Role.ADMIN,
    customers=None,
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
    approval_limit=Decimal("5000.00"),
)


@pytest.fixture(params=["context", pytest.param("pg_context", marks=pytest.mark.postgres)])
def ctx(request: pytest.FixtureRequest) -> AppContext:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def defer(ctx: AppContext, amount: str = "1200.00") -> Decision:
    o = Order(random_order_id("rev"), CUSTOMER, GROUP, Decimal(amount))
    d = decide_order(o, scope=None, uow=ctx.uow(), balances=ctx.balances).decision
    assert d.state is DecisionState.DEFERRED, d.reasons
    return d


def test_queue_filters_and_pages_in_sql_even_at_the_same_instant(ctx: AppContext, engine) -> None:  # noqa: F811
    grant_credit(ctx, "50000.00")
    orders = [defer(ctx, amount) for amount in ("1200.00", "1300.00", "1400.00")]  # one instant (fake clock)
    seen: list[str] = []
    after = None
    while True:
        page = review_queue(QueueFilter(), after=after, limit=1, scope=None, uow=ctx.uow())
        if not page:
            break
        seen.append(page[0].order_id)
        after = (page[0].decided_at, page[0].id)
    assert sorted(seen) == sorted(o.order_id for o in orders) and len(seen) == 3
    found = review_queue(
        QueueFilter(reason="INSUFFICIENT_BALANCE", min_amount=Decimal("1300.00"), customer_code=CUSTOMER),
        after=None,
        limit=10,
        scope=frozenset({CUSTOMER}),
        uow=ctx.uow(),
    )
    assert {d.order_id for d in found} == {orders[1].order_id, orders[2].order_id}
    assert (
        review_queue(QueueFilter(reason="MANUAL_REVIEW"), after=None, limit=10, scope=None, uow=ctx.uow())
        == []
    )
    assert_invariants(engine)


def test_release_and_a_newer_balance_take_holds_under_the_lock(
    ctx: AppContext,
    clock: FakeClock,
    engine,  # noqa: F811
) -> None:
    grant_credit(ctx, "50000.00")
    first, second, third = [defer(ctx) for _ in range(3) if clock.advance(1)]  # oldest first
    released = release_deferred(
        first.order_id,
        customer_code=None,
        reason="ok",
        key=LEAD,
        actor=key_actor(LEAD),
        uow=ctx.uow(),
        balances=ctx.balances,
    )
    assert released.outcome is Outcome.APPROVE and released.reviews[0]["by"] == "lead"
    ctx.balances.set_balance(CUSTOMER, GROUP, "2500.00")  # 1,300.00 free after the release: one more fits
    clock.advance(301)
    refresh_balances(CUSTOMER, scope=None, uow=ctx.uow(), balances=ctx.balances, clock=clock)
    with ctx.uow() as uow:
        after = [uow.decisions.get(CUSTOMER, d.order_id) for d in (second, third)]
        account = uow.accounts.get(CUSTOMER, GROUP)
    assert [d.outcome for d in after if d] == [Outcome.APPROVE, Outcome.DEFER]
    assert account is not None and account.exposure == Decimal("2400.00")
    assert_invariants(engine)


def test_freeze_history_is_kept(ctx: AppContext, clock: FakeClock) -> None:
    freeze_account(CUSTOMER, GROUP, reason="dispute", who=key("ops"), uow=ctx.uow())
    unfreeze_account(CUSTOMER, GROUP, reason="settled", who=key("ops"), uow=ctx.uow())
    [freeze] = account_freezes(CUSTOMER, GROUP, scope=None, uow=ctx.uow())
    assert (freeze.reason, freeze.lifted_how, freeze.lift_reason) == ("dispute", LiftedHow.MANUAL, "settled")
