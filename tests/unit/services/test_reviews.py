"""The review queue: deferred orders listed, released within authority, rejected, re-checked; the
queue re-evaluated when a newer balance arrives; each act recorded with who, why and the facts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from adapters.fake.clock import FakeClock
from creditctl.domain.api_key import ApiKey, Role
from creditctl.domain.audit import key_actor
from creditctl.domain.decision import Decision, DecisionState
from creditctl.domain.errors import BeyondApprovalAuthority, NotDeferred, ReleaseRefused, UnknownOrder
from creditctl.domain.hold import HoldStatus
from creditctl.services.customers import refresh_balances
from creditctl.services.expiry import sweep
from creditctl.services.reviews import (
    QueueFilter,
    recheck_deferred,
    recheck_queue,
    reject_deferred,
    release_deferred,
    review_queue,
)
from rules import Outcome
from tests.unit.services.conftest import CUSTOMER, OTHER_CUSTOMER, Desk

pytestmark = pytest.mark.unit
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def admin(limit: str | None = "100000.00", customers: frozenset[str] | None = None) -> ApiKey:
    return ApiKey(
        id=7,
        name="credit-lead",
        role=Role.ADMIN,
        customers=customers,
        created_at=T0,
        approval_limit=None if limit is None else Decimal(limit),
    )


def queue(desk: Desk, key: ApiKey | None = None, **filters: object) -> list[Decision]:
    scope = key.customers if key else None
    return review_queue(QueueFilter(**filters), after=None, limit=100, scope=scope, uow=desk.uow)  # type: ignore[arg-type]


def events(desk: Desk, topic: str) -> list[dict[str, object]]:
    return [e["payload"] for e in desk.uow.store.state.outbox if e["topic"] == topic]


@pytest.fixture
def short(desk: Desk) -> Desk:
    """GA10 holds 1,000.00 with a 5,000.00 credit line: an order above 1,000.00 waits for funds."""
    desk.set_params(base_credit_limit="5000.00")
    desk.set_params(group="GB20", base_credit_limit="1000000.00")
    return desk


def defer(desk: Desk, amount: str = "1200.00", **kw: object) -> Decision:
    decision = desk.decide(amount, **kw)  # type: ignore[arg-type]
    assert decision.state is DecisionState.DEFERRED, decision.reasons
    return decision


class TestQueue:
    def test_lists_deferred_orders_oldest_first_and_pages_by_cursor(
        self, short: Desk, clock: FakeClock
    ) -> None:
        first = defer(short)
        clock.advance(1)
        second = defer(short, "1300.00")
        short.decide("10.00")  # approved: not in the queue
        assert [d.order_id for d in queue(short)] == [first.order_id, second.order_id]
        page = review_queue(QueueFilter(), after=None, limit=1, scope=None, uow=short.uow)
        rest = review_queue(
            QueueFilter(), after=(page[0].decided_at, page[0].id), limit=10, scope=None, uow=short.uow
        )
        assert [d.order_id for d in rest] == [second.order_id]

    def test_filters_by_customer_account_reason_age_and_amount(self, short: Desk, clock: FakeClock) -> None:
        old = defer(short)
        clock.advance(600)
        large = defer(short, "600000.00", group="GB20")  # MANUAL_REVIEW on the rich account
        ids = lambda found: [d.order_id for d in found]  # noqa: E731
        assert ids(queue(short, customer_code=CUSTOMER, sale_group_code="GB20")) == [large.order_id]
        assert ids(queue(short, reason="MANUAL_REVIEW")) == [large.order_id]
        assert ids(queue(short, min_age_s=300)) == [old.order_id]
        assert ids(queue(short, max_age_s=300)) == [large.order_id]
        assert ids(queue(short, min_amount=Decimal("5000.00"))) == [large.order_id]
        assert ids(queue(short, max_amount=Decimal("5000.00"))) == [old.order_id]
        assert queue(short, customer_code=OTHER_CUSTOMER) == []

    def test_a_key_limited_to_customers_sees_only_theirs(self, short: Desk) -> None:
        defer(short)
        assert queue(short, admin(customers=frozenset({OTHER_CUSTOMER}))) == []
        assert len(queue(short, admin(customers=frozenset({CUSTOMER})))) == 1


def release(desk: Desk, order_id: str, key: ApiKey, *, reason: str) -> Decision:
    """A reviewer's release, by `key` (its name and role are the audit actor)."""
    return release_deferred(
        order_id, customer_code=None, reason=reason, key=key, actor=key_actor(key), uow=desk.uow,
        balances=desk.balances,
    )  # fmt: skip


def reject(desk: Desk, order_id: str, key: ApiKey, *, reason: str) -> Decision:
    return reject_deferred(
        order_id, customer_code=None, reason=reason, key=key, actor=key_actor(key), uow=desk.uow
    )


def recheck(desk: Desk, order_id: str, key: ApiKey, *, reason: str) -> Decision:
    return recheck_deferred(
        order_id, customer_code=None, reason=reason, key=key, actor=key_actor(key), uow=desk.uow,
        balances=desk.balances,
    )  # fmt: skip


class TestRelease:
    def test_approves_beyond_the_rules_within_authority_taking_the_hold(
        self, short: Desk, clock: FakeClock
    ) -> None:
        deferred = defer(short)
        released = release(short, deferred.order_id, admin(), reason="transfer confirmed")
        assert (released.outcome, released.state) == (Outcome.APPROVE, DecisionState.DECIDED)
        assert released.hold is not None and released.hold.status is HoldStatus.OPEN
        assert released.hold.expires_at == clock.now() + timedelta(seconds=604800)
        assert short.account().exposure == Decimal("1200.00")
        assert released.reasons[-1].reason == "RELEASED_IN_REVIEW"
        review = short.decision(deferred.order_id).reviews[-1]
        assert (review["action"], review["by"], review["role"], review["reason"]) == (
            "release",
            "credit-lead",
            "admin",
            "transfer confirmed",
        )
        assert review["outcome_before"] == "defer" and review["facts"]["available"] == "1000.00"
        assert events(short, "decision.released")[0]["order_id"] == deferred.order_id

    def test_beyond_authority_is_refused_naming_the_authority_and_the_amount(self, short: Desk) -> None:
        deferred = defer(short)
        with pytest.raises(BeyondApprovalAuthority, match=r"approval authority 1000.00.*for 1200.00"):
            release(short, deferred.order_id, admin("1000.00"), reason="x")
        with pytest.raises(BeyondApprovalAuthority, match="no approval authority"):
            release(short, deferred.order_id, admin(None), reason="x")
        assert short.decision(deferred.order_id).state is DecisionState.DEFERRED
        assert short.account().exposure == Decimal("0.00")

    def test_an_order_that_is_not_deferred_is_refused(self, short: Desk) -> None:
        approved = short.decide("10.00")
        with pytest.raises(NotDeferred, match="not deferred"):
            release(short, approved.order_id, admin(), reason="x")

    def test_never_approves_on_an_unknown_balance(self, short: Desk, clock: FakeClock) -> None:
        short.balances.fail_with("SERVICE_UNAVAILABLE")
        clock.advance(1801)  # the stored balance is too old to use, and the upstream fails
        deferred = defer(short, "10.00")
        assert deferred.reasons[0].reason == "BALANCE_UNAVAILABLE"
        with pytest.raises(ReleaseRefused, match="no usable balance"):
            release(short, deferred.order_id, admin(), reason="x")
        assert short.decision(deferred.order_id).hold is None

    def test_another_customers_order_is_not_found(self, short: Desk) -> None:
        deferred = defer(short)
        with pytest.raises(UnknownOrder):
            release(short, deferred.order_id, admin(customers=frozenset({OTHER_CUSTOMER})), reason="x")


class TestRejectAndRecheck:
    def test_reject_blocks_with_the_reason_recorded(self, short: Desk) -> None:
        deferred = defer(short)
        rejected = reject(short, deferred.order_id, admin(), reason="customer on watch list")
        assert (rejected.outcome, rejected.state, rejected.hold) == (
            Outcome.BLOCK,
            DecisionState.DECIDED,
            None,
        )
        assert rejected.reviews[-1]["action"] == "reject"
        assert events(short, "decision.rejected")[0]["reason"] == "customer on watch list"
        with pytest.raises(NotDeferred):
            reject(short, deferred.order_id, admin(), reason="again")

    def test_recheck_is_recorded_with_who_and_the_facts(self, short: Desk, clock: FakeClock) -> None:
        deferred = defer(short)
        rechecked = recheck(short, deferred.order_id, admin(), reason="looking again")
        assert rechecked.state is DecisionState.DEFERRED
        entry = rechecked.reviews[-1]
        assert (entry["action"], entry["by"], entry["outcome_after"]) == ("recheck", "credit-lead", "defer")
        assert entry["facts"]["order.amount"] == "1200.00"

    def test_batch_recheck_counts_by_new_outcome(self, short: Desk, clock: FakeClock) -> None:
        defer(short)
        clock.advance(1)  # the queue is oldest first: make "first" unambiguous (ids break ties at random)
        defer(short, "1300.00")
        short.balances.set_balance(CUSTOMER, "GA10", "1250.00")
        clock.advance(301)
        result = recheck_queue(
            QueueFilter(customer_code=CUSTOMER),
            reason="morning sweep",
            key=admin(),
            actor=key_actor(admin()),
            uow=short.uow,
            balances=short.balances,
        )
        assert result.by_outcome == {"approve": 1, "defer": 1}
        assert (result.rechecked, result.more) == (2, False)


class TestQueueOnNewBalance:
    def test_a_higher_balance_approves_the_queue_oldest_first_until_the_money_runs_out(
        self, short: Desk, clock: FakeClock
    ) -> None:
        orders = []
        for _ in range(4):
            orders.append(defer(short))
            clock.advance(1)
        short.balances.set_balance(CUSTOMER, "GA10", "3700.00")  # three orders of 1,200.00 fit, not four
        clock.advance(301)
        refresh_balances(CUSTOMER, scope=None, uow=short.uow, balances=short.balances, clock=clock)
        after = [short.decision(o.order_id) for o in orders]
        assert [d.outcome for d in after] == [Outcome.APPROVE] * 3 + [Outcome.DEFER]
        assert after[3].state is DecisionState.DEFERRED
        assert short.account().exposure == Decimal("3600.00")
        assert all(d.hold is not None and d.hold.amount == Decimal("1200.00") for d in after[:3])

    def test_a_decision_that_adopts_a_newer_balance_serves_the_queue_first(
        self, short: Desk, clock: FakeClock
    ) -> None:
        waiting = defer(short)
        short.new_balance("1500.00")
        newcomer = short.decide("300.00")
        assert short.decision(waiting.order_id).outcome is Outcome.APPROVE
        assert newcomer.outcome is Outcome.APPROVE  # 1,500.00 - 1,200.00 = 300.00 left for it
        assert newcomer.exposure == Decimal("1200.00")

    def test_an_expired_deferral_is_blocked_with_an_event(self, short: Desk, clock: FakeClock) -> None:
        deferred = defer(short)
        clock.advance(86400 * 30)
        sweep(uow=short.uow)
        assert short.decision(deferred.order_id).state is DecisionState.EXPIRED
        assert events(short, "decision.expired")[0]["order_id"] == deferred.order_id
        assert events(short, "decision.deferred")[0]["order_id"] == deferred.order_id
