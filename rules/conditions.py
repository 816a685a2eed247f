"""Conditions: all/any/not trees over comparisons, validated with pointers and compiled to closures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rules import operands, predicates
from rules import shape as shapes
from rules.facts import FactSpec
from rules.numbers import describe
from rules.problems import child
from rules.scope import Scope
from rules.values import Operand, compile_literal, compile_value

ORDERING_OPS = ("gt", "gte", "lt", "lte")
VALUE_OPS = ("eq", "ne", *ORDERING_OPS)
MEMBER_OPS = ("in", "not_in")
PRESENCE_OPS = ("missing", "present")
OPS = (*VALUE_OPS, *MEMBER_OPS, *PRESENCE_OPS)
COMPARISON_KEYS = ("fact", "op", "value")
CONDITION_KINDS = ("all", "any", "not", "fact")


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled condition: canonical JSON for storage, the test closure and its shape for evaluation."""

    canonical: dict[str, Any]
    test: predicates.Test
    shape: shapes.Shape


def compile_condition(node: Any, pointer: str, scope: Scope, depth: int = 1) -> Condition | None:
    """Validate and compile a condition node; problems go to the scope, None means unusable."""
    if scope.too_deep(pointer, depth) or scope.too_large(pointer):
        return None
    if not isinstance(node, dict):
        scope.problems.add(pointer, f"a condition must be an object, got {describe(node)}")
        return None
    kinds = [key for key in CONDITION_KINDS if key in node]
    if len(kinds) != 1:
        scope.problems.add(pointer, "a condition needs exactly one of: all, any, not, fact")
        return None
    kind = kinds[0]
    allowed = COMPARISON_KEYS if kind == "fact" else (kind,)
    for key in node:
        if key not in allowed:
            scope.problems.add(child(pointer, key), f"unknown key {key!r} in a condition")
    if kind == "fact":
        return _comparison(node, pointer, scope, depth)
    if kind == "not":
        inner = compile_condition(node[kind], child(pointer, kind), scope, depth + 1)
        if inner is None:
            return None
        return Condition({"not": inner.canonical}, predicates.negation(inner.test), shapes.Not(inner.shape))
    return _group(kind, node[kind], child(pointer, kind), scope, depth)


def _group(kind: str, node: Any, pointer: str, scope: Scope, depth: int) -> Condition | None:
    if not isinstance(node, list) or not node:
        scope.problems.add(pointer, f"{kind!r} takes a non-empty list of conditions")
        return None
    parts = [compile_condition(item, child(pointer, i), scope, depth + 1) for i, item in enumerate(node)]
    valid = [part for part in parts if part is not None]
    if len(valid) != len(parts):
        return None
    combine = predicates.all_of if kind == "all" else predicates.any_of
    return Condition(
        {kind: [part.canonical for part in valid]},
        combine([part.test for part in valid]),
        shapes.Group(kind == "any", tuple(part.shape for part in valid)),
    )


def _comparison(node: dict[str, Any], pointer: str, scope: Scope, depth: int) -> Condition | None:
    spec = scope.fact(node["fact"], child(pointer, "fact"))
    op = node.get("op")
    if op not in OPS:
        where, what = (child(pointer, "op"), f"unknown op {op!r}") if "op" in node else (pointer, "no op")
        scope.problems.add(where, f"{what}; expected one of: {', '.join(OPS)}")
        return None
    if op in PRESENCE_OPS:
        if "value" in node:
            scope.problems.add(child(pointer, "value"), f"op {op!r} takes no value")
        return None if spec is None else _presence(spec, op)
    if "value" not in node:
        scope.problems.add(pointer, f"op {op!r} needs a value")
        return None
    if spec is None:
        return None
    if op in ORDERING_OPS and not spec.type.numeric:
        scope.problems.add(
            child(pointer, "op"), f"op {op!r} needs a number; {spec.name!r} is {spec.type.noun}"
        )
        return None
    if op in MEMBER_OPS:
        return _membership(spec, op, node["value"], child(pointer, "value"), scope)
    operand = compile_value(node["value"], child(pointer, "value"), spec, scope, depth + 1)
    if operand is None:
        return None
    canonical = {"fact": spec.name, "op": op, "value": operand.canonical}
    return Condition(
        canonical, _compare(spec.name, op, operand), shapes.Compare(spec.name, op, operand.source)
    )


def _presence(spec: FactSpec, op: str) -> Condition:
    negate = op == "present"
    return Condition(
        {"fact": spec.name, "op": op},
        predicates.missing(spec.name, negate=negate),
        shapes.Missing(spec.name, negate),
    )


def _membership(spec: FactSpec, op: str, node: Any, pointer: str, scope: Scope) -> Condition | None:
    if not isinstance(node, list) or not node:
        scope.problems.add(pointer, f"op {op!r} takes a non-empty list of literals")
        return None
    items = [compile_literal(item, child(pointer, i), spec, scope.problems) for i, item in enumerate(node)]
    valid = [item for item in items if item is not None]
    if len(valid) != len(items):
        return None
    canonical = {"fact": spec.name, "op": op, "value": [item.canonical for item in valid]}
    values = frozenset(item.source[1] for item in valid)
    negate = op == "not_in"
    return Condition(
        canonical,
        predicates.member(spec.name, values, negate=negate),
        shapes.Member(spec.name, values, negate),
    )


def _compare(fact: str, op: str, operand: Operand) -> predicates.Test:
    kind, what = operand.source
    if kind == operands.CONSTANT:
        return predicates.compare_constant(fact, op, what)
    if kind == operands.FACT:
        return predicates.compare_fact(fact, op, what)
    if kind == operands.PARAM:
        return predicates.compare_param(fact, op, what)
    if kind == operands.PAIR:
        return predicates.compare_pair(fact, op, what)
    return predicates.compare_value(fact, op, what)
