"""Assessing one order against one account: rules decide, the fail-closed guard has the last word."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from adapters.fake.unit_of_work import FakeUnitOfWork
from creditctl.domain.account import AccountStatus, CreditAccount
from creditctl.domain.assessment import FAIL_CLOSED, assess, effective_params
from creditctl.domain.balance import BalanceSnapshot
from creditctl.domain.decision import Decision, DecisionState, Order, Reason
from creditctl.domain.hold import HoldStatus
from creditctl.services.outcome import apply_outcome
from rules import Outcome, RuleSet, default_rule_set_document, parse_rule_set

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
UPSTREAM = Reason(rule="upstream", reason="UPSTREAM_TIMEOUT", message="the balance service did not answer")


def default_rules() -> RuleSet:
    return parse_rule_set(default_rule_set_document())


def rules_without(*rule_ids: str, **changes: Any) -> RuleSet:
    document = default_rule_set_document()
    document["rules"] = [r for r in document["rules"] if r["id"] not in rule_ids]
    document.update(changes)
    return parse_rule_set(document)


def account(
    balance: str | None = "1000.00",
    *,
    age_s: int = 0,
    exposure: str = "0.00",
    params: dict[str, str] | None = None,
    status: AccountStatus = AccountStatus.ACTIVE,
    frozen_by: str | None = None,
) -> CreditAccount:
    snapshot = None
    if balance is not None:
        snapshot = BalanceSnapshot(Decimal(balance), NOW - timedelta(seconds=age_s), "fake")
    return CreditAccount(
        id=1,
        customer_code="8800000001",
        sale_group_code="GA10",
        exposure=Decimal(exposure),
        snapshot=snapshot,
        params=params or {},
        status=status,
        frozen_by=frozen_by,
        frozen_reason="X" if frozen_by else None,
        created_at=NOW - timedelta(days=3),
    )


def order(amount: str = "100.00") -> Order:
    return Order(order_id="PO-1", customer_code="8800000001", sale_group_code="GA10", amount=Decimal(amount))


def reasons(result: Any) -> list[str]:
    return [r.reason for r in result.reasons]


class TestApprove:
    def test_approves_what_fits_and_notifies_when_money_runs_low(self) -> None:
        result = assess(order("100.00"), account("1000.00"), default_rules(), NOW)
        assert result.outcome is Outcome.APPROVE
        assert reasons(result) == ["BALANCE_LOW"]
        assert result.actions == ("notify:balance.low",)
        assert result.available == Decimal("1000.00")
        assert result.shortfall is None

    def test_approves_without_reasons_when_plenty_is_left(self) -> None:
        result = assess(order("100.00"), account("50000.00"), default_rules(), NOW)
        assert result.outcome is Outcome.APPROVE
        assert result.reasons == ()
        assert result.actions == ()

    def test_available_is_balance_minus_exposure_minus_safety_margin(self) -> None:
        acc = account("1000.00", exposure="300.00", params={"safety_margin": "50.00"})
        result = assess(order("10.00"), acc, default_rules(), NOW)
        assert result.available == Decimal("650.00")
        assert result.facts["exposure"] == Decimal("300.00")


class TestFailClosed:
    @pytest.mark.parametrize(
        "acc",
        [account(balance=None), account("1000000.00", age_s=1801)],
        ids=["missing balance", "balance older than max_balance_age_s"],
    )
    def test_never_approves_on_an_unusable_balance_even_without_the_stale_rule(
        self, acc: CreditAccount
    ) -> None:
        rules = rules_without("stale")
        assert "stale" not in [r.id for r in rules.rules]
        result = assess(order("1.00"), acc, rules, NOW)
        assert result.outcome is Outcome.DEFER
        assert FAIL_CLOSED in result.reasons
        assert result.actions == ()
        assert result.available is None
        assert result.facts["balance.amount"] is None

    def test_never_approves_on_an_unusable_balance_with_no_rules_at_all(self) -> None:
        rules = rules_without(*[r["id"] for r in default_rule_set_document()["rules"]])
        result = assess(order("1.00"), account(balance=None), rules, NOW)
        assert result.outcome is Outcome.DEFER
        assert result.reasons == (FAIL_CLOSED,)

    def test_the_default_stale_rule_defers_with_balance_unavailable(self) -> None:
        result = assess(order("1.00"), account(balance=None), default_rules(), NOW)
        assert result.outcome is Outcome.DEFER
        assert reasons(result) == ["BALANCE_UNAVAILABLE"]
        assert result.reasons[0].rule == "stale"

    def test_a_balance_exactly_max_balance_age_s_old_is_still_usable(self) -> None:
        result = assess(order("1.00"), account("1000.00", age_s=1800), default_rules(), NOW)
        assert result.outcome is Outcome.APPROVE
        assert result.facts["balance.age_s"] == 1800

    def test_the_upstream_error_is_reported_when_there_is_no_usable_balance(self) -> None:
        result = assess(order(), account(balance=None), default_rules(), NOW, upstream_error=UPSTREAM)
        assert result.outcome is Outcome.DEFER
        assert result.reasons[-1] == UPSTREAM

    def test_the_upstream_error_is_not_reported_when_the_stored_balance_is_usable(self) -> None:
        result = assess(order(), account("1000.00", age_s=600), default_rules(), NOW, upstream_error=UPSTREAM)
        assert result.outcome is Outcome.APPROVE
        assert UPSTREAM not in result.reasons

    def test_a_per_account_max_balance_age_override_is_honoured(self) -> None:
        acc = account("1000.00", age_s=120, params={"max_balance_age_s": "60"})
        result = assess(order(), acc, rules_without("stale"), NOW)
        assert result.outcome is Outcome.DEFER
        assert FAIL_CLOSED in result.reasons


class TestShortfall:
    def test_defers_a_short_order_within_the_credit_line_with_the_missing_amount(self) -> None:
        acc = account("1000.00", exposure="200.00", params={"base_credit_limit": "500.00"})
        result = assess(order("950.00"), acc, default_rules(), NOW)
        assert result.outcome is Outcome.DEFER
        assert reasons(result) == ["INSUFFICIENT_BALANCE"]
        assert result.shortfall == Decimal("150.00")
        assert result.credit_limit == Decimal("500.00")

    def test_blocks_beyond_the_credit_line_with_the_missing_amount(self) -> None:
        result = assess(order("1200.00"), account("1000.00"), default_rules(), NOW)
        assert result.outcome is Outcome.BLOCK
        assert reasons(result) == ["CREDIT_LIMIT_EXCEEDED"]
        assert result.shortfall == Decimal("200.00")

    def test_manual_review_has_no_shortfall(self) -> None:
        result = assess(order("600000.00"), account("1000000.00"), default_rules(), NOW)
        assert result.outcome is Outcome.DEFER
        assert reasons(result) == ["MANUAL_REVIEW"]
        assert result.shortfall is None

    def test_stale_balance_has_no_shortfall(self) -> None:
        result = assess(order("100.00"), account(balance=None), default_rules(), NOW)
        assert result.shortfall is None

    def test_frozen_account_with_enough_money_has_no_shortfall(self) -> None:
        acc = account("1000.00", status=AccountStatus.FROZEN, frozen_by="admin:ops")
        result = assess(order("100.00"), acc, default_rules(), NOW)
        assert result.outcome is Outcome.BLOCK
        assert reasons(result)[0] == "ACCOUNT_FROZEN"
        assert result.actions == ()  # every match is reported, but only an approval notifies
        assert result.shortfall is None

    def test_a_freeze_is_not_a_want_of_money(self) -> None:
        result = assess(order("100.00"), account("0.00"), default_rules(), NOW)
        assert result.outcome is Outcome.FREEZE
        assert "BALANCE_DEPLETED" in reasons(result)
        assert result.shortfall is None


class TestAutoUnfreeze:
    UNFREEZE_WHEN_FUNDED = {"fact": "balance.amount", "op": "gt", "value": 0}

    def test_lifts_a_freeze_the_rules_made_when_the_condition_holds(self) -> None:
        rules = rules_without(auto_unfreeze=self.UNFREEZE_WHEN_FUNDED)
        acc = account("1000.00", status=AccountStatus.FROZEN, frozen_by="rule:depleted")
        result = assess(order("100.00"), acc, rules, NOW)
        assert result.unfrozen is True
        assert result.outcome is Outcome.APPROVE

    def test_keeps_an_administrators_freeze(self) -> None:
        rules = rules_without(auto_unfreeze=self.UNFREEZE_WHEN_FUNDED)
        acc = account("1000.00", status=AccountStatus.FROZEN, frozen_by="admin:ops")
        result = assess(order("100.00"), acc, rules, NOW)
        assert result.unfrozen is False
        assert result.outcome is Outcome.BLOCK


def decision_for(acc: CreditAccount, result: Any, amount: str = "100.00") -> Decision:
    return Decision(
        id="d-1",
        order=order(amount),
        account_id=acc.id,
        fingerprint=order(amount).fingerprint(),
        outcome=result.outcome,
        reasons=result.reasons,
        actions=result.actions,
        balance=acc.snapshot,
        exposure=acc.exposure,
        available=result.available,
        credit_limit=result.credit_limit,
        credit_grade=result.credit_grade,
        shortfall=result.shortfall,
        rule_set_id=1,
        rule_set_version=1,
        decided_at=NOW,
        state=DecisionState.DECIDED,
    )


def apply_in_work(*args: Any) -> None:
    """apply_outcome inside a unit of work (it records freezes and events in the caller's transaction)."""
    with FakeUnitOfWork() as work:
        apply_outcome(work, *args)


class TestApplyOutcome:
    def test_freeze_sets_the_account_state(self) -> None:
        rules = default_rules()
        acc = account("0.00")
        result = assess(order(), acc, rules, NOW)
        decision = decision_for(acc, result)
        apply_in_work(decision, acc, result, effective_params(rules, acc), NOW)
        assert acc.status is AccountStatus.FROZEN
        assert acc.frozen_reason == "BALANCE_DEPLETED"
        assert acc.frozen_by == "rule:depleted"
        assert acc.frozen_at == NOW
        assert decision.hold is None

    def test_freeze_keeps_the_first_freeze_of_a_frozen_account(self) -> None:
        rules = default_rules()
        acc = account("0.00", status=AccountStatus.FROZEN, frozen_by="admin:ops")
        result = assess(order(), acc, rules, NOW)
        apply_in_work(decision_for(acc, result), acc, result, effective_params(rules, acc), NOW)
        assert acc.frozen_by == "admin:ops"

    def test_approve_reserves_the_amount_with_a_hold(self) -> None:
        rules = default_rules()
        acc = account("1000.00", exposure="100.00")
        result = assess(order("250.00"), acc, rules, NOW)
        decision = decision_for(acc, result, "250.00")
        apply_in_work(decision, acc, result, effective_params(rules, acc), NOW)
        assert decision.hold is not None
        assert decision.hold.amount == Decimal("250.00")
        assert decision.hold.status is HoldStatus.OPEN
        assert decision.hold.counting is True
        assert decision.hold.expires_at == NOW + timedelta(seconds=604800)
        assert acc.exposure == Decimal("350.00")

    @pytest.mark.parametrize("amount", ["1200.00", "600000.00"])
    def test_no_hold_for_anything_but_approve(self, amount: str) -> None:
        rules = default_rules()
        acc = account("1000.00")
        result = assess(order(amount), acc, rules, NOW)
        decision = decision_for(acc, result, amount)
        apply_in_work(decision, acc, result, effective_params(rules, acc), NOW)
        assert decision.hold is None
        assert acc.exposure == Decimal("0.00")
        assert acc.status is AccountStatus.ACTIVE
