"""A bad rule set is refused with every problem, each pointing at the node to fix."""

from __future__ import annotations

import re

import pytest

from rules import RuleProblem, RuleSetInvalid, parse_rule_set
from tests.unit.rules.builders import cmp, document, problems, rule

pytestmark = pytest.mark.unit


def refused(doc: object, pointer: str, match: str) -> None:
    """The document is refused, with a problem at `pointer` whose message matches."""
    with pytest.raises(RuleSetInvalid, match=match) as caught:
        parse_rule_set(doc)  # type: ignore[arg-type]
    found = {p.pointer: p.message for p in caught.value.errors}
    assert pointer in found, found
    assert re.search(match, found[pointer]), found[pointer]


class TestDocumentShape:
    def test_refuses_a_non_object(self) -> None:
        refused(["rules"], "", "must be an object")

    def test_refuses_unknown_top_level_keys(self) -> None:
        refused(document(version=3), "/version", "unknown key 'version'")

    def test_needs_a_name_and_a_rules_list(self) -> None:
        found = problems({"rules": {}})
        assert "non-empty string" in found["/name"]
        assert "rules must be a list" in found["/rules"]

    def test_refuses_too_many_rules(self) -> None:
        refused(document(*[rule(f"r{i}") for i in range(201)]), "/rules", "at most 200 rules")

    def test_accepts_exactly_200_rules(self) -> None:
        assert len(parse_rule_set(document(*[rule(f"r{i}") for i in range(200)])).rules) == 200

    def test_error_lists_every_problem_in_its_message(self) -> None:
        with pytest.raises(RuleSetInvalid) as caught:
            parse_rule_set(document(rule("Bad", reason="x")))
        text = str(caught.value)
        assert "/rules/0/id" in text and "/rules/0/reason" in text
        assert isinstance(caught.value, ValueError)
        assert all(isinstance(p, RuleProblem) for p in caught.value.errors)

    def test_reports_all_problems_not_just_the_first(self) -> None:
        found = problems(
            document(
                rule("a", cmp("nope", "eq", 1)),
                rule("b", cmp("order.amount", "between", 1)),
                rule("c", outcome="maybe"),
            )
        )
        assert set(found) >= {"/rules/0/when/fact", "/rules/1/when/op", "/rules/2/outcome"}


class TestRuleFields:
    def test_refuses_unknown_keys_in_a_rule(self) -> None:
        refused(document(rule(priority=1)), "/rules/0/priority", "unknown key 'priority'")

    def test_refuses_a_rule_that_is_not_an_object(self) -> None:
        refused(document(rule(), "rule two"), "/rules/1", "a rule must be an object, got string")

    def test_refuses_a_rule_without_outcome(self) -> None:
        node = rule()
        del node["outcome"]
        refused(document(node), "/rules/0", "needs 'outcome'")

    def test_refuses_a_decimal_where_a_string_is_needed(self) -> None:
        from decimal import Decimal

        refused(
            document(rule(when=cmp("order.channel", "eq", Decimal("1.5")))),
            "/rules/0/when/value",
            "got number",
        )

    def test_refuses_a_missing_condition(self) -> None:
        node = rule()
        del node["when"]
        refused(document(node), "/rules/0", "needs 'when'")

    def test_refuses_duplicate_rule_ids(self) -> None:
        refused(
            document(rule("same"), rule("other"), rule("same")),
            "/rules/2/id",
            "duplicate rule id 'same'.*/rules/0",
        )

    @pytest.mark.parametrize("bad", ["Frozen", "1st", "", "x" * 65, "has-dash", 7])
    def test_refuses_a_bad_rule_id(self, bad: object) -> None:
        refused(document(rule(bad)), "/rules/0/id", "must match")  # type: ignore[arg-type]

    def test_refuses_a_bad_outcome(self) -> None:
        refused(
            document(rule(outcome="reject")), "/rules/0/outcome", "'reject' must be one of: approve, defer"
        )

    @pytest.mark.parametrize("bad", ["lower_case", "A", "HAS-DASH", "9LIVES"])
    def test_refuses_a_bad_reason(self, bad: str) -> None:
        refused(document(rule(reason=bad)), "/rules/0/reason", r"must match \^\[A-Z\]")

    @pytest.mark.parametrize("bad", ["notify: balance.low", "email:x", "notify:Balance", "notify:"])
    def test_refuses_a_bad_action(self, bad: str) -> None:
        refused(document(rule(actions=["notify:ok", bad])), "/rules/0/actions/1", "must match")

    def test_refuses_actions_that_are_not_a_list(self) -> None:
        refused(document(rule(actions="notify:x")), "/rules/0/actions", "actions must be a list")

    def test_refuses_a_non_boolean_enabled(self) -> None:
        refused(document(rule(enabled=1)), "/rules/0/enabled", "enabled must be a bool")

    def test_refuses_a_message_naming_an_unknown_fact(self) -> None:
        refused(document(rule(message="amount {order.amt}")), "/rules/0/message", r"\{order.amt\}")

    def test_refuses_a_message_naming_an_undeclared_param(self) -> None:
        refused(
            document(rule(message="over {limit}")),
            "/rules/0/message",
            r"\{limit\} must name a fact or a param",
        )

    @pytest.mark.parametrize(
        "bad", ["{}", "{0}", "{order.amount:.3f}", "{order.amount!r}", "open {", "close }"]
    )
    def test_refuses_malformed_or_formatted_placeholders(self, bad: str) -> None:
        refused(document(rule(message=bad)), "/rules/0/message", "placeholder|malformed")


class TestConditions:
    def test_refuses_an_unknown_fact(self) -> None:
        refused(
            document(rule(when=cmp("order.total", "gt", 1))),
            "/rules/0/when/fact",
            "unknown fact 'order.total'",
        )

    def test_refuses_an_unknown_fact_on_the_right(self) -> None:
        when = cmp("order.amount", "gt", {"fact": "avail"})
        refused(document(rule(when=when)), "/rules/0/when/value/fact", "unknown fact 'avail'")

    def test_refuses_an_unknown_op_deep_in_the_tree(self) -> None:
        when = {
            "all": [
                cmp("order.amount", "gt", 1),
                {"any": [cmp("order.amount", "gt", 1), cmp("exposure", "is", 1)]},
            ]
        }
        refused(
            document(rule("a"), rule("b"), rule("c"), rule("d", when)),
            "/rules/3/when/all/1/any/1/op",
            "unknown op 'is'",
        )

    def test_checks_the_auto_unfreeze_condition_too(self) -> None:
        refused(document(auto_unfreeze=cmp("balance.total", "gt", 0)), "/auto_unfreeze/fact", "unknown fact")

    def test_refuses_a_comparison_without_op(self) -> None:
        refused(document(rule(when={"fact": "order.amount", "value": 1})), "/rules/0/when", "no op")

    def test_refuses_unknown_keys_in_a_condition(self) -> None:
        when = {**cmp("order.amount", "gt", 1), "note": "x"}
        refused(document(rule(when=when)), "/rules/0/when/note", "unknown key 'note'")

    def test_refuses_extra_keys_beside_all(self) -> None:
        refused(
            document(rule(when={"all": [cmp("order.amount", "gt", 1)], "op": "eq"})),
            "/rules/0/when/op",
            "unknown key",
        )

    def test_refuses_a_node_that_is_two_kinds_at_once(self) -> None:
        when = {"all": [cmp("order.amount", "gt", 1)], "any": [cmp("order.amount", "gt", 1)]}
        refused(document(rule(when=when)), "/rules/0/when", "exactly one of: all, any, not, fact")

    @pytest.mark.parametrize("kind", ["all", "any"])
    def test_refuses_an_empty_group(self, kind: str) -> None:
        refused(document(rule(when={kind: []})), f"/rules/0/when/{kind}", "non-empty list")

    def test_refuses_a_condition_that_is_not_an_object(self) -> None:
        refused(document(rule(when={"not": "order.amount > 5"})), "/rules/0/when/not", "must be an object")

    def test_refuses_a_missing_value(self) -> None:
        refused(
            document(rule(when={"fact": "order.amount", "op": "gt"})),
            "/rules/0/when",
            "op 'gt' needs a value",
        )

    def test_refuses_a_value_for_missing_and_present(self) -> None:
        when = {"fact": "balance.amount", "op": "missing", "value": None}
        refused(document(rule(when=when)), "/rules/0/when/value", "op 'missing' takes no value")

    def test_refuses_null_as_a_value(self) -> None:
        refused(
            document(rule(when=cmp("order.amount", "eq", None))), "/rules/0/when/value", "use op 'missing'"
        )

    def test_refuses_too_deep_nesting(self) -> None:
        when: dict[str, object] = cmp("order.amount", "gt", 1)
        for _ in range(32):
            when = {"not": when}
        found = problems(document(rule(when=when)))
        assert len(found) == 1
        ((pointer, message),) = found.items()
        assert pointer == "/rules/0/when" + "/not" * 32
        assert "nested too deeply" in message

    def test_accepts_nesting_up_to_the_limit(self) -> None:
        when: dict[str, object] = cmp("order.amount", "gt", 1)
        for _ in range(31):
            when = {"not": when}
        parse_rule_set(document(rule(when=when)))


class TestValueTypes:
    def test_refuses_a_number_for_a_string_fact(self) -> None:
        refused(
            document(rule(when=cmp("order.channel", "eq", 5))), "/rules/0/when/value", "expected a string"
        )

    def test_refuses_a_non_number_for_a_money_fact(self) -> None:
        refused(
            document(rule(when=cmp("order.amount", "gt", "lots"))),
            "/rules/0/when/value",
            "expected a number.*'lots'",
        )

    @pytest.mark.parametrize("bad", ["1e5", " 5", "5.", ".5", "NaN", "Infinity", "1,000.00"])
    def test_refuses_decimal_strings_that_are_not_plain(self, bad: str) -> None:
        refused(
            document(rule(when=cmp("order.amount", "gt", bad))), "/rules/0/when/value", "expected a number"
        )

    def test_refuses_a_boolean_for_a_number(self) -> None:
        refused(document(rule(when=cmp("order.amount", "gt", True))), "/rules/0/when/value", "got boolean")

    def test_refuses_an_enum_literal_outside_the_enum(self) -> None:
        refused(
            document(rule(when=cmp("account.status", "eq", "Frozen"))),
            "/rules/0/when/value",
            "'Frozen' is not a value of 'account.status' \\(one of: active, frozen\\)",
        )

    def test_refuses_an_enum_literal_outside_the_enum_in_a_list(self) -> None:
        refused(
            document(rule(when=cmp("credit.grade", "in", ["A", "E"]))),
            "/rules/0/when/value/1",
            "'E' is not a value",
        )

    @pytest.mark.parametrize("op", ["gt", "gte", "lt", "lte"])
    def test_refuses_ordering_on_strings_and_enums(self, op: str) -> None:
        refused(
            document(rule(when=cmp("credit.grade", op, "B"))), "/rules/0/when/op", f"op '{op}' needs a number"
        )
        refused(document(rule(when=cmp("order.channel", op, "x"))), "/rules/0/when/op", "is a string fact")

    def test_refuses_comparing_a_number_with_a_string_fact(self) -> None:
        when = cmp("order.amount", "eq", {"fact": "order.channel"})
        refused(document(rule(when=when)), "/rules/0/when/value/fact", "'order.channel' is a string fact")

    def test_refuses_a_param_against_a_string_fact(self) -> None:
        when = cmp("order.channel", "eq", {"param": "p"})
        refused(
            document(rule(when=when), params={"p": 1}), "/rules/0/when/value/param", "param 'p' is a number"
        )

    def test_refuses_arithmetic_on_a_string_fact(self) -> None:
        when = cmp("order.amount", "gt", {"add": [{"fact": "available"}, {"fact": "order.channel"}]})
        refused(document(rule(when=when)), "/rules/0/when/value/add/1/fact", "string fact")

    def test_refuses_arithmetic_compared_with_a_string_fact(self) -> None:
        when = cmp("order.channel", "eq", {"add": [1, 2]})
        refused(document(rule(when=when)), "/rules/0/when/value/add", "'add' needs numbers")

    @pytest.mark.parametrize(
        ("kind", "operands"), [("add", [1]), ("sub", [1, 2, 3]), ("mul", [1]), ("sub", "1")]
    )
    def test_refuses_the_wrong_number_of_operands(self, kind: str, operands: object) -> None:
        when = cmp("order.amount", "gt", {kind: operands})
        refused(document(rule(when=when)), f"/rules/0/when/value/{kind}", "takes a list of")

    def test_refuses_unknown_keys_in_a_value(self) -> None:
        when = cmp("order.amount", "gt", {"fact": "available", "times": 2})
        refused(document(rule(when=when)), "/rules/0/when/value/times", "unknown key 'times'")

    def test_refuses_a_value_object_of_no_known_kind(self) -> None:
        refused(
            document(rule(when=cmp("order.amount", "gt", {"div": [1, 2]}))),
            "/rules/0/when/value",
            "exactly one of",
        )

    def test_refuses_a_list_outside_in(self) -> None:
        refused(document(rule(when=cmp("order.amount", "eq", [1, 2]))), "/rules/0/when/value", "only allowed")

    def test_refuses_in_without_a_list(self) -> None:
        refused(
            document(rule(when=cmp("order.channel", "in", "web"))), "/rules/0/when/value", "non-empty list"
        )
        refused(document(rule(when=cmp("order.channel", "in", []))), "/rules/0/when/value", "non-empty list")

    def test_refuses_references_inside_in(self) -> None:
        when = cmp("order.amount", "in", [{"fact": "available"}])
        refused(document(rule(when=when)), "/rules/0/when/value/0", "expected a number")


class TestParams:
    def test_refuses_a_reference_to_an_undeclared_param(self) -> None:
        when = cmp("balance.age_s", "gt", {"param": "max_balance_age_s"})
        refused(document(rule(when=when)), "/rules/0/when/value/param", "unknown param 'max_balance_age_s'")

    def test_refuses_non_numeric_param_values(self) -> None:
        found = problems(document(params={"a": "ten", "b": True, "c": None, "d": [1]}))
        assert set(found) == {"/params/a", "/params/b", "/params/c", "/params/d"}
        assert all("must be an integer or a decimal string" in message for message in found.values())

    def test_refuses_a_fractional_value_for_an_integer_param(self) -> None:
        refused(document(params={"max_balance_age_s": "1800.5"}), "/params/max_balance_age_s", "whole number")

    def test_refuses_a_negative_known_param(self) -> None:
        refused(document(params={"safety_margin": "-1.00"}), "/params/safety_margin", "between 0.00 and")

    @pytest.mark.parametrize("name", ["Limit", "has.dot", "available", "x" * 65])
    def test_refuses_bad_param_names(self, name: str) -> None:
        refused(document(params={name: 1}), f"/params/{name.replace('/', '~1')}", "param name")

    def test_refuses_params_that_are_not_an_object(self) -> None:
        refused(document(params=[1]), "/params", "params must be an object")  # type: ignore[arg-type]


class TestFloats:
    def test_refuses_a_float_literal(self) -> None:
        refused(
            document(rule(when=cmp("order.amount", "gt", 100.5))),
            "/rules/0/when/value",
            "floats are not allowed",
        )

    def test_refuses_a_float_param(self) -> None:
        refused(
            document(params={"low_balance_threshold": 10000.0}), "/params/low_balance_threshold", "floats"
        )

    def test_refuses_a_float_anywhere_and_reports_it_once(self) -> None:
        doc = document(rule(enabled=1.0, when=cmp("order.amount", "gt", {"add": [1, 0.5]})))
        found = problems(doc)
        assert found == {
            "/rules/0/enabled": found["/rules/0/enabled"],
            "/rules/0/when/value/add/1": found["/rules/0/when/value/add/1"],
        }
        assert all("floats are not allowed" in message for message in found.values())

    def test_pointer_escapes_slashes_and_tildes_in_keys(self) -> None:
        found = problems(document(**{"a/b~c": 1}))
        assert "/a~1b~0c" in found
