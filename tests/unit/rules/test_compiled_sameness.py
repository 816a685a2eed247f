"""The compiled rule set answers exactly what the evaluation loop it replaced answered.

Random valid rule sets (the default set with the param catalogue's bounds, and generated ones), random
facts with edge values (zero, negative zero, half cents, the contract's ceiling, Decimals past the
arithmetic's 60 digits and near its exponent limit, None) and params (none, ours, equal but other
objects, other values), against tests/unit/rules/reference_evaluator.py: outcome, every match with its
message, every trace entry with the exact values it read, or the same exception. CREDITCTL_TEST_SEED
changes the seed (printed on failure); CREDITCTL_SAMENESS_EXAMPLES the examples per test (150 by default,
about ten seconds in all; CREDITCTL_SAMENESS_EXAMPLES=5000 for a longer search).
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, note, seed, settings
from hypothesis import strategies as st

from rules import FACTS, KNOWN_PARAMS, FactType, RuleSet, compiler, default_rule_set_document, parse_rule_set
from rules.param_catalogue import MAX_MONEY
from tests.unit.rules import strategies as gen
from tests.unit.rules.reference_evaluator import plain, reference_evaluate, reference_outcome

pytestmark = pytest.mark.unit

SEED = int(os.environ.get("CREDITCTL_TEST_SEED", "20261205"))
EXAMPLES = int(os.environ.get("CREDITCTL_SAMENESS_EXAMPLES", "150"))
SAME = settings(
    max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
D = Decimal

BOUNDS = sorted({value for spec in KNOWN_PARAMS.values() for value in (spec.minimum, spec.maximum)})
EDGE_MONEY = [
    D("0"), D("-0"), D("0.00"), D("-0.00"), D("0.01"), D("-0.01"), D("0.005"), D("0.015"), D("1.005"),
    D("-1.005"), D("2.675"), D("999.995"), MAX_MONEY, -MAX_MONEY, MAX_MONEY + D("0.01"), D("1E+3"),
    D("1E-30"), D("9" * 70), D("-" + "9" * 70), D("1" * 59 + ".5"), D("1E+70"), D("1E+500000"),
    *BOUNDS,
]  # fmt: skip
EDGE_INTEGERS = [0, -1, 1, 89, 90, 91, 1799, 1800, 1801, 10**30, -(10**30)]
EDGE_RATIOS = [D("0"), D("1"), D("0.9999"), D("1.0000"), D("1E-40")]


def edge_value(name: str) -> st.SearchStrategy[Any]:
    spec = FACTS[name]
    if spec.type is FactType.MONEY:
        edges: st.SearchStrategy[Any] = st.sampled_from(EDGE_MONEY) | gen.money
    elif spec.type is FactType.INTEGER:
        edges = st.sampled_from(EDGE_INTEGERS) | st.integers(-(10**6), 10**6)
    elif spec.type is FactType.RATIO:
        edges = st.sampled_from(EDGE_RATIOS) | gen.ratios
    else:
        edges = gen.fact_value(spec)
    return st.none() | edges


edge_facts = st.fixed_dictionaries({name: edge_value(name) for name in FACTS})


def _wire(name: str, value: Decimal) -> int | str:
    return int(value) if KNOWN_PARAMS[name].type is FactType.INTEGER else format(value, "f")


@st.composite
def default_documents(draw: st.DrawFn) -> dict[str, Any]:
    """The default set, its params at the catalogue's min, max or default, some rules disabled."""
    document = default_rule_set_document()
    for name, spec in KNOWN_PARAMS.items():
        document["params"][name] = _wire(
            name, draw(st.sampled_from([spec.minimum, spec.maximum, spec.default]))
        )
    for rule in document["rules"]:
        rule["enabled"] = draw(st.booleans())
    return document


@st.composite
def params_for(draw: st.DrawFn, rules: RuleSet) -> Any:
    """What a caller passes: nothing, ours (a copy or the read-only mapping), ours again as equal but
    other objects, or other values."""
    own = dict(rules.params)
    kind = draw(st.sampled_from(["none", "empty", "ours", "proxy", "equal", "other", "partial"]))
    if kind == "none":
        return None
    if kind == "proxy":
        return rules.params
    if kind == "empty":
        return {}
    if kind == "ours":
        return own
    values = {name: D(str(value) + ("" if "." in str(value) else ".0")) for name, value in own.items()}
    if kind == "equal":
        return values
    changed = {
        name: draw(st.sampled_from([D(0), D("-1"), D("0.01"), value * 2, D("1E+70")]))
        for name, value in own.items()
    }
    if kind == "partial":
        return dict(list(changed.items())[: draw(st.integers(0, len(changed)))])
    return {**changed, "not_named": D(1)}


def both(rules: RuleSet, document: dict[str, Any], facts: dict[str, Any], params: Any) -> None:
    try:
        expected: Any = reference_evaluate(rules, document, facts, params)
    except ArithmeticError as error:
        expected = type(error)
    try:
        actual: Any = plain(rules.evaluate(facts, params))
    except ArithmeticError as error:
        actual = type(error)
    note(f"CREDITCTL_TEST_SEED={SEED}")
    assert actual == expected
    try:
        expected_outcome: Any = reference_outcome(rules, facts, params)
    except ArithmeticError as error:
        expected_outcome = type(error)
    try:
        actual_outcome: Any = rules.outcome(facts, params)
    except ArithmeticError as error:
        actual_outcome = type(error)
    assert actual_outcome == expected_outcome


@seed(SEED)
@SAME
@given(document=default_documents(), facts=edge_facts, data=st.data())
def test_the_default_set_answers_as_before(
    document: dict[str, Any], facts: dict[str, Any], data: Any
) -> None:
    rules = parse_rule_set(document)
    both(rules, document, facts, data.draw(params_for(rules)))


@seed(SEED)
@SAME
@given(document=gen.documents(max_rules=6), facts=edge_facts, data=st.data())
def test_any_valid_set_answers_as_before(document: dict[str, Any], facts: dict[str, Any], data: Any) -> None:
    rules = parse_rule_set(document)
    both(rules, document, facts, data.draw(params_for(rules)))


@seed(SEED)
@settings(SAME, max_examples=max(EXAMPLES // 3, 10))
@given(document=gen.documents(max_rules=4), facts=edge_facts, data=st.data())
def test_a_rule_too_large_to_inline_answers_as_before(
    document: dict[str, Any], facts: dict[str, Any], data: Any
) -> None:
    rules = parse_rule_set(document)
    with patch.object(compiler, "INLINE_NODES", 0):  # every rule calls its condition's closure
        both(rules, document, facts, data.draw(params_for(rules)))
        source = compiler.source_of(rules._plan)
    assert ("(seen, merged)" in source) is any(rule.enabled for rule in rules.rules)
