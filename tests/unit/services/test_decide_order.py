"""decide_order: approve and reserve, defer, block, freeze; fail closed; idempotent by order id."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest

from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.fake.clock import FakeClock
from adapters.fake.unit_of_work import FakeStore, FakeUnitOfWork, _Holds
from adapters.sql.account_queue import AccountQueue
from creditctl.domain.account import AccountStatus
from creditctl.domain.decision import DecisionState, Order, Reason
from creditctl.domain.errors import OrderIdReused, UnknownAccount, UnknownCustomer, UpstreamUnavailable
from creditctl.domain.hold import Hold, HoldStatus
from creditctl.services.customers import register_customer
from creditctl.services.decide_order import DecisionResult, decide_order
from rules import Outcome
from tests.first_commit import before_the_first_commit
from tests.random_refs import random_order_id
from tests.unit.services.conftest import CUSTOMER, GROUP, OTHER_CUSTOMER, RICH_GROUP, Desk

pytestmark = pytest.mark.unit


def reason_codes(decision) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.reason for r in decision.reasons]


class TestApprove:
    def test_approves_what_fits_creating_a_hold_and_raising_exposure(
        self, desk: Desk, clock: FakeClock
    ) -> None:
        decision = desk.decide("100.00", group=RICH_GROUP)
        assert decision.outcome is Outcome.APPROVE
        assert decision.state is DecisionState.DECIDED
        assert decision.reasons == ()
        assert decision.hold is not None
        assert decision.hold.amount == Decimal("100.00")
        assert decision.hold.status is HoldStatus.OPEN
        assert decision.hold.expires_at == clock.now() + timedelta(seconds=604800)
        assert decision.available == Decimal("100000.00")
        assert decision.shortfall is None
        assert decision.deferral_expires_at is None
        assert desk.account(group=RICH_GROUP).exposure == Decimal("100.00")
        assert desk.decision(decision.order_id).hold == decision.hold

    def test_records_the_rule_set_and_balance_it_decided_on(self, desk: Desk, clock: FakeClock) -> None:
        decision = desk.decide("1.00")
        assert (decision.rule_set_id, decision.rule_set_version) == (1, 1)
        assert decision.balance is not None
        assert decision.balance.amount == Decimal("1000.00")
        assert decision.decided_at == clock.now()
        assert decision.facts["order.amount"] == Decimal("1.00")

    def test_queues_a_low_balance_notification_with_the_approval(self, desk: Desk, store: FakeStore) -> None:
        decision = desk.decide("100.00")
        assert decision.outcome is Outcome.APPROVE
        assert reason_codes(decision) == ["BALANCE_LOW"]
        [event] = store.state.outbox
        assert event["topic"] == "balance.low"
        assert event["payload"]["order_id"] == decision.order_id
        assert event["payload"]["available"] == "1000.00"

    def test_later_orders_see_the_exposure_of_earlier_ones(self, desk: Desk) -> None:
        for _ in range(10):
            assert desk.decide("100.00").outcome is Outcome.APPROVE
        last = desk.decide("0.01")
        assert last.outcome is Outcome.BLOCK
        assert last.available == Decimal("0.00")
        assert desk.account().exposure == Decimal("1000.00")

    def test_opens_the_account_on_the_first_order_of_a_known_customer(
        self, desk: Desk, balances: FakeBalanceProvider, clock: FakeClock
    ) -> None:
        balances.set_balance("8800000003", "GC30", "70.00")
        register_customer("8800000003", uow=desk.uow, clock=clock)
        decision = desk.decide("20.00", customer="8800000003", group="GC30")
        assert decision.outcome is Outcome.APPROVE
        assert desk.account("8800000003", "GC30").exposure == Decimal("20.00")


class TestDefer:
    def test_defers_when_balance_is_short_but_within_the_credit_line(
        self, desk: Desk, clock: FakeClock
    ) -> None:
        desk.set_params(base_credit_limit="500.00")
        decision = desk.decide("1200.00")
        assert decision.outcome is Outcome.DEFER
        assert decision.state is DecisionState.DEFERRED
        assert reason_codes(decision) == ["INSUFFICIENT_BALANCE"]
        assert decision.shortfall == Decimal("200.00")
        assert decision.credit_limit == Decimal("500.00")
        assert decision.deferral_expires_at == clock.now() + timedelta(seconds=86400)
        assert decision.hold is None
        assert desk.account().exposure == Decimal("0.00")

    def test_shortfall_counts_what_is_already_held(self, desk: Desk) -> None:
        desk.set_params(base_credit_limit="500.00")
        desk.decide("700.00")
        decision = desk.decide("400.00")
        assert decision.outcome is Outcome.DEFER
        assert decision.shortfall == Decimal("100.00")

    def test_defers_a_large_order_for_manual_review_without_a_shortfall(self, desk: Desk) -> None:
        desk.balances.set_balance(CUSTOMER, RICH_GROUP, "900000.00")
        desk.clock.advance(301)
        decision = desk.decide("600000.00", group=RICH_GROUP)
        assert decision.outcome is Outcome.DEFER
        assert reason_codes(decision) == ["MANUAL_REVIEW"]
        assert decision.shortfall is None


class TestBlock:
    def test_blocks_over_the_credit_limit_with_the_missing_amount(self, desk: Desk) -> None:
        desk.set_params(base_credit_limit="500.00")
        decision = desk.decide("1600.00")
        assert decision.outcome is Outcome.BLOCK
        assert decision.state is DecisionState.DECIDED
        assert reason_codes(decision) == ["CREDIT_LIMIT_EXCEEDED"]
        assert decision.shortfall == Decimal("600.00")
        assert decision.hold is None
        assert decision.deferral_expires_at is None

    def test_blocks_anything_beyond_available_without_a_credit_line(self, desk: Desk) -> None:
        decision = desk.decide("1000.01")
        assert decision.outcome is Outcome.BLOCK
        assert decision.shortfall == Decimal("0.01")


class TestFreeze:
    def test_freezes_a_depleted_account_and_blocks_the_next_order_on_it(self, desk: Desk) -> None:
        desk.new_balance("0.00")
        first = desk.decide("10.00")
        assert first.outcome is Outcome.FREEZE
        assert reason_codes(first)[0] == "BALANCE_DEPLETED"
        assert first.hold is None
        account = desk.account()
        assert account.status is AccountStatus.FROZEN
        assert (account.frozen_reason, account.frozen_by) == ("BALANCE_DEPLETED", "rule:depleted")

        desk.new_balance("5000.00")  # money arrives, but a freeze stays until someone lifts it
        second = desk.decide("10.00")
        assert second.outcome is Outcome.BLOCK
        assert reason_codes(second)[0] == "ACCOUNT_FROZEN"
        assert second.hold is None
        assert desk.account().exposure == Decimal("0.00")

    def test_an_order_on_a_still_depleted_frozen_account_is_not_approved(self, desk: Desk) -> None:
        desk.new_balance("0.00")
        desk.decide("10.00")
        again = desk.decide("10.00")
        assert again.outcome in (Outcome.BLOCK, Outcome.FREEZE)
        assert "ACCOUNT_FROZEN" in reason_codes(again)
        assert again.hold is None

    def test_freezing_one_account_leaves_the_customers_other_accounts_alone(self, desk: Desk) -> None:
        desk.new_balance("0.00")
        desk.decide("10.00")
        assert desk.decide("10.00", group=RICH_GROUP).outcome is Outcome.APPROVE


class TestBalanceFreshness:
    def test_uses_a_young_snapshot_without_asking_the_upstream(
        self, desk: Desk, balances: FakeBalanceProvider, clock: FakeClock
    ) -> None:
        calls = len(balances.calls)
        clock.advance(299)
        desk.decide("1.00")
        assert len(balances.calls) == calls

    def test_a_snapshot_less_than_refresh_after_s_old_is_not_refetched_though_its_age_rounds_up_to_it(
        self, desk: Desk, balances: FakeBalanceProvider, clock: FakeClock
    ) -> None:
        """299.5 s old is "300 s old" to a rule (ages round up), but not older than refresh_after_s (300):
        refreshing it would fetch every 299 s, two calls in some 300 s windows."""
        calls = len(balances.calls)
        clock.advance(299.5)
        desk.decide("1.00")
        assert len(balances.calls) == calls

    def test_refetches_a_snapshot_older_than_refresh_after_s(
        self, desk: Desk, balances: FakeBalanceProvider, clock: FakeClock
    ) -> None:
        calls = len(balances.calls)
        balances.set_balance(CUSTOMER, GROUP, "50.00")
        clock.advance(300)
        decision = desk.decide("100.00")
        assert len(balances.calls) == calls + 1
        assert decision.balance is not None
        assert decision.balance.amount == Decimal("50.00")
        assert decision.balance.fetched_at == clock.now()
        assert decision.outcome is Outcome.BLOCK
        assert desk.account().snapshot == decision.balance

    def test_refetches_a_snapshot_too_old_to_rely_on_even_when_refresh_after_s_is_longer(
        self, desk: Desk, balances: FakeBalanceProvider, clock: FakeClock
    ) -> None:
        """max_balance_age_s 60 under refresh_after_s 1800 (each within its bounds): a snapshot 61 s old is
        fetched again, not relied on nor left to defer every order for half an hour."""
        desk.set_params(max_balance_age_s="60", refresh_after_s="1800")
        calls = len(balances.calls)
        clock.advance(61)
        decision = desk.decide("1.00")
        assert len(balances.calls) == calls + 1
        assert decision.outcome is Outcome.APPROVE

    def test_falls_back_to_a_snapshot_younger_than_max_balance_age_when_the_fetch_fails(
        self, desk: Desk, balances: FakeBalanceProvider, clock: FakeClock
    ) -> None:
        stored = desk.account().snapshot
        balances.fail_with("SERVICE_UNAVAILABLE")
        clock.advance(1800)
        calls = len(balances.calls)
        decision = desk.decide("100.00")
        assert len(balances.calls) == calls + 1  # it did ask
        assert decision.outcome is Outcome.APPROVE
        assert decision.balance == stored
        assert "SERVICE_UNAVAILABLE" not in reason_codes(decision)

    def test_defers_with_balance_unavailable_and_the_providers_code_when_no_snapshot_is_usable(
        self, desk: Desk, balances: FakeBalanceProvider, clock: FakeClock
    ) -> None:
        balances.fail_with("UPSTREAM_TIMEOUT")
        clock.advance(1801)
        decision = desk.decide("1.00")
        assert decision.outcome is Outcome.DEFER
        assert decision.state is DecisionState.DEFERRED
        assert reason_codes(decision)[0] == "BALANCE_UNAVAILABLE"
        assert Reason("upstream", "UPSTREAM_TIMEOUT", "the balance service did not answer in time") in (
            decision.reasons
        )
        assert decision.available is None
        assert decision.shortfall is None
        assert decision.hold is None

    def test_an_unknown_provider_code_gets_a_generic_message(
        self, desk: Desk, balances: FakeBalanceProvider, clock: FakeClock
    ) -> None:
        balances.fail_with("AUTH_FAILED")
        clock.advance(1801)
        decision = desk.decide("1.00")
        upstream = [r for r in decision.reasons if r.rule == "upstream"]
        assert upstream == [Reason("upstream", "AUTH_FAILED", "the balance service could not give a balance")]


class TestUnknownParties:
    def test_refuses_an_unknown_customer_and_writes_nothing(self, desk: Desk, store: FakeStore) -> None:
        commits = store.commits
        with pytest.raises(UnknownCustomer, match="unknown customer '9999999999'"):
            desk.decide("1.00", customer="9999999999")
        assert store.commits == commits
        assert store.state.decisions == {}

    def test_a_customer_the_provider_names_is_known_on_its_first_order_without_registration(
        self, desk: Desk, balances: FakeBalanceProvider, store: FakeStore
    ) -> None:
        balances.set_balance("8800000009", "GA10", "500.00")
        assert "8800000009" not in store.state.customers
        decided = desk.decide("100.00", customer="8800000009")
        assert decided.outcome is Outcome.APPROVE
        assert "8800000009" in store.state.customers

    def test_refuses_an_unknown_sale_group_and_writes_nothing(self, desk: Desk, store: FakeStore) -> None:
        commits = store.commits
        with pytest.raises(
            UnknownAccount, match="customer '8800000001' has no payer account in sales group 'ZZ99'"
        ):
            desk.decide("1.00", group="ZZ99")
        assert store.commits == commits
        assert (CUSTOMER, "ZZ99") not in store.state.accounts

    def test_an_unknown_sale_group_is_answered_from_the_young_stored_report_without_upstream_calls(
        self, desk: Desk, balances: FakeBalanceProvider
    ) -> None:
        calls = len(balances.calls)
        for _ in range(5):
            with pytest.raises(UnknownAccount):
                desk.decide("1.00", group="ZZ99")
        assert len(balances.calls) == calls

    def test_an_unknown_sale_group_asks_the_upstream_once_the_stored_report_is_stale(
        self, desk: Desk, balances: FakeBalanceProvider, clock: FakeClock
    ) -> None:
        clock.advance(301)  # past refresh_after_s: Haier may have opened the account since
        calls = len(balances.calls)
        with pytest.raises(UnknownAccount):
            desk.decide("1.00", group="ZZ99")
        assert len(balances.calls) == calls + 1

    def test_cannot_open_an_account_while_the_upstream_is_down(
        self, desk: Desk, balances: FakeBalanceProvider, store: FakeStore, clock: FakeClock
    ) -> None:
        clock.advance(301)
        balances.fail_with("CIRCUIT_OPEN")
        commits = store.commits
        with pytest.raises(UpstreamUnavailable, match="cannot verify sales group 'ZZ99'"):
            desk.decide("1.00", group="ZZ99")
        assert store.commits == commits

    def test_a_key_limited_to_another_customer_gets_unknown_customer_and_nothing_is_written(
        self, desk: Desk, store: FakeStore, balances: FakeBalanceProvider
    ) -> None:
        commits, calls = store.commits, len(balances.calls)
        with pytest.raises(UnknownCustomer, match="unknown customer '8800000001'"):
            desk.decide("1.00", scope=frozenset({OTHER_CUSTOMER}))
        assert store.commits == commits
        assert len(balances.calls) == calls  # not even the upstream hears of it
        assert store.state.decisions == {}

    def test_a_key_limited_to_the_customer_may_decide(self, desk: Desk) -> None:
        assert desk.decide("1.00", scope=frozenset({CUSTOMER})).outcome is Outcome.APPROVE


class TestEveryNamedPayerAccount:
    """The provider's answer names every payer account of the customer; what it named most recently is
    kept, and an order in any group it named is decided, not refused, without asking the upstream again."""

    NEW = "8800000003"  # GC30 and GD40 at the provider, registered, no order yet

    @pytest.fixture
    def named(self, desk: Desk, balances: FakeBalanceProvider, clock: FakeClock) -> Desk:
        balances.set_balance(self.NEW, "GC30", "700.00")
        balances.set_balance(self.NEW, "GD40", "900.00")
        register_customer(self.NEW, uow=desk.uow, clock=clock)
        return desk

    def test_an_order_in_another_group_the_answer_named_is_decided_on_it_without_asking_again(
        self, named: Desk, balances: FakeBalanceProvider, clock: FakeClock, store: FakeStore
    ) -> None:
        first = named.decide("100.00", customer=self.NEW, group="GC30")
        asked_at, calls = clock.now(), len(balances.calls)
        clock.advance(10)
        second = named.decide("100.00", customer=self.NEW, group="GD40")  # was 404 for refresh_after_s
        assert (first.outcome, second.outcome) == (Outcome.APPROVE, Outcome.APPROVE)
        assert len(balances.calls) == calls  # decided on the answer the first order brought
        assert second.balance is not None
        assert (second.balance.amount, second.balance.fetched_at) == (Decimal("900.00"), asked_at)
        assert named.account(self.NEW, "GD40").exposure == Decimal("100.00")
        assert store.state.balance_history[-1][1] == second.balance  # adopted as the first decision would

    def test_a_group_the_kept_answer_does_not_name_is_unknown_without_asking_again(
        self, named: Desk, balances: FakeBalanceProvider, store: FakeStore
    ) -> None:
        named.decide("100.00", customer=self.NEW, group="GC30")
        balances.set_balance(self.NEW, "GE50", "900.00")  # opened at Haier after the answer
        calls, commits = len(balances.calls), store.commits
        with pytest.raises(UnknownAccount, match="no payer account in sales group 'GE50'"):
            named.decide("100.00", customer=self.NEW, group="GE50")
        assert (len(balances.calls), store.commits) == (calls, commits)
        assert (self.NEW, "GE50") not in store.state.accounts

    def test_once_the_kept_answer_is_older_than_refresh_after_s_the_upstream_is_asked(
        self, named: Desk, balances: FakeBalanceProvider, clock: FakeClock
    ) -> None:
        named.decide("100.00", customer=self.NEW, group="GC30")
        balances.set_balance(self.NEW, "GE50", "900.00")
        clock.advance(300)
        calls = len(balances.calls)
        assert named.decide("100.00", customer=self.NEW, group="GE50").outcome is Outcome.APPROVE
        assert len(balances.calls) == calls + 1

    def test_a_refused_group_s_answer_is_kept_too(
        self, named: Desk, balances: FakeBalanceProvider, clock: FakeClock
    ) -> None:
        with pytest.raises(UnknownAccount):
            named.decide("100.00", customer=self.NEW, group="ZZ99")  # asks: nothing kept yet
        calls = len(balances.calls)
        assert named.decide("100.00", customer=self.NEW, group="GD40").outcome is Outcome.APPROVE
        assert len(balances.calls) == calls

    def test_a_young_answer_that_names_the_group_is_never_approved_past_its_balance(
        self, named: Desk, balances: FakeBalanceProvider
    ) -> None:
        named.decide("100.00", customer=self.NEW, group="GC30")
        balances.set_balance(self.NEW, "GD40", "5000.00")  # not asked again: the kept answer says 900.00
        decision = named.decide("1000.00", customer=self.NEW, group="GD40")
        assert decision.outcome is Outcome.BLOCK
        assert decision.shortfall == Decimal("100.00")

    def test_a_replay_of_an_order_decided_on_the_kept_answer_is_the_first_decision(
        self, named: Desk, store: FakeStore
    ) -> None:
        named.decide("100.00", customer=self.NEW, group="GC30")
        order = named.order("100.00", customer=self.NEW, group="GD40")
        first, again = named.decide_result(order), named.decide_result(order)
        assert (first.created, again.created, again.decision.id) == (True, False, first.decision.id)
        assert len([h for h in store.state.holds.values() if h.order_id == order.order_id]) == 1


class TestIdempotency:
    def test_a_replay_returns_the_original_decision_and_reserves_nothing_more(
        self, desk: Desk, store: FakeStore
    ) -> None:
        order = desk.order("100.00", order_id=random_order_id("replay"))
        first = desk.decide_result(order)
        desk.new_balance("1.00")  # even a changed world does not change a replay
        again = desk.decide_result(order)
        assert (first.created, again.created) == (True, False)
        assert again.decision.id == first.decision.id
        assert again.decision.outcome is Outcome.APPROVE
        assert again.decision.hold == first.decision.hold
        assert len(store.state.holds) == 1
        assert desk.account().exposure == Decimal("100.00")

    def test_the_same_order_id_with_another_body_is_a_conflict_that_changes_nothing(
        self, desk: Desk, store: FakeStore
    ) -> None:
        order_id = random_order_id("reuse")
        desk.decide("100.00", order_id=order_id)
        commits = store.commits
        with pytest.raises(
            OrderIdReused, match=f"order '{order_id}' was already decided with a different body"
        ):
            desk.decide("101.00", order_id=order_id)
        assert store.commits == commits
        assert desk.decision(order_id).order.amount == Decimal("100.00")
        assert desk.account().exposure == Decimal("100.00")

    def test_a_replay_of_a_deferred_order_is_still_deferred(self, desk: Desk) -> None:
        desk.set_params(base_credit_limit="500.00")
        order = desk.order("1200.00")
        first = desk.decide_result(order)
        again = desk.decide_result(order)
        assert again.created is False
        assert again.decision.outcome is Outcome.DEFER
        assert again.decision.id == first.decision.id


class TestDecidedTogether:
    """Orders for one account waiting behind its turn are decided by the holder, in its transaction."""

    @staticmethod
    def _behind_a_turn(
        desk: Desk, orders: list[Order], queue: AccountQueue | None = None
    ) -> list[DecisionResult | Exception]:
        """The first order takes the account's turn and opens its unit only once all the others wait
        behind it: it holds the turn, they are taken (or not) by it."""
        queue = AccountQueue() if queue is None else queue
        everyone_waits = threading.Event()
        real_enter = FakeUnitOfWork.__enter__

        def enter(self: FakeUnitOfWork) -> FakeUnitOfWork:
            if threading.current_thread().name.startswith("first"):
                assert everyone_waits.wait(10), "the others never all waited"
            return real_enter(self)

        def decide(order: Order) -> DecisionResult | Exception:
            try:
                return decide_order(order, scope=None, uow=desk.uow, balances=desk.balances, turns=queue)
            except Exception as exc:
                return exc

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(FakeUnitOfWork, "__enter__", enter)
            with ThreadPoolExecutor(1, thread_name_prefix="first") as first, ThreadPoolExecutor(8) as pool:
                futures = [first.submit(decide, orders[0])]
                deadline = time.monotonic() + 10
                while (entry := queue._keys.get((CUSTOMER, GROUP))) is None or not entry.held:
                    assert time.monotonic() < deadline
                    time.sleep(0.002)
                futures += [pool.submit(decide, o) for o in orders[1:]]
                while len(queue._keys[(CUSTOMER, GROUP)].waiting) < len(orders) - 1:
                    assert time.monotonic() < deadline, "the orders never all waited"
                    time.sleep(0.002)
                everyone_waits.set()
                return [f.result(timeout=10) for f in futures]

    def test_each_is_decided_on_the_account_as_the_one_before_left_it_with_one_commit(
        self, desk: Desk, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        commits = []
        real_commit = FakeUnitOfWork.commit
        monkeypatch.setattr(FakeUnitOfWork, "commit", lambda self: (commits.append(1), real_commit(self)))
        results = self._behind_a_turn(desk, [desk.order("300.00") for _ in range(6)])
        assert all(isinstance(r, DecisionResult) and r.created for r in results), results
        held = [r.decision.hold.amount for r in results if isinstance(r, DecisionResult) and r.decision.hold]
        assert 0 < len(held) < 6 and sum(held) <= Decimal("1000.00"), held  # 1,000.00 on the account
        assert desk.account().exposure == sum(held)
        assert len(commits) == 1

    def test_an_order_id_used_before_or_twice_in_the_batch_goes_alone_and_the_rest_together(
        self, desk: Desk, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        used = desk.decide("1.00")
        retried = desk.order("5.00")
        commits = []
        real_commit = FakeUnitOfWork.commit
        monkeypatch.setattr(FakeUnitOfWork, "commit", lambda self: (commits.append(1), real_commit(self)))
        orders = [
            desk.order("2.00"),
            desk.order("3.00", order_id=used.order_id),  # another body: a conflict
            retried,
            desk.order("4.00"),
            retried,  # the same request twice: one made, one a replay of it
        ]
        first, reused, *rest = self._behind_a_turn(desk, orders)
        assert isinstance(reused, OrderIdReused)
        assert isinstance(first, DecisionResult) and first.created
        made = [r for r in rest if isinstance(r, DecisionResult) and r.created]
        replays = [r for r in rest if isinstance(r, DecisionResult) and not r.created]
        assert len(made) == 2 and len(replays) == 1, rest
        assert replays[0].decision.id in {r.decision.id for r in made}
        assert desk.account().exposure == Decimal("12.00")
        # one commit for the three new orders together; the conflict and the replay each tried one alone
        # (refused: their id is used). Had the batch failed on them: one more, and five alone.
        assert len(commits) == 3, commits

    def test_a_batch_that_fails_midway_keeps_nothing_and_each_order_is_then_decided_alone_once(
        self, desk: Desk, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Deciding the second order of the batch raises (a bug, a dead connection): the first one's
        decision, hold and exposure, already written in the transaction, are not kept; every order is
        then decided alone, exactly once, on the books as committed."""
        commits, adds = [], []
        real_commit, real_add = FakeUnitOfWork.commit, _Holds.add

        def failing_add(self: _Holds, hold: Hold) -> None:
            adds.append(hold.id)
            if len(adds) == 2:  # the second hold written: the batch's second order
                raise RuntimeError("the connection died")
            real_add(self, hold)

        monkeypatch.setattr(FakeUnitOfWork, "commit", lambda self: (commits.append(1), real_commit(self)))
        monkeypatch.setattr(_Holds, "add", failing_add)
        orders = [desk.order(amount) for amount in ("1.00", "2.00", "3.00", "4.00")]
        results = self._behind_a_turn(desk, orders)
        assert all(isinstance(r, DecisionResult) and r.created and not r.together for r in results), results
        assert len(commits) == 4  # none for the failed batch, one for each order alone
        state = desk.uow.store.state
        ids = {o.order_id for o in orders}
        decided = [d for (_, order_id), d in state.decisions.items() if order_id in ids]
        assert sorted(d.order.amount for d in decided) == [o.amount for o in orders]
        assert sorted(h.amount for h in state.holds.values()) == sorted(d.order.amount for d in decided)
        assert desk.account().exposure == Decimal("10.00")
        made = [e for e in state.audit_events if e["type"] == "decision.made"]
        assert len(made) == 4, made  # the failed batch's events went with it

    def test_an_order_whose_answer_came_too_late_is_still_answered_as_made_not_as_a_replay(
        self, desk: Desk, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The holder takes it and commits it after the order's caller stopped waiting (wait_s): that
        caller, deciding alone, finds its order's id used, by its own decision."""
        # the first commit: the holder's, of both orders
        before_the_first_commit(monkeypatch, FakeUnitOfWork, lambda _unit: time.sleep(0.6))
        results = self._behind_a_turn(
            desk, [desk.order("2.00"), desk.order("3.00")], AccountQueue(wait_s=0.2)
        )
        assert all(isinstance(r, DecisionResult) and r.created for r in results), results
        assert desk.account().exposure == Decimal("5.00")

    @pytest.mark.parametrize("same_body", [True, False])
    def test_a_holder_whose_own_order_is_a_retry_decides_the_others_together_and_is_answered_alone(
        self, desk: Desk, monkeypatch: pytest.MonkeyPatch, same_body: bool
    ) -> None:
        before = desk.decide("1.00")
        retry = desk.order("1.00" if same_body else "9.00", order_id=before.order_id)
        commits = []
        real_commit = FakeUnitOfWork.commit
        monkeypatch.setattr(FakeUnitOfWork, "commit", lambda self: (commits.append(1), real_commit(self)))
        mine, *others = self._behind_a_turn(desk, [retry, desk.order("2.00"), desk.order("3.00")])
        if same_body:
            assert isinstance(mine, DecisionResult) and not mine.created and mine.decision.id == before.id
        else:
            assert isinstance(mine, OrderIdReused)
        assert all(isinstance(r, DecisionResult) and r.created for r in others), others
        assert len(commits) == 1  # the two new orders, together; the retry needed none
        assert desk.account().exposure == Decimal("6.00")
