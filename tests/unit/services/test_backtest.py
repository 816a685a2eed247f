"""Backtests on the fakes: replays of stored decisions, what they count, how they stream and page."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.fake.backtests import FakeBacktestStore
from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.fake.clock import FakeClock
from adapters.fake.decision_history import FakeDecisionHistory
from adapters.fake.unit_of_work import FakeStore, FakeUnitOfWork
from creditctl.domain.backtest import BacktestRun
from creditctl.domain.errors import InvalidRequest
from creditctl.services.backtest import (
    RunBacktest,
    UnknownBacktest,
    backtest_changes,
    get_backtest,
    iter_backtest_changes,
    run_backtest,
)
from creditctl.services.customers import refresh_balances, register_customer
from creditctl.services.expiry import sweep
from rules import RuleSet, default_rule_set_document, parse_rule_set
from tests.conftest import TEST_BALANCES
from tests.unit.services.conftest import CUSTOMER, GROUP, OTHER_CUSTOMER, RICH_GROUP, Desk

EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def rules_with(**params: Any) -> RuleSet:
    document = default_rule_set_document()
    document["params"] = {**document.get("params", {}), **params}
    return parse_rule_set(document)


def backtest(
    store: FakeStore, rule_set: RuleSet, *, batch_size: int = 1000, period: tuple[datetime, datetime] = EVER
) -> tuple[BacktestRun, FakeBacktestStore, FakeDecisionHistory]:
    history, runs = FakeDecisionHistory(store), FakeBacktestStore()
    cmd = RunBacktest(rule_set=rule_set, start=period[0], end=period[1], requested_by="test")
    run = run_backtest(cmd, history=history, store=runs, batch_size=batch_size)
    return run, runs, history


def active_rules(store: FakeStore) -> RuleSet:
    with FakeUnitOfWork(store) as uow:
        return uow.rule_sets.active().rules


def stored_tally(store: FakeStore) -> tuple[Counter[str], Decimal]:
    """Counts by outcome and money approved, recomputed from the stored decisions themselves."""
    decisions = list(store.state.decisions.values())
    counts = Counter("defer" if d.state.value == "expired" else d.outcome.value for d in decisions)
    approved = sum((d.order.amount for d in decisions if d.outcome.value == "approve"), Decimal("0.00"))
    return counts, approved


def as_counter(counts: dict[str, int]) -> Counter[str]:
    return Counter({k: v for k, v in counts.items() if v})


ACCOUNTS = [(CUSTOMER, GROUP), (CUSTOMER, RICH_GROUP), (OTHER_CUSTOMER, GROUP)]
ORDERS = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=70_000_000),  # fen: up to 700,000.00 (manual review above 500k)
        st.sampled_from(ACCOUNTS),
        st.sampled_from([0, 0, 0, 400, 4000]),  # seconds before the order: stale balances now and then
    ),
    min_size=1,
    max_size=15,
)
# Credit lines per account, set before the orders: overrides are not recorded per decision, so the
# replay uses the current ones (a changed override would rightly show as a change).
LINES = st.lists(st.sampled_from([None, "0.00", "500.00", "200000.00"]), min_size=3, max_size=3)


class TestBacktestOfTheActiveRuleSet:
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(orders=ORDERS, lines=LINES)
    def test_changes_nothing_on_its_own_decisions(self, orders: list[Any], lines: list[str | None]) -> None:
        clock = FakeClock()
        balances = FakeBalanceProvider(
            {k: [dict(e) for e in v] for k, v in TEST_BALANCES.items()}, clock=clock
        )
        store = FakeStore()
        uow = FakeUnitOfWork(store, clock=clock)
        with uow:
            uow.rule_sets.publish("default", default_rule_set_document(), clock.now())
            uow.commit()
        for code in (CUSTOMER, OTHER_CUSTOMER):
            register_customer(code, uow=uow, clock=clock)
            refresh_balances(code, scope=None, uow=uow, balances=balances, clock=clock)
        desk = Desk(uow, balances, clock)
        for (customer, group), line in zip(ACCOUNTS, lines, strict=True):
            if line is not None:
                desk.decide("0.01", customer=customer, group=group)  # opens the account
                desk.set_params(customer, group, base_credit_limit=line)
        for fen, (customer, group), wait in orders:
            clock.advance(wait)
            desk.decide(str(Decimal(fen) / 100), customer=customer, group=group)
        sweep(uow=uow)

        run, runs, _ = backtest(store, active_rules(store), batch_size=7)

        counts, approved = stored_tally(store)
        assert run.changed == 0 and runs.changed[run.id] == []
        assert run.before.counts == run.after.counts
        assert run.before.approved_fen == run.after.approved_fen
        assert as_counter(run.before.counts) == counts
        assert Decimal(run.before.approved_fen) / 100 == approved
        assert run.decisions == len(store.state.decisions)
        assert run.missing_facts == 0


class TestBacktestOfATightenedRuleSet:
    def test_reports_each_order_whose_outcome_changes_with_the_reasons_after(
        self, desk: Desk, store: FakeStore
    ) -> None:
        small = desk.decide("300.00", group=RICH_GROUP)
        big = desk.decide("20000.00", group=RICH_GROUP)
        assert (small.outcome.value, big.outcome.value) == ("approve", "approve")

        run, runs, _ = backtest(store, rules_with(single_order_review_amount="10000.00"))

        [change] = runs.changed[run.id]
        assert (change.order_id, change.customer_code, change.sale_group_code) == (
            big.order_id,
            CUSTOMER,
            RICH_GROUP,
        )
        assert (change.amount, change.before, change.after) == (Decimal("20000.00"), "approve", "defer")
        assert [r.reason for r in change.reasons] == ["MANUAL_REVIEW"]
        assert run.before.counts["approve"] == 2 and run.after.counts == {
            **run.before.counts,
            "approve": 1,
            "defer": 1,
        }
        assert run.before.approved_fen - run.after.approved_fen == 2_000_000

    def test_counts_and_money_agree_with_a_recomputation_from_the_rows(
        self, desk: Desk, store: FakeStore
    ) -> None:
        for amount in ("10.00", "900.00", "1500.00", "50.00", "600000.00"):
            desk.decide(amount)
        for amount in ("10.00", "99000.00", "30000.00"):
            desk.decide(amount, group=RICH_GROUP)
        candidate = rules_with(low_balance_threshold="0.00", single_order_review_amount="25000.00")

        run, runs, _ = backtest(store, candidate, batch_size=3)

        counts, approved = stored_tally(store)
        changed = {c.order_id: c for c in runs.changed[run.id]}
        after = Counter(
            changed[d.order_id].after if d.order_id in changed else d.outcome.value
            for d in store.state.decisions.values()
        )
        approved_after = sum(
            (
                d.order.amount
                for d in store.state.decisions.values()
                if (changed[d.order_id].after if d.order_id in changed else d.outcome.value) == "approve"
            ),
            Decimal("0.00"),
        )
        assert as_counter(run.before.counts) == counts and as_counter(run.after.counts) == after
        assert Decimal(run.before.approved_fen) / 100 == approved
        assert Decimal(run.after.approved_fen) / 100 == approved_after
        assert run.changed == len(changed) > 0

    def test_a_credit_line_in_the_candidate_recomputes_the_credit_limit(
        self, desk: Desk, store: FakeStore
    ) -> None:
        short = desk.decide("1500.00")  # 1000.00 available, no credit line: blocked
        assert short.outcome.value == "block"

        run, runs, _ = backtest(store, rules_with(base_credit_limit="1000.00"))

        [change] = runs.changed[run.id]
        assert (change.order_id, change.before, change.after) == (short.order_id, "block", "defer")
        assert [r.reason for r in change.reasons] == ["INSUFFICIENT_BALANCE"]

    def test_an_expired_deferral_counts_as_the_deferral_it_was(
        self, desk: Desk, store: FakeStore, clock: FakeClock
    ) -> None:
        desk.decide("1.00")
        desk.set_params(base_credit_limit="1000.00")
        short = desk.decide("1500.00")  # beyond available, within the credit line: deferred
        clock.advance(86400 + 1)
        sweep(uow=desk.uow)
        stored = desk.decision(short.order_id)
        assert (stored.outcome.value, stored.state.value) == ("block", "expired")

        run, _, _ = backtest(store, active_rules(store))

        assert run.changed == 0 and run.before.counts["defer"] == 1


class TestMissingFacts:
    def test_counts_decisions_without_a_fact_the_rule_set_reads(self, desk: Desk, store: FakeStore) -> None:
        desk.decide("10.00")
        desk.decide("20.00")
        first = next(iter(store.state.decisions.values()))
        del first.facts["payment.max_overdue_days"]  # recorded before the fact existed

        run, _, _ = backtest(store, active_rules(store))

        assert run.missing_facts == 1
        assert run.missing_by_fact == {"payment.max_overdue_days": 1}
        assert run.changed == 0  # unknown: the overdue rule does not match, as on the live path


class TestStreaming:
    def test_replays_batch_by_batch_writing_changes_as_it_goes(self, desk: Desk, store: FakeStore) -> None:
        for _ in range(7):
            desk.decide("1000.00", group=RICH_GROUP)
        history = FakeDecisionHistory(store)
        runs = FakeBacktestStore()
        served_at_write: list[int] = []
        add = runs.add_changes
        runs.add_changes = lambda run_id, changes: (  # type: ignore[method-assign]
            served_at_write.append(history.served),
            add(run_id, changes),
        )
        cmd = RunBacktest(
            rule_set=rules_with(single_order_review_amount="100.00"),
            start=EVER[0],
            end=EVER[1],
            requested_by="t",
        )

        run = run_backtest(cmd, history=history, store=runs, batch_size=2)

        assert history.batch_sizes == [2, 2, 2, 1]
        assert served_at_write == [2, 4, 6, 7]  # each batch's changes written before the next is read
        assert runs.writes == [2, 2, 2, 1] and run.changed == 7

    def test_only_decisions_of_the_period_are_replayed(
        self, desk: Desk, store: FakeStore, clock: FakeClock
    ) -> None:
        desk.decide("10.00")
        start = clock.advance(60)
        desk.decide("20.00")
        end = clock.advance(60)
        desk.decide("30.00")

        run, _, _ = backtest(store, active_rules(store), period=(start, end))

        assert run.decisions == 1


class TestPagingAndErrors:
    def test_pages_cover_every_change_once_and_are_stable(self, desk: Desk, store: FakeStore) -> None:
        for _ in range(5):
            desk.decide("20000.00", group=RICH_GROUP)
        run, runs, _ = backtest(store, rules_with(single_order_review_amount="100.00"))

        def walk() -> list[list[str]]:
            pages, cursor = [], None
            while True:
                page = backtest_changes(run.id, store=runs, cursor=cursor, limit=2)
                pages.append([c.order_id for c in page.changes])
                if page.next_cursor is None:
                    return pages
                cursor = page.next_cursor

        pages = walk()
        assert [len(p) for p in pages] == [2, 2, 1]
        assert pages == walk()
        assert [c.order_id for c in iter_backtest_changes(run.id, store=runs, page=2)] == [
            oid for page in pages for oid in page
        ]

    def test_refuses_an_empty_period_an_unknown_run_and_a_foreign_cursor(self, store: FakeStore) -> None:
        with pytest.raises(InvalidRequest, match="'from' must be before 'to'"):
            backtest(store, rules_with(), period=(EVER[1], EVER[0]))
        runs = FakeBacktestStore()
        with pytest.raises(UnknownBacktest, match="no backtest 'nope'"):
            get_backtest("nope", store=runs)
        run, runs, _ = backtest(store, rules_with())
        with pytest.raises(InvalidRequest, match="cursor 'abc'"):
            backtest_changes(run.id, store=runs, cursor="abc")
        assert get_backtest(run.id, store=runs).status == "succeeded"
