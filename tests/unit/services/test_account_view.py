"""The account view: balance, exposure, available, limit and the holds that count, as of now."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.fake.clock import FakeClock
from creditctl.domain.errors import UnknownAccount, UnknownCustomer
from creditctl.services.account_view import AccountView, view_account
from tests.unit.services.conftest import CUSTOMER, GROUP, OTHER_CUSTOMER, Desk

pytestmark = pytest.mark.unit


def view(desk: Desk, group: str = GROUP, scope: frozenset[str] | None = None) -> AccountView:
    return view_account(CUSTOMER, group, scope=scope, uow=desk.uow)


class TestViewAccount:
    def test_shows_balance_exposure_available_and_limit(self, desk: Desk) -> None:
        desk.set_params(base_credit_limit="500.00")
        approved = desk.decide("300.00")
        shown = view(desk)
        assert shown.exposure == Decimal("300.00")
        assert shown.available == Decimal("700.00")
        assert shown.credit_limit == Decimal("500.00")
        assert shown.credit_grade == "A"
        assert [h.order_id for h in shown.open_holds] == [approved.order_id]
        assert shown.balance_usable is True
        assert shown.rule_set.version == 1

    def test_exposure_excludes_holds_past_expiry_even_before_the_sweeper(
        self, desk: Desk, clock: FakeClock
    ) -> None:
        desk.set_params(hold_ttl_s="60")
        desk.decide("300.00")
        clock.advance(60)
        shown = view(desk)
        assert shown.exposure == Decimal("0.00")
        assert shown.available == Decimal("1000.00")
        assert shown.open_holds == ()
        assert desk.account().exposure == Decimal("300.00")  # the sweeper has not run: stored state is older

    def test_available_is_unknown_when_the_balance_is_too_old(self, desk: Desk, clock: FakeClock) -> None:
        clock.advance(1801)
        shown = view(desk)
        assert shown.available is None
        assert shown.balance_usable is False
        assert shown.balance_age_s == 1801

    def test_an_unknown_account_is_not_found(self, desk: Desk) -> None:
        with pytest.raises(UnknownAccount, match="sales group 'ZZ99'"):
            view(desk, "ZZ99")

    def test_a_key_limited_to_another_customer_gets_unknown_customer(self, desk: Desk) -> None:
        with pytest.raises(UnknownCustomer, match="unknown customer '8800000001'"):
            view(desk, scope=frozenset({OTHER_CUSTOMER}))
