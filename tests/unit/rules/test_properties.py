"""Properties that hold for any valid rule set and any facts (None included)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules import FACTS, Outcome, RuleSetInvalid, dumps_document, loads_document, parse_rule_set
from tests.unit.rules import strategies as gen

pytestmark = pytest.mark.unit

PROPERTY = settings(deadline=None, derandomize=True, database=None, max_examples=100)


@PROPERTY
@given(doc=gen.documents(), facts=gen.facts, params=gen.param_overrides)
def test_evaluation_is_deterministic(doc: dict[str, Any], facts: dict[str, Any], params: Any) -> None:
    rules = parse_rule_set(doc)
    assert rules.evaluate(facts, params) == rules.evaluate(dict(facts), params)


@PROPERTY
@given(doc=gen.documents(), facts=gen.facts, params=gen.param_overrides)
def test_outcome_is_the_most_severe_match(doc: dict[str, Any], facts: dict[str, Any], params: Any) -> None:
    evaluation = parse_rule_set(doc).evaluate(facts, params)
    expected = max((m.outcome for m in evaluation.matches), key=lambda o: o.severity, default=Outcome.APPROVE)
    assert evaluation.outcome is expected
    assert [m.rule_id for m in evaluation.matches] == [
        t.rule_id for t in evaluation.trace if t.matched is True
    ]


@PROPERTY
@given(doc=gen.documents(), extra=gen.rule("extra"), facts=gen.facts)
def test_adding_a_rule_never_lowers_severity(
    doc: dict[str, Any], extra: dict[str, Any], facts: dict[str, Any]
) -> None:
    before = parse_rule_set(doc).evaluate(facts).outcome
    after = parse_rule_set({**doc, "rules": [*doc["rules"], extra]}).evaluate(facts).outcome
    assert after.severity >= before.severity


@PROPERTY
@given(when=gen.conditions, facts=gen.facts, params=gen.param_overrides)
def test_valid_conditions_never_raise(when: dict[str, Any], facts: dict[str, Any], params: Any) -> None:
    rules = parse_rule_set({"name": "g", "params": gen.PARAMS, "rules": [], "auto_unfreeze": when})
    as_rule = parse_rule_set({"name": "g", "params": gen.PARAMS, "rules": [gen_rule(when)]})
    assert rules.auto_unfreeze(facts, params) in (True, False)
    (trace,) = as_rule.evaluate(facts, params).trace
    assert trace.matched in (True, False, None)
    assert set(trace.reads) <= set(facts)


@PROPERTY
@given(when=gen.conditions)
def test_not_inverts_known_results_and_keeps_unknown(when: dict[str, Any]) -> None:
    facts = {name: None for name in gen.FACTS}
    plain = parse_rule_set({"name": "g", "params": gen.PARAMS, "rules": [gen_rule(when)]})
    negated = parse_rule_set({"name": "g", "params": gen.PARAMS, "rules": [gen_rule({"not": when})]})
    result = plain.evaluate(facts).trace[0].matched
    inverted = negated.evaluate(facts).trace[0].matched
    assert inverted is (None if result is None else not result)


@PROPERTY
@given(doc=gen.documents())
def test_canonical_document_round_trips(doc: dict[str, Any]) -> None:
    rules = parse_rule_set(doc)
    assert parse_rule_set(loads_document(dumps_document(rules.document))).document == rules.document


@PROPERTY
@given(doc=gen.documents(max_rules=3), facts=gen.facts, data=st.data())
def test_disabled_rules_never_match(doc: dict[str, Any], facts: dict[str, Any], data: st.DataObject) -> None:
    evaluation = parse_rule_set(doc).evaluate(facts)
    for rule_doc, trace in zip(doc["rules"], evaluation.trace, strict=True):
        if not rule_doc["enabled"]:
            assert (trace.matched, trace.enabled) == (False, False)


def gen_rule(when: dict[str, Any]) -> dict[str, Any]:
    return {"id": "r", "when": when, "outcome": "block", "reason": "R_R"}


@PROPERTY
@given(doc=gen.documents(), facts=gen.facts, params=gen.param_overrides)
def test_outcome_alone_is_the_outcome_of_a_full_evaluation(
    doc: dict[str, Any], facts: dict[str, Any], params: Any
) -> None:
    rules = parse_rule_set(doc)
    assert rules.outcome(facts, params) is rules.evaluate(facts, params).outcome


_any_fact = st.sampled_from([*FACTS, "nope"])
_loose_value = st.one_of(
    st.integers(-5, 5),
    st.sampled_from(["1.00", "abc", "A", "frozen", None, [], ["A"]]),
    _any_fact.map(lambda name: {"fact": name}),
    st.sampled_from(["p_money", "p_days", "p_ratio", "undeclared"]).map(lambda name: {"param": name}),
    st.tuples(_any_fact, _any_fact).map(lambda xs: {"add": [{"fact": xs[0]}, {"fact": xs[1]}]}),
)
_loose_comparison = st.fixed_dictionaries(
    {"fact": _any_fact, "op": st.sampled_from(["eq", "gt", "lte", "in", "missing", "between"])},
    optional={"value": _loose_value},
)
_loose_conditions = st.recursive(
    _loose_comparison,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: {"all": xs}), inner.map(lambda x: {"not": x})
    ),
    max_leaves=5,
)


@given(
    st.lists(_loose_conditions, min_size=1, max_size=3),
    st.sampled_from(["approve", "freeze", "explode"]),
    st.sampled_from(["", "{order.amount}", "{nope}", "{p_money}"]),
    gen.facts,
    gen.param_overrides,
)
def test_validation_never_accepts_what_evaluation_cannot_run(
    whens: list[Any], outcome: str, message: str, facts: dict[str, Any], params: Any
) -> None:
    doc = {
        "name": "loose",
        "params": dict(gen.PARAMS),
        "rules": [
            {"id": f"r{i}", "when": when, "outcome": outcome, "reason": "SOME_REASON", "message": message}
            for i, when in enumerate(whens)
        ],
    }
    try:
        compiled = parse_rule_set(doc)
    except RuleSetInvalid as refused:
        assert refused.errors and all(p.pointer.startswith("/") for p in refused.errors)
        return
    compiled.evaluate(facts, params)  # accepted: it runs on any facts of the catalogue's types
