"""Registering customers and refreshing their balances: accounts appear as Haier reports them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.fake.clock import FakeClock
from adapters.fake.unit_of_work import FakeStore, FakeUnitOfWork
from creditctl.domain.errors import InvalidRequest, UnknownCustomer
from creditctl.ports.balance_provider import BalanceUnavailable
from creditctl.services.customers import (
    ensure_known,
    list_customers,
    refresh_balances,
    register_customer,
)
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


NEW = "8800000003"  # named by the provider only after the desk was set up


@pytest.fixture
def provider_knows_new(balances: FakeBalanceProvider) -> None:
    balances.set_balance(NEW, "GA10", "300.00")


def known(desk: Desk, code: str) -> bool:
    return ensure_known(code, uow=desk.uow, balances=desk.balances, now=desk.clock.now())


class TestEnsureKnown:
    def test_a_registered_customer_is_known(self, desk: Desk, store: FakeStore) -> None:
        commits = store.commits
        assert known(desk, CUSTOMER) is True
        assert store.commits == commits

    @pytest.mark.usefixtures("provider_knows_new")
    def test_a_customer_the_provider_names_is_registered_on_first_use(
        self, desk: Desk, store: FakeStore
    ) -> None:
        assert known(desk, NEW) is True
        assert store.state.customers[NEW] == ""
        commits = store.commits
        assert known(desk, NEW) is True  # idempotent: no second write
        assert store.commits == commits

    @pytest.mark.parametrize("code", ["8800000009", "", "88-01", "x" * 33])
    def test_any_other_code_is_unknown_and_nothing_is_written(
        self, desk: Desk, store: FakeStore, code: str
    ) -> None:
        commits = store.commits
        assert known(desk, code) is False
        assert code not in store.state.customers and store.commits == commits

    @pytest.mark.usefixtures("provider_knows_new")
    def test_balances_of_a_provider_known_customer_need_no_registration(self, desk: Desk) -> None:
        report = refresh(desk, NEW)
        assert [str(a.amount) for a in report.accounts] == ["300.00"]
        assert desk.account(NEW, "GA10").snapshot.amount == Decimal("300.00")  # type: ignore[union-attr]

    @pytest.mark.usefixtures("provider_knows_new")
    def test_a_limited_key_cannot_make_another_customer_known(self, desk: Desk, store: FakeStore) -> None:
        with pytest.raises(UnknownCustomer):
            refresh(desk, NEW, scope=frozenset({CUSTOMER}))
        assert NEW not in store.state.customers

    @pytest.mark.usefixtures("provider_knows_new")
    def test_a_name_can_still_be_given_after_the_first_use(
        self, desk: Desk, store: FakeStore, clock: FakeClock
    ) -> None:
        assert known(desk, NEW)
        assert register_customer(NEW, name="Gamma Co", uow=desk.uow, clock=clock) is False
        assert store.state.customers[NEW] == "Gamma Co"


class TestListCustomers:
    @pytest.mark.usefixtures("provider_knows_new")
    def test_registered_and_provider_known_customers_with_their_stored_accounts(self, desk: Desk) -> None:
        register_customer("8800000004", name="Delta", uow=desk.uow, clock=desk.clock)
        listed = {
            c.customer_code: c
            for c in list_customers(scope=None, uow=desk.uow, balances=desk.balances, source="fake")
        }
        assert sorted(listed) == [CUSTOMER, OTHER_CUSTOMER, NEW, "8800000004"]
        alpha = listed[CUSTOMER]
        assert (alpha.registered, alpha.balance_source) == (True, "fake")
        assert [(a.sale_group_code, a.snapshot.amount) for a in alpha.accounts] == [  # type: ignore[union-attr]
            ("GA10", Decimal("1000.00")),
            ("GB20", Decimal("100000.00")),
        ]
        new = listed[NEW]
        assert (new.registered, new.balance_source, new.accounts) == (False, "fake", [])
        delta = listed["8800000004"]
        assert (delta.name, delta.registered, delta.balance_source) == ("Delta", True, None)

    def test_a_limited_key_lists_only_its_own(self, desk: Desk) -> None:
        listed = list_customers(
            scope=frozenset({OTHER_CUSTOMER, "8800000099"}), uow=desk.uow, balances=desk.balances, source="x"
        )
        assert [c.customer_code for c in listed] == [OTHER_CUSTOMER]
