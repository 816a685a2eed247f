"""Service tests run on the shipped fakes: an in-memory unit of work, fake balances, a hand-moved clock."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.fake.clock import FakeClock
from adapters.fake.unit_of_work import FakeStore, FakeUnitOfWork
from creditctl.domain.account import CreditAccount
from creditctl.domain.decision import Decision, Order
from creditctl.services.customers import refresh_balances, register_customer
from creditctl.services.decide_order import DecisionResult, decide_order
from rules import default_rule_set_document
from tests.random_refs import random_order_id

CUSTOMER = "8800000001"
OTHER_CUSTOMER = "8800000002"
GROUP = "GA10"  # 1000.00 in TEST_BALANCES
RICH_GROUP = "GB20"  # 100000.00 in TEST_BALANCES


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def uow(store: FakeStore, clock: FakeClock, balances: FakeBalanceProvider) -> FakeUnitOfWork:
    """The default rule set published, both test customers registered with fresh balances."""
    work = FakeUnitOfWork(store, clock=clock)
    with work:
        work.rule_sets.publish("default", default_rule_set_document(), clock.now())
        work.commit()
    for code in (CUSTOMER, OTHER_CUSTOMER):
        register_customer(code, uow=work, clock=clock)
        refresh_balances(code, scope=None, uow=work, balances=balances, clock=clock)
    return work


class Desk:
    """The order system's side of the conversation, in one line per call."""

    def __init__(self, uow: FakeUnitOfWork, balances: FakeBalanceProvider, clock: FakeClock) -> None:
        self.uow, self.balances, self.clock = uow, balances, clock

    def order(
        self,
        amount: str,
        *,
        order_id: str | None = None,
        customer: str = CUSTOMER,
        group: str = GROUP,
        **extra: Any,
    ) -> Order:
        return Order(
            order_id=order_id or random_order_id("svc"),
            customer_code=customer,
            sale_group_code=group,
            amount=Decimal(amount),
            **extra,
        )

    def decide(self, amount: str, *, scope: frozenset[str] | None = None, **kw: Any) -> Decision:
        return self.decide_result(self.order(amount, **kw), scope=scope).decision

    def decide_result(self, order: Order, *, scope: frozenset[str] | None = None) -> DecisionResult:
        return decide_order(order, scope=scope, uow=self.uow, balances=self.balances)

    def account(self, customer: str = CUSTOMER, group: str = GROUP) -> CreditAccount:
        with self.uow:
            found = self.uow.accounts.get(customer, group)
        assert found is not None
        return found

    def decision(self, order_id: str, customer: str = CUSTOMER) -> Decision:
        with self.uow:
            found = self.uow.decisions.get(customer, order_id)
        assert found is not None
        return found

    def set_params(self, customer: str = CUSTOMER, group: str = GROUP, **params: str) -> None:
        """Per-account parameter overrides, e.g. a credit line: base_credit_limit="500.00"."""
        with self.uow:
            acc = self.uow.accounts.get(customer, group)
            assert acc is not None
            acc.params.update(params)
            self.uow.accounts.save(acc)
            self.uow.commit()

    def new_balance(
        self, amount: str, *, customer: str = CUSTOMER, group: str = GROUP, after_s: float = 301
    ) -> None:
        """Haier reports a new balance, and the clock moves on far enough for it to be fetched."""
        self.balances.set_balance(customer, group, amount)
        self.clock.advance(after_s)

    def open_holds_total(self, account_id: int) -> Decimal:
        with self.uow:
            return sum((h.amount for h in self.uow.holds.counting(account_id)), Decimal("0.00"))


@pytest.fixture
def desk(uow: FakeUnitOfWork, balances: FakeBalanceProvider, clock: FakeClock) -> Desk:
    return Desk(uow, balances, clock)
