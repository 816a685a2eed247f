"""Hypothesis strategies for valid rule documents and facts of the catalogue's types."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from rules import FACTS, FactSpec, FactType

PARAMS = {"p_money": "100.00", "p_days": 30, "p_ratio": "0.50"}
NUMERIC = [spec for spec in FACTS.values() if spec.type.numeric]
TEXT = [spec for spec in FACTS.values() if not spec.type.numeric]
WORDS = ["web", "edi", "SG01", "", "frozen", "A"]

money = st.decimals(min_value=-(10**9), max_value=10**9, places=2, allow_nan=False, allow_infinity=False)
ratios = st.decimals(min_value=0, max_value=1, places=4, allow_nan=False, allow_infinity=False)


def fact_value(spec: FactSpec) -> st.SearchStrategy[Any]:
    """A value of the fact's type, or None (unknown)."""
    if spec.type is FactType.MONEY:
        value: st.SearchStrategy[Any] = money
    elif spec.type is FactType.INTEGER:
        value = st.integers(-(10**6), 10**6)
    elif spec.type is FactType.RATIO:
        value = ratios
    elif spec.values is not None:
        value = st.sampled_from(spec.values)
    else:
        value = st.sampled_from(WORDS)
    return st.none() | value


facts = st.fixed_dictionaries({name: fact_value(spec) for name, spec in FACTS.items()})
param_overrides = st.none() | st.fixed_dictionaries(
    {}, optional={"p_money": money.map(Decimal), "p_days": st.integers(0, 100).map(Decimal)}
)

number_literal = st.one_of(st.integers(-(10**6), 10**6), money.map(lambda d: format(d, "f")), money)


# Declared params take a type from their value: an int is a count (integer), a string money.
PARAM_TYPES = {"p_money": FactType.MONEY, "p_days": FactType.INTEGER, "p_ratio": FactType.MONEY}
CLASHING = {FactType.MONEY: FactType.INTEGER, FactType.INTEGER: FactType.MONEY}


def numeric_value(against: FactType | None = None) -> st.SearchStrategy[Any]:
    """A numeric value; compared directly with a fact of type `against`, never money against a count."""
    clash = CLASHING.get(against) if against is not None else None
    facts = [spec for spec in NUMERIC if spec.type is not clash]
    params = sorted(name for name, kind in PARAM_TYPES.items() if kind is not clash)
    leaf = st.one_of(
        number_literal,
        st.sampled_from(NUMERIC).map(lambda spec: {"fact": spec.name}),
        st.sampled_from(sorted(PARAMS)).map(lambda name: {"param": name}),
    )
    operand = st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, min_size=2, max_size=3).map(lambda xs: {"add": xs}),
            st.tuples(inner, inner).map(lambda xs: {"sub": list(xs)}),
            st.tuples(inner, inner).map(lambda xs: {"mul": list(xs)}),
        ),
        max_leaves=4,
    )
    return st.one_of(
        number_literal,
        st.sampled_from(facts).map(lambda spec: {"fact": spec.name}),
        st.sampled_from(params).map(lambda name: {"param": name}),
        st.lists(operand, min_size=2, max_size=3).map(lambda xs: {"add": xs}),
        st.tuples(operand, operand).map(lambda xs: {"sub": list(xs)}),
        st.tuples(operand, operand).map(lambda xs: {"mul": list(xs)}),
    )


@st.composite
def comparison(draw: st.DrawFn) -> dict[str, Any]:
    spec = draw(st.sampled_from(list(FACTS.values())))
    if spec.type.numeric:
        op = draw(
            st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "missing", "present"])
        )
        literal = number_literal
        value = numeric_value(spec.type)
    else:
        op = draw(st.sampled_from(["eq", "ne", "in", "not_in", "missing", "present"]))
        literal = st.sampled_from(spec.values or WORDS)
        value = literal | st.sampled_from(TEXT).map(lambda other: {"fact": other.name})
    if op in ("missing", "present"):
        return {"fact": spec.name, "op": op}
    if op in ("in", "not_in"):
        return {"fact": spec.name, "op": op, "value": draw(st.lists(literal, min_size=1, max_size=3))}
    return {"fact": spec.name, "op": op, "value": draw(value)}


conditions = st.recursive(
    comparison(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"all": xs}),
        st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"any": xs}),
        inner.map(lambda x: {"not": x}),
    ),
    max_leaves=6,
)


@st.composite
def rule(draw: st.DrawFn, rule_id: str) -> dict[str, Any]:
    return {
        "id": rule_id,
        "when": draw(conditions),
        "outcome": draw(st.sampled_from(["approve", "defer", "block", "freeze"])),
        "reason": "R_" + rule_id.upper(),
        "message": draw(st.sampled_from(["", "{order.amount} vs {available}", "{p_money} {credit.grade}"])),
        "enabled": draw(st.booleans()),
    }


@st.composite
def documents(draw: st.DrawFn, max_rules: int = 5) -> dict[str, Any]:
    count = draw(st.integers(0, max_rules))
    return {"name": "generated", "params": dict(PARAMS), "rules": [draw(rule(f"r{i}")) for i in range(count)]}
