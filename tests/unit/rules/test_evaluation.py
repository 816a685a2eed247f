"""Evaluating a rule set: who wins, what is reported, what the trace shows."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rules import Evaluation, Match, Outcome, RuleTrace, parse_rule_set
from tests.unit.rules.builders import cmp, document, one_rule, rule

pytestmark = pytest.mark.unit

D = Decimal
ALWAYS = cmp("order.amount", "present")


class TestOutcome:
    def test_severity_orders_the_outcomes(self) -> None:
        assert [o.severity for o in Outcome] == [0, 1, 2, 3]
        assert (
            Outcome.FREEZE.severity
            > Outcome.BLOCK.severity
            > Outcome.DEFER.severity
            > Outcome.APPROVE.severity
        )

    def test_outcome_is_its_string_value(self) -> None:
        assert Outcome("defer") is Outcome.DEFER
        assert Outcome.DEFER == "defer"


class TestRuleSetEvaluate:
    def test_most_severe_outcome_wins(self) -> None:
        rules = parse_rule_set(
            document(
                rule("a", ALWAYS, outcome="defer", reason="A_REASON"),
                rule("b", ALWAYS, outcome="freeze", reason="B_REASON"),
                rule("c", ALWAYS, outcome="block", reason="C_REASON"),
            )
        )
        evaluation = rules.evaluate({"order.amount": D(1)})
        assert evaluation.outcome is Outcome.FREEZE
        assert [m.rule_id for m in evaluation.matches] == ["a", "b", "c"]
        assert [m.reason for m in evaluation.matches] == ["A_REASON", "B_REASON", "C_REASON"]

    def test_no_match_approves(self) -> None:
        evaluation = one_rule(cmp("order.amount", "gt", 100)).evaluate({"order.amount": D(1)})
        assert evaluation == Evaluation(Outcome.APPROVE, (), evaluation.trace)

    def test_an_approve_rule_reports_its_actions(self) -> None:
        rules = one_rule(ALWAYS, outcome="approve", reason="BALANCE_LOW", actions=["notify:balance.low"])
        evaluation = rules.evaluate({"order.amount": D(1)})
        assert evaluation.outcome is Outcome.APPROVE
        assert evaluation.matches == (
            Match("r", Outcome.APPROVE, "BALANCE_LOW", "", ("notify:balance.low",)),
        )

    def test_empty_rule_set_approves(self) -> None:
        evaluation = parse_rule_set(document()).evaluate({})
        assert (evaluation.outcome, evaluation.matches, evaluation.trace) == (Outcome.APPROVE, (), ())

    def test_facts_may_be_any_mapping(self) -> None:
        from types import MappingProxyType

        evaluation = one_rule(ALWAYS).evaluate(MappingProxyType({"order.amount": D(1)}))
        assert evaluation.outcome is Outcome.BLOCK


class TestRuleSetIsImmutable:
    def test_attributes_cannot_be_replaced(self) -> None:
        rules = one_rule(ALWAYS, params={"limit": 1})
        with pytest.raises(AttributeError, match="immutable"):
            rules.name = "other"  # type: ignore[misc]
        with pytest.raises(TypeError):
            rules.params["limit"] = D(2)  # type: ignore[index]
        assert rules.rules[0].id == "r"
        assert repr(rules) == "<RuleSet 'test': 1 rules>"


class TestParams:
    def test_params_override_the_rule_sets_own(self) -> None:
        rules = one_rule(cmp("order.amount", "gt", {"param": "limit"}), params={"limit": "100.00"})
        assert rules.evaluate({"order.amount": D(150)}).outcome is Outcome.BLOCK
        assert rules.evaluate({"order.amount": D(150)}, {"limit": D(200)}).outcome is Outcome.APPROVE

    def test_overrides_do_not_change_the_rule_set(self) -> None:
        rules = one_rule(cmp("order.amount", "gt", {"param": "limit"}), params={"limit": "100.00"})
        rules.evaluate({"order.amount": D(1)}, {"limit": D(5)})
        assert rules.params == {"limit": D("100.00")}

    def test_passing_our_own_params_back_changes_nothing(self) -> None:
        rules = one_rule(cmp("balance.age_s", "gt", {"param": "max_age"}), params={"max_age": 60})
        facts = {"balance.age_s": 61}
        assert rules.evaluate(facts, dict(rules.params)) == rules.evaluate(facts)

    def test_an_override_equal_in_value_is_still_the_one_used(self) -> None:
        rules = one_rule(
            cmp("balance.age_s", "gt", {"param": "max_age"}), params={"max_age": 60}, message="max {max_age}"
        )
        evaluation = rules.evaluate({"balance.age_s": 61}, {"max_age": D("60.0")})
        assert str(evaluation.trace[0].params["max_age"]) == "60.0"
        assert evaluation.matches[0].message == "max 60.0"

    def test_overrides_of_params_no_rule_names_are_harmless(self) -> None:
        rules = one_rule(cmp("balance.age_s", "gt", {"param": "max_age"}), params={"max_age": 60, "x": 1})
        assert rules.evaluate({"balance.age_s": 61}, {"x": D(5), "y": D(1)}).outcome is Outcome.BLOCK

    def test_params_are_decimals(self) -> None:
        rules = parse_rule_set(document(params={"max_balance_age_s": 1800, "safety_margin": "0.50"}))
        assert rules.params == {"max_balance_age_s": D(1800), "safety_margin": D("0.50")}
        assert all(isinstance(value, Decimal) for value in rules.params.values())


class TestDisabledRules:
    def test_disabled_rule_never_matches_but_is_traced(self) -> None:
        rules = parse_rule_set(
            document(rule("off", ALWAYS, enabled=False), rule("on", ALWAYS, outcome="defer"))
        )
        evaluation = rules.evaluate({"order.amount": D(1)})
        assert evaluation.outcome is Outcome.DEFER
        assert [m.rule_id for m in evaluation.matches] == ["on"]
        off = evaluation.trace[0]
        assert (off.rule_id, off.matched, off.enabled, dict(off.reads), dict(off.params)) == (
            "off",
            False,
            False,
            {},
            {},
        )


class TestTrace:
    def test_trace_lists_every_rule_with_what_it_read(self) -> None:
        rules = parse_rule_set(
            document(
                rule(
                    "short",
                    {"all": [cmp("order.amount", "gt", {"fact": "available"}), cmp("exposure", "gte", 0)]},
                ),
                rule("old", cmp("balance.age_s", "gt", {"param": "max_age"}), outcome="defer"),
                params={"max_age": 60},
            )
        )
        facts = {"order.amount": D("5"), "available": None, "exposure": D("1"), "balance.age_s": 61}
        short, old = rules.evaluate(facts).trace
        assert short.matched is None
        assert dict(short.reads) == {"order.amount": D("5"), "available": None, "exposure": D("1")}
        assert dict(short.params) == {}
        assert old.matched is True
        assert dict(old.reads) == {"balance.age_s": 61}
        assert dict(old.params) == {"max_age": D(60)}

    def test_trace_shows_overridden_params(self) -> None:
        rules = one_rule(cmp("balance.age_s", "gt", {"param": "max_age"}), params={"max_age": 60, "other": 1})
        (trace,) = rules.evaluate({"balance.age_s": 61}, {"max_age": D(100)}).trace
        assert trace == RuleTrace("r", False, True, {"balance.age_s": 61}, {"max_age": D(100)})

    def test_trace_reads_a_fact_absent_from_the_facts_as_none(self) -> None:
        (trace,) = one_rule(cmp("order.amount", "gt", 0)).evaluate({}).trace
        assert dict(trace.reads) == {"order.amount": None}
        assert trace.reads["order.amount"] is None
        with pytest.raises(KeyError):
            trace.reads["available"]

    def test_trace_keeps_what_was_seen_when_the_caller_changes_its_facts(self) -> None:
        facts = {"order.amount": D(1)}
        evaluation = one_rule(ALWAYS).evaluate(facts)
        facts["order.amount"] = D(999)
        assert dict(evaluation.trace[0].reads) == {"order.amount": D(1)}

    def test_trace_is_a_frozen_dataclass(self) -> None:
        import dataclasses

        (trace,) = one_rule(ALWAYS).evaluate({"order.amount": D(1)}).trace
        assert type(trace) is RuleTrace
        assert trace == RuleTrace("r", True, True, {"order.amount": D(1)}, {})
        assert dataclasses.replace(trace, matched=False).matched is False
        with pytest.raises(dataclasses.FrozenInstanceError):
            trace.matched = False  # type: ignore[misc]
        assert [f.name for f in dataclasses.fields(trace)] == [
            "rule_id",
            "matched",
            "enabled",
            "reads",
            "params",
        ]
        assert "order.amount" in repr(trace)


class TestMessages:
    def test_message_renders_money_with_two_places(self) -> None:
        rules = one_rule(
            ALWAYS,
            params={"limit": "500000"},
            message="Order amount {order.amount} exceeds available {available} (limit {limit})",
        )
        (match,) = rules.evaluate({"order.amount": D("1999.980"), "available": D(12)}).matches
        assert match.message == "Order amount 1999.98 exceeds available 12.00 (limit 500000.00)"

    def test_message_renders_missing_facts_as_unknown(self) -> None:
        rules = one_rule(ALWAYS, message="balance {balance.amount}, age {balance.age_s}s")
        (match,) = rules.evaluate({"order.amount": D(1)}).matches
        assert match.message == "balance unknown, age unknowns"

    def test_message_renders_integers_strings_and_ratios_as_they_are(self) -> None:
        rules = one_rule(
            ALWAYS,
            params={"days": 90},
            message="{account.status} {credit.grade} "
            "{payment.max_overdue_days}>{days} {payment.on_time_ratio}",
        )
        facts = {
            "order.amount": D(1),
            "account.status": "frozen",
            "credit.grade": "C",
            "payment.max_overdue_days": 91,
            "payment.on_time_ratio": D("0.875"),
        }
        assert rules.evaluate(facts).matches[0].message == "frozen C 91>90 0.875"

    def test_message_uses_overridden_params(self) -> None:
        rules = one_rule(ALWAYS, params={"limit": "5.00"}, message="limit {limit}")
        assert rules.evaluate({"order.amount": D(1)}, {"limit": D(7)}).matches[0].message == "limit 7.00"

    def test_doubled_braces_are_literal(self) -> None:
        rules = one_rule(ALWAYS, message="{{not a placeholder}} {order.amount}")
        assert rules.evaluate({"order.amount": D(1)}).matches[0].message == "{not a placeholder} 1.00"


class TestAutoUnfreeze:
    def test_false_without_a_condition(self) -> None:
        assert one_rule(ALWAYS).auto_unfreeze({"order.amount": D(1)}) is False

    def test_true_only_when_the_condition_holds(self) -> None:
        rules = parse_rule_set(
            document(
                rule(),
                params={"floor": "1000.00"},
                auto_unfreeze=cmp("balance.amount", "gte", {"param": "floor"}),
            )
        )
        assert rules.auto_unfreeze({"balance.amount": D("1000.00")}) is True
        assert rules.auto_unfreeze({"balance.amount": D("999.99")}) is False
        assert rules.auto_unfreeze({"balance.amount": None}) is False
        assert rules.auto_unfreeze({"balance.amount": D("1500")}, {"floor": D(2000)}) is False
        assert rules.document["auto_unfreeze"] == {
            "fact": "balance.amount",
            "op": "gte",
            "value": {"param": "floor"},
        }
