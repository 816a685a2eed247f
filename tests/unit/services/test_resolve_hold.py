"""Settling and releasing: each hold ends once; a settled hold counts until a later balance includes it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.fake.clock import FakeClock
from creditctl.domain.decision import DecisionState
from creditctl.domain.errors import HoldNotOpen, UnknownOrder
from creditctl.domain.hold import HoldStatus
from creditctl.services.account_view import view_account
from creditctl.services.customers import refresh_balances
from creditctl.services.resolve_hold import release_order, settle_order
from rules import Outcome
from tests.unit.services.conftest import CUSTOMER, GROUP, OTHER_CUSTOMER, Desk

pytestmark = pytest.mark.unit


def settle(desk: Desk, order_id: str, scope: frozenset[str] | None = None):  # type: ignore[no-untyped-def]
    return settle_order(order_id, scope=scope, uow=desk.uow)


def release(desk: Desk, order_id: str, scope: frozenset[str] | None = None):  # type: ignore[no-untyped-def]
    return release_order(order_id, scope=scope, uow=desk.uow)


def refresh(desk: Desk) -> None:
    refresh_balances(CUSTOMER, scope=None, uow=desk.uow, balances=desk.balances, clock=desk.clock)


class TestSettleOrder:
    def test_marks_the_hold_settled_but_keeps_it_counting(self, desk: Desk, clock: FakeClock) -> None:
        approved = desk.decide("400.00")
        clock.advance(10)
        settled = settle(desk, approved.order_id)
        assert settled.hold is not None
        assert settled.hold.status is HoldStatus.SETTLED
        assert settled.hold.ended_at == clock.now()
        assert settled.hold.counting is True
        assert desk.account().exposure == Decimal("400.00")
        assert desk.decide("700.00").outcome is Outcome.BLOCK  # the stale balance still includes the 400

    def test_keeps_counting_until_a_balance_fetched_after_settlement_arrives_then_stops(
        self, desk: Desk, clock: FakeClock
    ) -> None:
        approved = desk.decide("400.00")
        clock.advance(10)
        settle(desk, approved.order_id)
        desk.balances.set_balance(CUSTOMER, GROUP, "600.00")  # Haier debited the 400

        refresh(desk)  # fetched at the settlement instant: it may not include the debit yet
        assert desk.account().exposure == Decimal("400.00")

        clock.advance(1)
        refresh(desk)  # fetched after the settlement: the debit is in it
        account = desk.account()
        assert account.exposure == Decimal("0.00")
        assert desk.open_holds_total(account.id) == Decimal("0.00")
        hold = desk.decision(approved.order_id).hold
        assert hold is not None and (hold.status, hold.counting) == (HoldStatus.SETTLED, False)
        assert desk.decide("600.00").outcome is Outcome.APPROVE  # money is not counted twice

    def test_a_decision_that_fetches_a_newer_balance_stops_counting_the_settled_hold(
        self, desk: Desk, clock: FakeClock
    ) -> None:
        approved = desk.decide("400.00")
        settle(desk, approved.order_id)
        desk.new_balance("600.00")
        decision = desk.decide("100.00")
        assert decision.exposure == Decimal("0.00")  # what counted when it was decided
        assert decision.available == Decimal("600.00")
        assert desk.account().exposure == Decimal("100.00")

    def test_a_retried_settle_answers_the_same_settled_hold_and_changes_nothing(self, desk: Desk) -> None:
        approved = desk.decide("10.00")
        first = settle(desk, approved.order_id)
        exposure = desk.account().exposure
        again = settle(desk, approved.order_id)
        assert again.hold == first.hold
        assert again.hold is not None and again.hold.status is HoldStatus.SETTLED
        assert desk.account().exposure == exposure

    def test_releasing_a_settled_hold_is_refused(self, desk: Desk) -> None:
        approved = desk.decide("10.00")
        settle(desk, approved.order_id)
        with pytest.raises(HoldNotOpen, match=r"has no open hold to end \(it is settled\)"):
            release(desk, approved.order_id)


class TestReleaseOrder:
    def test_exposure_drops_at_once(self, desk: Desk) -> None:
        approved = desk.decide("400.00")
        released = release(desk, approved.order_id)
        assert released.hold is not None
        assert (released.hold.status, released.hold.counting) == (HoldStatus.RELEASED, False)
        assert desk.account().exposure == Decimal("0.00")
        assert desk.decide("1000.00").outcome is Outcome.APPROVE

    def test_a_retried_release_answers_the_same_and_changes_nothing(self, desk: Desk) -> None:
        approved = desk.decide("400.00")
        first = release(desk, approved.order_id)
        again = release(desk, approved.order_id)
        assert again.hold == first.hold
        assert desk.account().exposure == Decimal("0.00")

    def test_settling_a_released_hold_is_refused(self, desk: Desk) -> None:
        approved = desk.decide("400.00")
        release(desk, approved.order_id)
        with pytest.raises(HoldNotOpen, match=r"\(it is released\)"):
            settle(desk, approved.order_id)

    def test_releasing_a_deferred_order_cancels_it(self, desk: Desk) -> None:
        desk.set_params(base_credit_limit="500.00")
        deferred = desk.decide("1200.00")
        cancelled = release(desk, deferred.order_id)
        assert cancelled.state is DecisionState.CANCELLED
        assert cancelled.hold is None
        assert desk.decision(deferred.order_id).state is DecisionState.CANCELLED
        with pytest.raises(HoldNotOpen, match=r"\(it is cancelled\)"):
            release(desk, deferred.order_id)

    def test_a_blocked_order_has_no_hold_to_release(self, desk: Desk) -> None:
        blocked = desk.decide("5000.00")
        with pytest.raises(HoldNotOpen, match=r"\(it is block, without a hold\)"):
            release(desk, blocked.order_id)

    def test_an_unknown_order_is_not_found(self, desk: Desk) -> None:
        with pytest.raises(UnknownOrder, match="no decision for order 'nope'"):
            release(desk, "nope")

    def test_a_key_limited_to_another_customer_cannot_see_the_order(self, desk: Desk) -> None:
        approved = desk.decide("10.00")
        with pytest.raises(UnknownOrder, match="no decision for order"):
            release(desk, approved.order_id, scope=frozenset({OTHER_CUSTOMER}))
        assert desk.account().exposure == Decimal("10.00")

    def test_releasing_a_hold_past_its_expiry_is_refused_as_expired(
        self, desk: Desk, clock: FakeClock
    ) -> None:
        approved = desk.decide("10.00")
        clock.advance(604800)
        with pytest.raises(HoldNotOpen, match=r"\(it is expired\)"):
            release(desk, approved.order_id)
        assert desk.account().exposure == Decimal("0.00")

    def test_exposure_in_the_account_view_drops_with_the_release(self, desk: Desk) -> None:
        approved = desk.decide("250.00")
        release(desk, approved.order_id)
        view = view_account(CUSTOMER, GROUP, scope=None, uow=desk.uow)
        assert view.exposure == Decimal("0.00")
        assert view.open_holds == ()
