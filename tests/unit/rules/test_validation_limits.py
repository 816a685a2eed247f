"""Validation added for rule administrators: money never compared directly with a count, and a size
limit per rule, each reported with its pointer alongside every other problem."""

from __future__ import annotations

from typing import Any

import pytest

from rules import RuleSetInvalid, parse_rule_set
from rules.params import check_overrides
from rules.scope import MAX_NODES


def _rule(when: dict[str, Any], rule_id: str = "r") -> dict[str, Any]:
    return {"id": rule_id, "when": when, "outcome": "block", "reason": "SOME_REASON"}


def _pointers(document: dict[str, Any]) -> list[str]:
    with pytest.raises(RuleSetInvalid) as caught:
        parse_rule_set(document)
    return [problem.pointer for problem in caught.value.errors]


class TestTypeMismatch:
    def test_money_compared_with_a_number_of_seconds_is_refused(self) -> None:
        doc = {
            "name": "x",
            "rules": [_rule({"fact": "order.amount", "op": "gt", "value": {"fact": "balance.age_s"}})],
        }
        assert _pointers(doc) == ["/rules/0/when/value/fact"]

    def test_a_count_compared_with_a_money_param_is_refused(self) -> None:
        doc = {
            "name": "x",
            "params": {"limit": "10.00"},
            "rules": [_rule({"fact": "payment.max_overdue_days", "op": "gt", "value": {"param": "limit"}})],
        }
        assert _pointers(doc) == ["/rules/0/when/value/param"]

    def test_arithmetic_may_still_mix_money_and_ratios(self) -> None:
        when = {"fact": "order.amount", "op": "gt", "value": {"mul": [{"fact": "available"}, "0.5"]}}
        parse_rule_set({"name": "x", "rules": [_rule(when)]})


class TestSize:
    def test_a_condition_larger_than_the_limit_is_refused_once_with_every_other_problem(self) -> None:
        big = {"any": [{"fact": "order.amount", "op": "gt", "value": 1}] * MAX_NODES}
        doc = {"name": "x", "rules": [_rule(big, "a"), _rule({"fact": "nope", "op": "gt", "value": 1}, "a")]}
        pointers = _pointers(doc)
        assert pointers.count(f"/rules/0/when/any/{MAX_NODES - 1}") == 1
        assert "/rules/1/id" in pointers and "/rules/1/when/fact" in pointers


class TestOverrides:
    def test_overrides_take_known_params_of_their_type_only(self) -> None:
        values, problems = check_overrides(
            {
                "max_overdue_days": 30,
                "base_credit_limit": "1000.00",
                "x": 1,
                "hold_ttl_s": "5",
                "safety_margin": "1.005",
            }
        )
        assert values == {"max_overdue_days": 30, "base_credit_limit": "1000.00"}
        assert [p for p, _ in problems] == ["/x", "/hold_ttl_s", "/safety_margin"]
