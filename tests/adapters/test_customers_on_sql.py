"""Provider-known customers on the SQL adapter (SQLite and PostgreSQL): the first use registers them,
once, however many first uses race; listing them reads what is stored and writes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.sql.tables import customers
from creditctl.services.context import AppContext
from creditctl.services.customers import customer_balances, ensure_known, list_customers
from tests.adapters.concurrency import all_at_once

pytestmark = pytest.mark.adapters

NEW = "8800000007"  # in the provider's data, not registered


@pytest.fixture(params=["context", pytest.param("pg_context", marks=pytest.mark.postgres)])
def ctx(request: pytest.FixtureRequest, balances: FakeBalanceProvider) -> AppContext:
    context: AppContext = request.getfixturevalue(request.param)  # seeds the customers it has now
    balances.set_balance(NEW, "GA10", "70.00")  # the provider learns of a customer afterwards
    return context


def engine_of(ctx: AppContext) -> Engine:
    with ctx.uow() as uow:
        return uow._engine  # type: ignore[attr-defined,no-any-return]


def rows_for(ctx: AppContext, code: str) -> int:
    with engine_of(ctx).connect() as conn:
        return int(conn.execute(select(func.count()).where(customers.c.code == code)).scalar_one())


class TestEnsureKnownOnSql:
    def test_concurrent_first_uses_all_succeed_and_register_once(self, ctx: AppContext) -> None:
        results = all_at_once(
            8, lambda _: ensure_known(NEW, uow=ctx.uow(), balances=ctx.balances, now=ctx.clock.now())
        )
        assert [r.error for r in results] == [None] * 8
        assert all(r.value is True for r in results)
        assert rows_for(ctx, NEW) == 1

    def test_concurrent_adds_report_exactly_one_insert(self, ctx: AppContext) -> None:
        def add(_: int) -> bool:
            with ctx.uow() as uow:
                added = uow.customers.add("8800000008", "", ctx.clock.now())
                uow.commit()
            return added

        results = all_at_once(8, add)
        assert [r.error for r in results] == [None] * 8
        assert sorted(r.value for r in results) == [False] * 7 + [True]

    def test_an_unknown_code_writes_nothing(self, ctx: AppContext) -> None:
        assert ensure_known("8800999999", uow=ctx.uow(), balances=ctx.balances, now=ctx.clock.now()) is False
        assert rows_for(ctx, "8800999999") == 0

    def test_balances_of_a_provider_known_customer_need_no_registration(self, ctx: AppContext) -> None:
        accounts = customer_balances(
            NEW, refresh=None, scope=None, uow=ctx.uow(), balances=ctx.balances, clock=ctx.clock
        )
        assert [(a.sale_group_code, str(a.snapshot.amount)) for a in accounts if a.snapshot] == [
            ("GA10", "70.00")
        ]

    def test_the_listing_writes_nothing(self, ctx: AppContext) -> None:
        listed = list_customers(scope=None, uow=ctx.uow(), balances=ctx.balances, source="fake")
        assert {c.customer_code: c.registered for c in listed} == {
            "8800000001": True,
            "8800000002": True,
            NEW: False,
        }
        assert rows_for(ctx, NEW) == 0
