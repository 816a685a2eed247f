"""recheck_order: a deferred order is evaluated again; anything decided stays as it was."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from adapters.fake.clock import FakeClock
from creditctl.domain.decision import Decision, DecisionState
from creditctl.domain.errors import UnknownOrder
from creditctl.domain.hold import HoldStatus
from creditctl.services.get_decision import get_decision
from creditctl.services.recheck_order import recheck_order
from rules import Outcome
from tests.unit.services.conftest import OTHER_CUSTOMER, Desk

pytestmark = pytest.mark.unit


def recheck(desk: Desk, order_id: str, scope: frozenset[str] | None = None) -> Decision:
    return recheck_order(order_id, scope=scope, uow=desk.uow, balances=desk.balances)


@pytest.fixture
def deferred(desk: Desk) -> Decision:
    desk.set_params(base_credit_limit="500.00")
    decision = desk.decide("1200.00")
    assert decision.outcome is Outcome.DEFER
    return decision


class TestRecheckOrder:
    def test_approves_a_deferred_order_once_the_balance_goes_up_creating_the_hold(
        self, desk: Desk, deferred: Decision, clock: FakeClock
    ) -> None:
        desk.new_balance("2000.00")
        rechecked = recheck(desk, deferred.order_id)
        assert rechecked.outcome is Outcome.APPROVE
        assert rechecked.state is DecisionState.DECIDED
        assert rechecked.rechecks == 1
        assert rechecked.id == deferred.id
        assert rechecked.decided_at == deferred.decided_at  # the order's first decision keeps its time
        assert rechecked.rechecked_at == clock.now()
        assert rechecked.shortfall is None
        assert rechecked.hold is not None
        assert (rechecked.hold.amount, rechecked.hold.status) == (Decimal("1200.00"), HoldStatus.OPEN)
        assert desk.account().exposure == Decimal("1200.00")
        assert desk.decision(deferred.order_id).hold == rechecked.hold

    def test_the_answer_a_recheck_brings_is_kept_for_the_customer_s_other_groups(
        self, desk: Desk, deferred: Decision
    ) -> None:
        desk.balances.set_balance("8800000001", "GE50", "900.00")  # a payer account Haier opened since
        desk.new_balance("2000.00")  # the recheck asks Haier again
        recheck(desk, deferred.order_id)
        calls = len(desk.balances.calls)
        assert desk.decide("10.00", group="GE50").outcome is Outcome.APPROVE  # not 404 for refresh_after_s
        assert len(desk.balances.calls) == calls

    def test_stays_deferred_while_money_is_still_short(
        self, desk: Desk, deferred: Decision, clock: FakeClock
    ) -> None:
        desk.new_balance("1100.00")
        rechecked = recheck(desk, deferred.order_id)
        assert rechecked.outcome is Outcome.DEFER
        assert rechecked.state is DecisionState.DEFERRED
        assert rechecked.shortfall == Decimal("100.00")
        assert rechecked.rechecks == 1
        assert rechecked.hold is None
        assert rechecked.deferral_expires_at == deferred.deferral_expires_at  # the deadline does not move

    def test_returns_a_decided_order_unchanged(self, desk: Desk) -> None:
        approved = desk.decide("10.00")
        desk.new_balance("0.00")
        again = recheck(desk, approved.order_id)
        assert again.outcome is Outcome.APPROVE
        assert again.rechecks == 0
        assert again.decided_at == approved.decided_at
        assert desk.account().exposure == Decimal("10.00")

    def test_returns_a_blocked_order_unchanged(self, desk: Desk) -> None:
        blocked = desk.decide("5000.00")
        desk.new_balance("100000.00")
        again = recheck(desk, blocked.order_id)
        assert again.outcome is Outcome.BLOCK
        assert again.rechecks == 0
        assert again.hold is None

    def test_blocks_a_deferral_past_its_deadline(
        self, desk: Desk, deferred: Decision, clock: FakeClock
    ) -> None:
        desk.new_balance("100000.00", after_s=86400)
        assert deferred.deferral_expires_at == clock.now()
        expired = recheck(desk, deferred.order_id)
        assert expired.outcome is Outcome.BLOCK
        assert expired.state is DecisionState.EXPIRED
        assert expired.reasons[-1].reason == "DEFERRAL_EXPIRED"
        assert expired.hold is None
        assert expired.shortfall is None
        assert desk.account().exposure == Decimal("0.00")

    def test_reading_an_expired_deferral_blocks_it_on_the_way(
        self, desk: Desk, deferred: Decision, clock: FakeClock
    ) -> None:
        clock.advance(86400)
        read = get_decision(deferred.order_id, scope=None, uow=desk.uow)
        assert (read.outcome, read.state) == (Outcome.BLOCK, DecisionState.EXPIRED)

    def test_recheck_on_an_unusable_balance_stays_deferred(
        self, desk: Desk, deferred: Decision, clock: FakeClock
    ) -> None:
        desk.balances.fail_with("UPSTREAM_TIMEOUT")
        clock.advance(1801)
        rechecked = recheck(desk, deferred.order_id)
        assert rechecked.outcome is Outcome.DEFER
        assert {r.reason for r in rechecked.reasons} >= {"BALANCE_UNAVAILABLE", "UPSTREAM_TIMEOUT"}
        assert rechecked.deferral_expires_at == deferred.decided_at + timedelta(seconds=86400)

    def test_a_key_limited_to_another_customer_cannot_recheck(self, desk: Desk, deferred: Decision) -> None:
        with pytest.raises(UnknownOrder, match=f"no decision for order '{deferred.order_id}'"):
            recheck(desk, deferred.order_id, scope=frozenset({OTHER_CUSTOMER}))
