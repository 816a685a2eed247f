"""The default rule set decides the representative orders the way design.md's table says."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from rules import (
    FACTS,
    KNOWN_PARAMS,
    PARAM_DEFAULTS,
    Outcome,
    RuleSet,
    default_rule_set_document,
    parse_rule_set,
)

pytestmark = pytest.mark.unit

D = Decimal


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return parse_rule_set(default_rule_set_document())


def facts(**changes: Any) -> dict[str, Any]:
    """A healthy account with 50,000.00 available, no credit line, and a 1,000.00 order."""
    base: dict[str, Any] = {
        "order.amount": D("1000.00"),
        "order.sale_group": "SG01",
        "order.channel": "web",
        "balance.amount": D("50000.00"),
        "balance.age_s": 30,
        "exposure": D("0.00"),
        "available": D("50000.00"),
        "credit.limit": D("0.00"),
        "credit.grade": "A",
        "payment.max_overdue_days": 0,
        "payment.on_time_ratio": D("1"),
        "payment.overdue_amount": D("0.00"),
        "account.status": "active",
        "account.age_days": 400,
        "now.hour": 9,
    }
    base.update({name.replace("__", "."): value for name, value in changes.items()})
    return base


def reasons(rules: RuleSet, given: dict[str, Any]) -> tuple[Outcome, list[str]]:
    evaluation = rules.evaluate(given)
    return evaluation.outcome, [match.reason for match in evaluation.matches]


class TestDefaultRuleSet:
    def test_has_the_eight_rules_of_the_design_in_order(self, rules: RuleSet) -> None:
        assert [rule.id for rule in rules.rules] == [
            "frozen",
            "stale",
            "depleted",
            "overdue",
            "over_limit",
            "short",
            "large",
            "low",
        ]
        assert all(rule.enabled and rule.description and rule.message for rule in rules.rules)

    def test_has_the_default_params(self, rules: RuleSet) -> None:
        assert rules.params == PARAM_DEFAULTS
        assert rules.params["max_balance_age_s"] == 1800
        assert rules.params["single_order_review_amount"] == D("500000.00")
        assert rules.params["grade_multiplier_b"] == D("0.75")

    def test_document_is_a_fresh_copy_each_call(self) -> None:
        first = default_rule_set_document()
        first["rules"].clear()
        first["params"]["max_balance_age_s"] = 1
        assert len(default_rule_set_document()["rules"]) == 8
        assert default_rule_set_document()["params"]["max_balance_age_s"] == 1800

    def test_approves_an_ordinary_order(self, rules: RuleSet) -> None:
        assert reasons(rules, facts()) == (Outcome.APPROVE, [])

    def test_approves_but_notifies_when_the_balance_runs_low(self, rules: RuleSet) -> None:
        evaluation = rules.evaluate(facts(order__amount=D("45000.00")))
        assert evaluation.outcome is Outcome.APPROVE
        (match,) = evaluation.matches
        assert (match.rule_id, match.reason, match.actions) == ("low", "BALANCE_LOW", ("notify:balance.low",))
        assert match.message == "Order amount 45000.00 leaves less than 10000.00 of available 50000.00"

    def test_low_is_strict_at_the_threshold(self, rules: RuleSet) -> None:
        assert reasons(rules, facts(order__amount=D("40000.00"))) == (Outcome.APPROVE, [])
        assert reasons(rules, facts(order__amount=D("40000.01")))[1] == ["BALANCE_LOW"]

    def test_defers_when_short_but_within_the_credit_limit(self, rules: RuleSet) -> None:
        evaluation = rules.evaluate(facts(order__amount=D("60000.00"), credit__limit=D("20000.00")))
        assert evaluation.outcome is Outcome.DEFER
        (match,) = evaluation.matches
        assert match.reason == "INSUFFICIENT_BALANCE"
        assert "60000.00" in match.message and "50000.00" in match.message

    def test_short_includes_the_limit_itself(self, rules: RuleSet) -> None:
        assert reasons(rules, facts(order__amount=D("70000.00"), credit__limit=D("20000.00"))) == (
            Outcome.DEFER,
            ["INSUFFICIENT_BALANCE"],
        )

    def test_blocks_over_available_plus_credit_limit(self, rules: RuleSet) -> None:
        evaluation = rules.evaluate(facts(order__amount=D("70000.01"), credit__limit=D("20000.00")))
        assert evaluation.outcome is Outcome.BLOCK
        (match,) = evaluation.matches
        assert match.reason == "CREDIT_LIMIT_EXCEEDED"
        assert match.message == (
            "Order amount 70000.01 exceeds available 50000.00 plus credit limit 20000.00"
        )

    def test_blocks_any_shortfall_without_a_credit_line(self, rules: RuleSet) -> None:
        assert reasons(rules, facts(order__amount=D("50000.01"))) == (
            Outcome.BLOCK,
            ["CREDIT_LIMIT_EXCEEDED"],
        )

    def test_freezes_a_depleted_account(self, rules: RuleSet) -> None:
        given = facts(balance__amount=D("0.00"), available=D("0.00"))
        outcome, found = reasons(rules, given)
        assert outcome is Outcome.FREEZE
        assert found == ["BALANCE_DEPLETED", "CREDIT_LIMIT_EXCEEDED"]

    def test_freezes_on_long_overdue_payments(self, rules: RuleSet) -> None:
        assert reasons(rules, facts(payment__max_overdue_days=91)) == (Outcome.FREEZE, ["PAYMENT_OVERDUE"])
        assert reasons(rules, facts(payment__max_overdue_days=90)) == (Outcome.APPROVE, [])

    def test_blocks_a_frozen_account(self, rules: RuleSet) -> None:
        evaluation = rules.evaluate(facts(account__status="frozen"))
        assert evaluation.outcome is Outcome.BLOCK
        assert [m.reason for m in evaluation.matches] == ["ACCOUNT_FROZEN"]
        assert "frozen" in evaluation.matches[0].message

    def test_defers_when_the_balance_is_missing(self, rules: RuleSet) -> None:
        evaluation = rules.evaluate(facts(balance__amount=None, balance__age_s=None, available=None))
        assert evaluation.outcome is Outcome.DEFER
        assert [m.reason for m in evaluation.matches] == ["BALANCE_UNAVAILABLE"]
        assert "unknown" in evaluation.matches[0].message
        by_rule = {t.rule_id: t.matched for t in evaluation.trace}
        assert by_rule == {
            "frozen": False,
            "stale": True,
            "depleted": None,
            "overdue": False,
            "over_limit": None,
            "short": None,
            "large": False,
            "low": None,
        }

    def test_defers_when_the_balance_is_too_old(self, rules: RuleSet) -> None:
        assert reasons(rules, facts(balance__age_s=1801)) == (Outcome.DEFER, ["BALANCE_UNAVAILABLE"])
        assert reasons(rules, facts(balance__age_s=1800)) == (Outcome.APPROVE, [])

    def test_defers_large_orders_for_manual_review(self, rules: RuleSet) -> None:
        given = facts(order__amount=D("500000.01"), balance__amount=D("900000"), available=D("900000"))
        assert reasons(rules, given) == (Outcome.DEFER, ["MANUAL_REVIEW"])

    def test_account_params_override_the_defaults(self, rules: RuleSet) -> None:
        given = facts(order__amount=D("20000.00"))
        assert reasons(rules, given) == (Outcome.APPROVE, [])
        evaluation = rules.evaluate(given, {"single_order_review_amount": D("10000.00")})
        assert [m.reason for m in evaluation.matches] == ["MANUAL_REVIEW"]
        assert evaluation.matches[0].message.endswith("threshold 10000.00")


class TestCatalogue:
    def test_lists_the_facts_of_the_design(self) -> None:
        assert set(FACTS) == {
            "order.amount",
            "order.sale_group",
            "order.channel",
            "balance.amount",
            "balance.age_s",
            "exposure",
            "available",
            "credit.limit",
            "credit.grade",
            "payment.max_overdue_days",
            "payment.on_time_ratio",
            "payment.overdue_amount",
            "account.status",
            "account.age_days",
            "now.hour",
        }
        assert all(spec.description for spec in FACTS.values())
        assert FACTS["account.status"].values == ("active", "frozen")
        assert FACTS["credit.grade"].values == ("A", "B", "C", "D")

    def test_known_params_have_types_and_defaults(self) -> None:
        assert KNOWN_PARAMS["hold_ttl_s"].type == "integer"
        assert KNOWN_PARAMS["low_balance_threshold"].type == "money"
        assert KNOWN_PARAMS["deferral_ttl_s"].default == 86400
        assert set(PARAM_DEFAULTS) == set(KNOWN_PARAMS)
