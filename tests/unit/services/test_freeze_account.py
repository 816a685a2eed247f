"""Freezing by hand: every order on a frozen account is blocked until someone unfreezes it."""

from __future__ import annotations

import pytest

from adapters.fake.clock import FakeClock
from adapters.fake.unit_of_work import FakeStore
from creditctl.domain.account import AccountStatus, CreditAccount
from creditctl.domain.errors import AlreadyFrozen, InvalidRequest, UnknownAccount, UnknownCustomer
from creditctl.services.freeze_account import freeze_account, unfreeze_account
from rules import Outcome
from tests.keys import key
from tests.unit.services.conftest import CUSTOMER, GROUP, OTHER_CUSTOMER, RICH_GROUP, Desk

pytestmark = pytest.mark.unit


def freeze(desk: Desk, reason: str = "chargeback", *, group: str = GROUP, **kw) -> CreditAccount:  # type: ignore[no-untyped-def]
    return freeze_account(
        CUSTOMER, group, reason=reason, who=key("ops", customers=kw.pop("scope", None)), uow=desk.uow, **kw
    )


def unfreeze(desk: Desk, reason: str = "cleared", **kw) -> CreditAccount:  # type: ignore[no-untyped-def]
    return unfreeze_account(
        CUSTOMER, GROUP, reason=reason, who=key("ops", customers=kw.pop("scope", None)), uow=desk.uow, **kw
    )


class TestFreezeAccount:
    def test_an_admin_freeze_blocks_every_order(self, desk: Desk, clock: FakeClock) -> None:
        frozen = freeze(desk)
        assert frozen.status is AccountStatus.FROZEN
        assert (frozen.frozen_reason, frozen.frozen_by, frozen.frozen_at) == (
            "chargeback",
            "admin:ops",
            clock.now(),
        )
        decision = desk.decide("1.00")
        assert decision.outcome is Outcome.BLOCK
        assert decision.reasons[0].reason == "ACCOUNT_FROZEN"
        assert decision.hold is None

    def test_only_the_frozen_account_is_blocked(self, desk: Desk) -> None:
        freeze(desk)
        assert desk.decide("1.00", group=RICH_GROUP).outcome is Outcome.APPROVE

    @pytest.mark.parametrize("reason", ["", "   "])
    def test_a_reason_is_required_and_nothing_changes_without_one(
        self, desk: Desk, store: FakeStore, reason: str
    ) -> None:
        commits = store.commits
        with pytest.raises(InvalidRequest, match="a reason is required"):
            freeze(desk, reason)
        assert store.commits == commits
        assert desk.account().status is AccountStatus.ACTIVE

    def test_freezing_again_for_the_same_reason_changes_nothing(
        self, desk: Desk, store: FakeStore, clock: FakeClock
    ) -> None:
        first = freeze(desk, "chargeback")
        commits = store.commits
        clock.advance(60)
        again = freeze(desk, " chargeback ")
        assert (again.frozen_reason, again.frozen_by, again.frozen_at) == (
            "chargeback",
            "admin:ops",
            first.frozen_at,
        )
        assert store.commits == commits

    def test_freezing_again_for_another_reason_is_refused_naming_the_freeze(
        self, desk: Desk, store: FakeStore, clock: FakeClock
    ) -> None:
        first = freeze(desk, "chargeback")
        commits = store.commits
        clock.advance(60)
        with pytest.raises(AlreadyFrozen) as refused:
            freeze(desk, "another reason")
        assert (refused.value.frozen_reason, refused.value.frozen_by) == ("chargeback", "admin:ops")
        assert first.frozen_at is not None and refused.value.frozen_at == first.frozen_at.isoformat()
        assert "chargeback" in refused.value.message and "admin:ops" in refused.value.message
        assert store.commits == commits
        assert desk.account().frozen_reason == "chargeback"

    def test_an_admin_freeze_takes_over_a_freeze_the_rules_made(self, desk: Desk, clock: FakeClock) -> None:
        desk.new_balance("0.00")
        assert desk.decide("1.00").outcome is Outcome.FREEZE
        assert (desk.account().frozen_by or "").startswith("rule:")
        clock.advance(60)
        taken = freeze(desk, "customer in administration")
        assert (taken.frozen_reason, taken.frozen_by, taken.frozen_at) == (
            "customer in administration",
            "admin:ops",
            clock.now(),
        )
        desk.new_balance("1000.00")  # money back would lift a rule's freeze, not an administrator's
        assert desk.decide("1.00").outcome is Outcome.BLOCK

    def test_an_unknown_account_is_not_found(self, desk: Desk) -> None:
        with pytest.raises(UnknownAccount, match="has no payer account in sales group 'ZZ99'"):
            freeze(desk, group="ZZ99")

    def test_a_key_limited_to_another_customer_gets_unknown_customer(self, desk: Desk) -> None:
        with pytest.raises(UnknownCustomer, match="unknown customer '8800000001'"):
            freeze(desk, scope=frozenset({OTHER_CUSTOMER}))
        assert desk.account().status is AccountStatus.ACTIVE


class TestUnfreezeAccount:
    def test_unfreezing_lets_orders_through_again(self, desk: Desk) -> None:
        freeze(desk)
        thawed = unfreeze(desk)
        assert thawed.status is AccountStatus.ACTIVE
        assert thawed.frozen_reason is None
        assert desk.decide("1.00").outcome is Outcome.APPROVE

    def test_lifts_a_freeze_the_rules_made(self, desk: Desk) -> None:
        desk.new_balance("0.00")
        assert desk.decide("1.00").outcome is Outcome.FREEZE
        desk.new_balance("1000.00")
        unfreeze(desk)
        assert desk.decide("1.00").outcome is Outcome.APPROVE

    def test_a_reason_is_required(self, desk: Desk) -> None:
        freeze(desk)
        with pytest.raises(InvalidRequest, match="a reason is required"):
            unfreeze(desk, "")
        assert desk.account().is_frozen
