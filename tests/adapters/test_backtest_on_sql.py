"""Backtests on SQLite and PostgreSQL: the history streams the period in batches, the store keeps runs."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.fake.clock import FakeClock
from adapters.sql.backtests import SqlBacktestStore
from adapters.sql.decision_history import SqlDecisionHistory
from creditctl.domain.decision import Order
from creditctl.services.backtest import RunBacktest, backtest_changes, get_backtest, run_backtest
from creditctl.services.context import AppContext
from creditctl.services.decide_order import decide_order
from rules import default_rule_set_document, parse_rule_set
from tests.random_refs import random_order_id

CUSTOMER, GROUP = "8800000001", "GB20"


@pytest.fixture(params=["context", pytest.param("pg_context", marks=pytest.mark.postgres)])
def ctx(request: pytest.FixtureRequest) -> AppContext:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def decide_at(ctx: AppContext, clock: FakeClock, amounts: list[str]) -> list[str]:
    ids = []
    for amount in amounts:
        clock.advance(1)
        o = Order(random_order_id("bt"), CUSTOMER, GROUP, Decimal(amount))
        decide_order(o, scope=None, uow=ctx.uow(), balances=ctx.balances)
        ids.append(o.order_id)
    return ids


class TestBacktestOnSql:
    def test_streams_the_period_oldest_first_in_batches_of_the_size_asked(
        self, ctx: AppContext, clock: FakeClock
    ) -> None:
        decide_at(ctx, clock, ["1.00"])
        start = clock.advance(1)
        ids = decide_at(ctx, clock, ["2.00", "3.00", "4.00", "5.00", "6.00"])
        end = clock.advance(1)
        decide_at(ctx, clock, ["7.00"])
        history = ctx.decision_history
        assert isinstance(history, SqlDecisionHistory)

        batches = [list(b) for b in history.batches(start, end, batch_size=2)]

        assert [len(b) for b in batches] == [2, 2, 1]
        rows = [r for b in batches for r in b]
        assert [r[0] for r in rows] == ids
        assert rows[0][3:6] == (200, "approve", "decided")
        assert '"order.amount":"2.00"' in rows[0][6]  # the stored JSON text, money as a string

    def test_a_run_and_its_changes_are_kept_and_paged(self, ctx: AppContext, clock: FakeClock) -> None:
        start = clock.advance(1)
        ids = decide_at(ctx, clock, ["100.00", "2000.00", "3000.00"])
        end = clock.advance(1)
        document = default_rule_set_document()
        document["params"] = {**document.get("params", {}), "single_order_review_amount": "1000.00"}
        assert isinstance(ctx.backtests, SqlBacktestStore) and ctx.decision_history is not None
        cmd = RunBacktest(rule_set=parse_rule_set(document), start=start, end=end, requested_by="t")

        run = run_backtest(cmd, history=ctx.decision_history, store=ctx.backtests, batch_size=2)

        stored = get_backtest(run.id, store=ctx.backtests)
        assert stored.summary() == run.summary() and stored.status == "succeeded"
        assert (stored.start, stored.end) == (start, end)
        first = backtest_changes(run.id, store=ctx.backtests, limit=1)
        second = backtest_changes(run.id, store=ctx.backtests, cursor=first.next_cursor, limit=1)
        assert [c.order_id for c in first.changes + second.changes] == ids[1:]
        assert second.next_cursor is None
        assert second.changes[0].amount == Decimal("3000.00")
        assert [r.reason for r in second.changes[0].reasons] == ["MANUAL_REVIEW"]

    def test_account_overrides_are_read_as_decimal_strings(self, ctx: AppContext, clock: FakeClock) -> None:
        decide_at(ctx, clock, ["1.00"])
        with ctx.uow() as uow:
            account = uow.accounts.get(CUSTOMER, GROUP)
            assert account is not None
            account.params["base_credit_limit"] = "500.00"
            uow.accounts.save(account)
            uow.commit()
        assert ctx.decision_history is not None

        assert ctx.decision_history.account_overrides() == {account.id: {"base_credit_limit": "500.00"}}
