"""Registering customers and refreshing their balances: accounts appear as Haier reports them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.fake.clock import FakeClock
from adapters.fake.unit_of_work import FakeStore, FakeUnitOfWork
from creditctl.domain.errors import InvalidRequest, UnknownCustomer
from creditctl.ports.balance_provider import BalanceUnavailable
from creditctl.services.customers import refresh_balances, register_customer
from tests.unit.services.conftest import CUSTOMER, OTHER_CUSTOMER, Desk

pytestmark = pytest.mark.unit


def refresh(desk: Desk, code: str = CUSTOMER, scope: frozenset[str] | None = None):  # type: ignore[no-untyped-def]
    return refresh_balances(code, scope=scope, uow=desk.uow, balances=desk.balances, clock=desk.clock)


class TestRegisterCustomer:
    def test_registers_once(self, uow: FakeUnitOfWork, clock: FakeClock) -> None:
        assert register_customer("8800000003", name="Gamma", uow=uow, clock=clock) is True
        assert register_customer("8800000003", uow=uow, clock=clock) is False

    @pytest.mark.parametrize("code", ["", "88-01", "x" * 33, "88 01"])
    def test_refuses_a_code_that_is_not_1_to_32_letters_or_digits(
        self, uow: FakeUnitOfWork, clock: FakeClock, store: FakeStore, code: str
    ) -> None:
        commits = store.commits
        with pytest.raises(InvalidRequest, match="a customer code is 1-32 letters or digits"):
            register_customer(code, uow=uow, clock=clock)
        assert store.commits == commits


class TestRefreshBalances:
    def test_creates_an_account_per_payer_account_with_its_snapshot(
        self, desk: Desk, clock: FakeClock
    ) -> None:
        with desk.uow:
            accounts = desk.uow.accounts.for_customer(CUSTOMER)
        assert [(a.sale_group_code, a.sale_group_name, a.payer_account_name) for a in accounts] == [
            ("GA10", "Air", "Alpha Co"),
            ("GB20", "Fridge", "Alpha Co"),
        ]
        assert accounts[0].snapshot is not None
        assert (accounts[0].snapshot.amount, accounts[0].snapshot.fetched_at) == (
            Decimal("1000.00"),
            clock.now(),
        )
        assert accounts[0].snapshot.source == "fake"

    def test_takes_a_newer_balance(self, desk: Desk) -> None:
        desk.new_balance("250.00", after_s=1)
        refresh(desk)
        assert desk.account().snapshot.amount == Decimal("250.00")  # type: ignore[union-attr]

    def test_refuses_an_unregistered_customer_without_asking_the_upstream(
        self, desk: Desk, balances: FakeBalanceProvider
    ) -> None:
        calls = len(balances.calls)
        with pytest.raises(UnknownCustomer, match="unknown customer '8800000009'"):
            refresh(desk, "8800000009")
        assert len(balances.calls) == calls

    def test_a_key_limited_to_another_customer_gets_unknown_customer(self, desk: Desk) -> None:
        with pytest.raises(UnknownCustomer, match="unknown customer '8800000001'"):
            refresh(desk, scope=frozenset({OTHER_CUSTOMER}))

    def test_an_upstream_failure_stores_nothing(
        self, desk: Desk, balances: FakeBalanceProvider, store: FakeStore
    ) -> None:
        balances.fail_with("RATE_LIMITED")
        commits = store.commits
        with pytest.raises(BalanceUnavailable, match="simulated upstream failure RATE_LIMITED"):
            refresh(desk)
        assert store.commits == commits
