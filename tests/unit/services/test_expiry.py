"""The sweeper: holds past their expiry stop counting, deferrals past theirs are blocked; each ends once."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.fake.clock import FakeClock
from creditctl.domain.decision import DecisionState
from creditctl.domain.hold import HoldStatus
from creditctl.services.expiry import SweepResult, sweep
from rules import Outcome
from tests.unit.services.conftest import RICH_GROUP, Desk

pytestmark = pytest.mark.unit

HOLD_TTL_S = 604800


def run_sweep(desk: Desk) -> SweepResult:
    return sweep(uow=desk.uow)


class TestSweep:
    def test_holds_past_expiry_stop_counting(self, desk: Desk, clock: FakeClock) -> None:
        first = desk.decide("100.00")
        second = desk.decide("200.00", group=RICH_GROUP)
        clock.advance(HOLD_TTL_S)
        assert run_sweep(desk) == SweepResult(holds_expired_on=2, deferrals_expired=0)
        for decision, group in ((first, "GA10"), (second, RICH_GROUP)):
            hold = desk.decision(decision.order_id).hold
            assert hold is not None
            assert (hold.status, hold.counting, hold.ended_at) == (HoldStatus.EXPIRED, False, clock.now())
            assert desk.account(group=group).exposure == Decimal("0.00")

    def test_holds_not_yet_due_keep_counting(self, desk: Desk, clock: FakeClock) -> None:
        approved = desk.decide("100.00")
        clock.advance(HOLD_TTL_S - 1)
        assert run_sweep(desk).holds_expired_on == 0
        hold = desk.decision(approved.order_id).hold
        assert hold is not None and hold.status is HoldStatus.OPEN
        assert desk.account().exposure == Decimal("100.00")

    def test_each_hold_ends_once(self, desk: Desk, clock: FakeClock) -> None:
        approved = desk.decide("100.00")
        clock.advance(HOLD_TTL_S)
        run_sweep(desk)
        ended_at = clock.now()
        clock.advance(60)
        assert run_sweep(desk) == SweepResult(holds_expired_on=0, deferrals_expired=0)
        hold = desk.decision(approved.order_id).hold
        assert hold is not None and hold.ended_at == ended_at
        assert desk.account().exposure == Decimal("0.00")  # not subtracted twice

    def test_settled_and_released_holds_are_not_expired(self, desk: Desk, clock: FakeClock) -> None:
        from creditctl.services.resolve_hold import release_order, settle_order

        settled = desk.decide("100.00")
        released = desk.decide("50.00")
        settle_order(settled.order_id, scope=None, uow=desk.uow)
        release_order(released.order_id, scope=None, uow=desk.uow)
        clock.advance(HOLD_TTL_S)
        assert run_sweep(desk).holds_expired_on == 0
        hold = desk.decision(settled.order_id).hold
        assert hold is not None and hold.status is HoldStatus.SETTLED

    def test_deferrals_past_their_deadline_are_blocked_once(self, desk: Desk, clock: FakeClock) -> None:
        desk.set_params(base_credit_limit="500.00")
        deferred = desk.decide("1200.00")
        clock.advance(86400)
        assert run_sweep(desk).deferrals_expired == 1
        expired = desk.decision(deferred.order_id)
        assert (expired.outcome, expired.state) == (Outcome.BLOCK, DecisionState.EXPIRED)
        assert [r.reason for r in expired.reasons].count("DEFERRAL_EXPIRED") == 1
        assert run_sweep(desk).deferrals_expired == 0
        assert [r.reason for r in desk.decision(deferred.order_id).reasons].count("DEFERRAL_EXPIRED") == 1
