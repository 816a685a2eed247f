"""The same double-spend race on SQLite, the embedded default: BEGIN IMMEDIATE serialises the writers."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from sqlalchemy import Engine

from creditctl.domain.decision import Order
from creditctl.services.context import AppContext
from creditctl.services.decide_order import decide_order
from rules import Outcome
from tests.adapters.concurrency import all_at_once, counting_holds_total, hold_count
from tests.invariants import assert_invariants
from tests.random_refs import random_order_id

pytestmark = pytest.mark.adapters

CUSTOMER, GROUP = "8800000001", "GA10"  # 1000.00 in TEST_BALANCES


class TestDoubleSpendOnSqlite:
    def test_fifty_concurrent_orders_approve_exactly_what_the_balance_carries(
        self, context: AppContext, sqlite_engine: Engine
    ) -> None:
        orders = [Order(random_order_id(f"lite{i}"), CUSTOMER, GROUP, Decimal("100.00")) for i in range(50)]
        results = all_at_once(
            50,
            lambda i: decide_order(orders[i], scope=None, uow=context.uow(), balances=context.balances),
        )
        errors = [r.error for r in results if r.error is not None]
        assert not errors, f"{len(errors)} callers failed, first: {errors[0]!r}"
        counts = Counter(r.value.decision.outcome for r in results)
        assert counts[Outcome.APPROVE] == 10
        assert counts[Outcome.BLOCK] == 40
        assert counting_holds_total(sqlite_engine, CUSTOMER, GROUP) == Decimal("1000.00")
        assert hold_count(sqlite_engine) == 10
        assert_invariants(sqlite_engine)

    def test_twenty_concurrent_requests_with_one_order_id_make_one_decision(
        self, context: AppContext, sqlite_engine: Engine
    ) -> None:
        order = Order(random_order_id("lite-same"), CUSTOMER, GROUP, Decimal("100.00"))
        results = all_at_once(
            20,
            lambda _: decide_order(order, scope=None, uow=context.uow(), balances=context.balances),
        )
        errors = [r.error for r in results if r.error is not None]
        assert not errors, f"first error: {errors[0]!r}"
        assert len({r.value.decision.id for r in results}) == 1
        assert sum(r.value.created for r in results) == 1
        assert hold_count(sqlite_engine, order.order_id) == 1
        assert_invariants(sqlite_engine)
