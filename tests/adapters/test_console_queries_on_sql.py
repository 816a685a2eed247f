"""The console's queries on both databases: decisions searched newest first and paged without gaps or
repeats, within the caller's customers; accounts listed, searched and sorted."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.fake.clock import FakeClock
from creditctl.domain.decision import Order
from creditctl.services.account_list import list_accounts
from creditctl.services.context import AppContext
from creditctl.services.decide_order import decide_order
from creditctl.services.decision_search import decision_trace, search_decisions

A, B = "8800000001", "8800000002"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ctx(request: pytest.FixtureRequest) -> AppContext:
    return request.getfixturevalue("context" if request.param == "sqlite" else "pg_context")  # type: ignore[no-any-return]


def _decide(c: AppContext, clock: FakeClock, order_id: str, customer: str, group: str, amount: str) -> None:
    order = Order(order_id, customer, group, Decimal(amount))
    decide_order(order, scope=None, uow=c.uow(), balances=c.balances)
    clock.advance(1)


def test_decisions_are_searched_newest_first_and_paged_without_gaps(
    ctx: AppContext, clock: FakeClock
) -> None:
    for n in range(7):
        _decide(ctx, clock, f"PO-S-{n}", A, "GB20", "10.00")
    _decide(ctx, clock, "PO-S-B", B, "GA10", "10.00")
    _decide(ctx, clock, "OTHER-1", A, "GB20", "10.00")
    seen: list[str] = []
    cursor = None
    while True:
        page = search_decisions(order_id="PO-S-", cursor=cursor, limit=3, scope=frozenset({A}), uow=ctx.uow())
        seen += [d.order_id for d in page.decisions]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [f"PO-S-{n}" for n in reversed(range(7))]
    only_b = search_decisions(customer_code=B, scope=None, uow=ctx.uow())
    assert [d.order_id for d in only_b.decisions] == ["PO-S-B"]


def test_a_prefix_with_like_wildcards_matches_them_literally(ctx: AppContext, clock: FakeClock) -> None:
    _decide(ctx, clock, "PO_1%", A, "GB20", "10.00")
    _decide(ctx, clock, "POX1Y", A, "GB20", "10.00")
    found = search_decisions(order_id="PO_1%", scope=None, uow=ctx.uow())
    assert [d.order_id for d in found.decisions] == ["PO_1%"]


def test_the_trace_names_the_rule_that_matched(ctx: AppContext, clock: FakeClock) -> None:
    _decide(ctx, clock, "PO-BIG", A, "GB20", "600000.00")
    trace = decision_trace("PO-BIG", customer_code=A, scope=None, uow=ctx.uow())
    assert trace.evaluation is not None
    matched = {step.rule_id for step in trace.evaluation.trace if step.matched}
    assert {r.rule for r in trace.decision.reasons} <= matched


def test_accounts_are_listed_searched_and_sorted(ctx: AppContext) -> None:
    assert ctx.reports is not None
    page = list_accounts(sort="balance", descending=True, scope=None, reports=ctx.reports, uow=ctx.uow())
    assert [(r.line.account.customer_code, r.line.account.sale_group_code) for r in page.rows] == [
        (A, "GB20"),
        (B, "GA10"),
        (A, "GA10"),
    ]
    found = list_accounts(search="beta", scope=None, reports=ctx.reports, uow=ctx.uow())
    assert [r.line.account.customer_code for r in found.rows] == [B]
    limited = list_accounts(scope=frozenset({A}), reports=ctx.reports, uow=ctx.uow())
    assert limited.total == 2
