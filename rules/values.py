"""Values on the right of a comparison: literals, fact and param references, add/sub/mul.

A literal's meaning depends on the fact it is compared with: "500000.00" is money next to
order.amount and text next to order.channel. `want` carries that fact (None: any number).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rules import operands
from rules.facts import FactSpec, FactType
from rules.numbers import canonical_number, describe, parse_number
from rules.problems import Problems, child
from rules.scope import Scope

ARITHMETIC_ARITY = {"add": (2, None), "sub": (2, 2), "mul": (2, 2)}
VALUE_KEYS = ("fact", "param", *ARITHMETIC_ARITY)


@dataclass(frozen=True, slots=True)
class Operand:
    """A compiled value: its canonical JSON and how to read it (a literal, fact, param or closure)."""

    canonical: Any
    source: operands.Source


def about(want: FactSpec | None) -> str:
    """Describe what a value must be, for messages."""
    return "an arithmetic operand" if want is None else f"{want.type.value} fact {want.name!r}"


def compile_value(node: Any, pointer: str, want: FactSpec | None, scope: Scope, depth: int) -> Operand | None:
    """Validate and compile one value node; problems go to the scope, None means unusable."""
    if isinstance(node, dict):
        if scope.too_deep(pointer, depth) or scope.too_large(pointer):
            return None
        return _reference(node, pointer, want, scope, depth)
    return compile_literal(node, pointer, want, scope.problems)


def compile_literal(node: Any, pointer: str, want: FactSpec | None, problems: Problems) -> Operand | None:
    """A JSON literal, typed by the fact it is compared with."""
    if node is None:
        problems.add(pointer, "null is not a value; use op 'missing' to test for an unknown fact")
        return None
    if isinstance(node, list):
        problems.add(pointer, "a list is only allowed as the value of op 'in' or 'not_in'")
        return None
    if want is not None and not want.type.numeric:
        return _text(node, pointer, want, problems)
    number = parse_number(node)
    if number is None:
        shown = f" {node!r}" if isinstance(node, str) else ""
        problems.add(pointer, f"expected a number for {about(want)}, got {describe(node)}{shown}")
        return None
    return Operand(canonical_number(number), (operands.CONSTANT, number))


def _text(node: Any, pointer: str, want: FactSpec, problems: Problems) -> Operand | None:
    if not isinstance(node, str):
        problems.add(pointer, f"expected a string for {about(want)}, got {describe(node)}")
        return None
    if want.values is not None and node not in want.values:
        allowed = ", ".join(want.values)
        problems.add(pointer, f"{node!r} is not a value of {want.name!r} (one of: {allowed})")
        return None
    return Operand(node, (operands.CONSTANT, node))


def _reference(
    node: dict[str, Any], pointer: str, want: FactSpec | None, scope: Scope, depth: int
) -> Operand | None:
    for key in node:
        if key not in VALUE_KEYS:
            scope.problems.add(
                child(pointer, key),
                f"unknown key {key!r} in a value (expected one of: fact, param, add, sub, mul)",
            )
    kinds = [key for key in VALUE_KEYS if key in node]
    if len(kinds) != 1:
        scope.problems.add(pointer, "a value object needs exactly one of: fact, param, add, sub, mul")
        return None
    kind = kinds[0]
    if kind == "fact":
        return _fact(node[kind], child(pointer, kind), want, scope)
    if kind == "param":
        return _param(node[kind], child(pointer, kind), want, scope)
    return _arithmetic(kind, node[kind], pointer, want, scope, depth)


def _fact(name: Any, pointer: str, want: FactSpec | None, scope: Scope) -> Operand | None:
    spec = scope.fact(name, pointer)
    if spec is None:
        return None
    wanted_numeric = want is None or want.type.numeric
    if spec.type.numeric != wanted_numeric:
        scope.problems.add(
            pointer, f"fact {spec.name!r} is {spec.type.noun}; expected a value for {about(want)}"
        )
        return None
    if _mismatched_units(want, spec.type):
        scope.problems.add(
            pointer, f"type mismatch: fact {spec.name!r} is {spec.type.value}, compared with {about(want)}"
        )
        return None
    return Operand({"fact": spec.name}, (operands.FACT, spec.name))


def _param(name: Any, pointer: str, want: FactSpec | None, scope: Scope) -> Operand | None:
    found = scope.param(name, pointer)
    if found is None:
        return None
    if want is not None and not want.type.numeric:
        scope.problems.add(pointer, f"param {found!r} is a number; expected a value for {about(want)}")
        return None
    kind = scope.params.types.get(found)
    if kind is not None and _mismatched_units(want, kind):
        scope.problems.add(
            pointer, f"type mismatch: param {found!r} is {kind.value}, compared with {about(want)}"
        )
        return None
    return Operand({"param": found}, (operands.PARAM, found))


def _mismatched_units(want: FactSpec | None, kind: FactType) -> bool:
    """Money compared directly with a count (days, seconds) or the reverse: a type mismatch."""
    units = {want.type, kind} if want is not None else set()
    return units == {FactType.MONEY, FactType.INTEGER}


def _arithmetic(
    kind: str, node: Any, pointer: str, want: FactSpec | None, scope: Scope, depth: int
) -> Operand | None:
    here = child(pointer, kind)
    if want is not None and not want.type.numeric:
        scope.problems.add(here, f"{kind!r} needs numbers; expected a value for {about(want)}")
        return None
    low, high = ARITHMETIC_ARITY[kind]
    if not isinstance(node, list) or len(node) < low or (high is not None and len(node) > high):
        count = f"exactly {low}" if high == low else f"at least {low}"
        scope.problems.add(here, f"{kind!r} takes a list of {count} values")
        return None
    parts = [compile_value(item, child(here, i), None, scope, depth + 1) for i, item in enumerate(node)]
    valid = [part for part in parts if part is not None]
    if len(valid) != len(parts):
        return None
    return Operand(
        {kind: [o.canonical for o in valid]}, operands.arithmetic_source(kind, [o.source for o in valid])
    )
