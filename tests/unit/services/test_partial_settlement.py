"""Settling a hold in parts: each part counts until a balance as of after ITS settlement arrives, the
rest stays held, nothing is settled beyond the hold, and each step is applied once under retries."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.fake.clock import FakeClock
from creditctl.domain.errors import HoldNotOpen, InvalidRequest, OverSettlement, SettlementIdReused
from creditctl.domain.hold import HoldStatus
from creditctl.services.customers import refresh_balances
from creditctl.services.expiry import expire_holds
from creditctl.services.resolve_hold import release_order, settle_order
from tests.unit.services.conftest import CUSTOMER, GROUP, Desk

pytestmark = pytest.mark.unit


def settle(desk: Desk, order_id: str, amount: str | None = None, sid: str | None = None):  # type: ignore[no-untyped-def]
    return settle_order(
        order_id,
        amount=None if amount is None else Decimal(amount),
        settlement_id=sid,
        scope=None,
        uow=desk.uow,
    )


def release(desk: Desk, order_id: str):  # type: ignore[no-untyped-def]
    return release_order(order_id, scope=None, uow=desk.uow)


def refresh(desk: Desk) -> None:
    refresh_balances(CUSTOMER, scope=None, uow=desk.uow, balances=desk.balances, clock=desk.clock)


class TestSettleInParts:
    def test_a_part_keeps_the_rest_held_and_exposure_unchanged(self, desk: Desk, clock: FakeClock) -> None:
        order_id = desk.decide("400.00").order_id
        clock.advance(5)
        hold = settle(desk, order_id, "100.00", "DN-1").hold
        assert hold is not None
        assert (hold.status, hold.settled, hold.remaining, hold.ended_at) == (
            HoldStatus.OPEN,
            Decimal("100.00"),
            Decimal("300.00"),
            None,
        )
        [part] = hold.settlements
        assert (part.settlement_id, part.amount, part.settled_at, part.counting) == (
            "DN-1",
            Decimal("100.00"),
            clock.now(),
            True,
        )
        assert desk.account().exposure == Decimal("400.00")

    def test_parts_that_add_up_to_the_hold_settle_it(self, desk: Desk, clock: FakeClock) -> None:
        order_id = desk.decide("400.00").order_id
        settle(desk, order_id, "100.00", "DN-1")
        clock.advance(1)
        hold = settle(desk, order_id, "300.00", "DN-2").hold
        assert hold is not None
        assert (hold.status, hold.remaining, hold.ended_at) == (
            HoldStatus.SETTLED,
            Decimal("0.00"),
            clock.now(),
        )
        assert [e.type for e in hold.events] == ["held", "settled", "settled"]

    def test_more_than_is_left_is_refused_naming_the_remainder(self, desk: Desk) -> None:
        order_id = desk.decide("400.00").order_id
        settle(desk, order_id, "100.00", "DN-1")
        with pytest.raises(OverSettlement, match=r"cannot settle 300\.01: 300\.00 is left") as e:
            settle(desk, order_id, "300.01", "DN-2")
        assert e.value.errors["remaining"] == ["300.00"]
        assert desk.decision(order_id).hold.settled == Decimal("100.00")  # type: ignore[union-attr]

    def test_a_new_part_on_a_fully_settled_hold_is_refused_with_nothing_left(self, desk: Desk) -> None:
        order_id = desk.decide("400.00").order_id
        settle(desk, order_id)
        with pytest.raises(OverSettlement, match=r"0\.00 is left"):
            settle(desk, order_id, "1.00", "DN-9")

    def test_a_partial_settle_needs_a_settlement_id(self, desk: Desk) -> None:
        order_id = desk.decide("400.00").order_id
        with pytest.raises(InvalidRequest, match="needs a settlement_id"):
            settle(desk, order_id, "100.00")

    def test_without_an_amount_the_whole_remainder_is_settled(self, desk: Desk) -> None:
        order_id = desk.decide("400.00").order_id
        settle(desk, order_id, "150.00", "DN-1")
        hold = settle(desk, order_id).hold
        assert hold is not None and hold.status is HoldStatus.SETTLED
        assert [s.amount for s in hold.settlements] == [Decimal("150.00"), Decimal("250.00")]


class TestRetries:
    def test_a_retried_part_is_applied_once(self, desk: Desk) -> None:
        order_id = desk.decide("400.00").order_id
        first = settle(desk, order_id, "100.00", "DN-1")
        commits = desk.uow.store.commits
        again = settle(desk, order_id, "100.00", "DN-1")
        assert again.hold == first.hold
        assert desk.uow.store.commits == commits  # nothing written
        assert desk.decision(order_id).hold.remaining == Decimal("300.00")  # type: ignore[union-attr]

    def test_a_retry_without_the_amount_answers_the_part(self, desk: Desk) -> None:
        order_id = desk.decide("400.00").order_id
        settle(desk, order_id, "100.00", "DN-1")
        assert settle(desk, order_id, None, "DN-1").hold.settled == Decimal("100.00")  # type: ignore[union-attr]

    def test_a_settlement_id_reused_with_another_amount_is_a_conflict(self, desk: Desk) -> None:
        order_id = desk.decide("400.00").order_id
        settle(desk, order_id, "100.00", "DN-1")
        with pytest.raises(SettlementIdReused, match=r"'DN-1' .* already settled 100\.00"):
            settle(desk, order_id, "120.00", "DN-1")

    def test_a_retried_part_after_the_remainder_was_released_answers_the_part(self, desk: Desk) -> None:
        order_id = desk.decide("400.00").order_id
        settle(desk, order_id, "100.00", "DN-1")
        release(desk, order_id)
        hold = settle(desk, order_id, "100.00", "DN-1").hold
        assert hold is not None and hold.status is HoldStatus.RELEASED

    def test_a_retried_full_settle_answers_unchanged(self, desk: Desk) -> None:
        order_id = desk.decide("400.00").order_id
        first = settle(desk, order_id)
        assert settle(desk, order_id).hold == first.hold


class TestReleaseAfterParts:
    def test_release_ends_the_remainder_at_once_and_parts_keep_counting(
        self, desk: Desk, clock: FakeClock
    ) -> None:
        order_id = desk.decide("400.00").order_id
        settle(desk, order_id, "100.00", "DN-1")
        clock.advance(3)
        hold = release(desk, order_id).hold
        assert hold is not None
        assert (hold.status, hold.settled, hold.remaining, hold.counting) == (
            HoldStatus.RELEASED,
            Decimal("100.00"),
            Decimal("0.00"),
            True,
        )
        assert desk.account().exposure == Decimal("100.00")  # the settled part, not yet in a balance
        assert [(e.type, e.amount) for e in hold.events] == [
            ("held", Decimal("400.00")),
            ("settled", Decimal("100.00")),
            ("released", Decimal("300.00")),
        ]
        assert release(desk, order_id).hold == hold  # a retry: unchanged
        with pytest.raises(HoldNotOpen, match="it is released"):
            settle(desk, order_id)

    def test_each_part_stops_counting_when_a_balance_as_of_after_it_arrives(
        self, desk: Desk, clock: FakeClock
    ) -> None:
        order_id = desk.decide("400.00").order_id
        settle(desk, order_id, "100.00", "DN-1")  # at t0
        clock.advance(10)
        settle(desk, order_id, "50.00", "DN-2")  # at t0+10
        release(desk, order_id)
        desk.balances.set_balance(CUSTOMER, GROUP, "850.00")
        clock.advance(-5)  # a balance as of t0+5 includes DN-1 only
        refresh(desk)
        assert desk.account().exposure == Decimal("50.00")
        assert desk.decision(order_id).hold.counting is True  # type: ignore[union-attr]
        clock.advance(10)  # as of t0+15: DN-2 too
        refresh(desk)
        assert desk.account().exposure == Decimal("0.00")
        hold = desk.decision(order_id).hold
        assert hold is not None and hold.counting is False
        assert [s.counting for s in hold.settlements] == [False, False]

    def test_an_expired_remainder_stops_counting_and_its_parts_count_on(
        self, desk: Desk, clock: FakeClock
    ) -> None:
        order_id = desk.decide("400.00").order_id
        settle(desk, order_id, "100.00", "DN-1")
        clock.advance(7 * 86400)
        expire_holds(uow=desk.uow)
        hold = desk.decision(order_id).hold
        assert hold is not None and (hold.status, hold.counting) == (HoldStatus.EXPIRED, True)
        assert [(e.type, e.amount) for e in hold.events][-1] == ("expired", Decimal("300.00"))
        assert desk.account().exposure == Decimal("100.00")
