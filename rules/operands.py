"""Operands of a comparison, kept as data (a Source) so the common shapes can be read inline.

A closure call is the unit of cost when evaluating, so `available + credit.limit` is not three
closures but one PAIR source that a comparison reads directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from rules.numbers import ARITHMETIC

Facts = Mapping[str, Any]
Params = Mapping[str, Decimal]
ValueFn = Callable[[Facts, Params], Any]

ARITHMETIC_OPS: Mapping[str, Callable[[Any, Any], Any]] = {
    "add": ARITHMETIC.add,
    "sub": ARITHMETIC.subtract,
    "mul": ARITHMETIC.multiply,
}

# (kind, what): a fact name, a param name, a literal, a closure, or PAIR = (op name, source, source)
# for add/sub/mul of two simple (non-closure) operands.
FACT, PARAM, CONSTANT, CALL, PAIR = range(5)
Source = tuple[int, Any]


def read(source: Source) -> ValueFn:
    """A closure reading one operand, for the general (slower) paths."""
    kind, what = source
    if kind == FACT:
        return lambda facts, params: facts.get(what)
    if kind == PARAM:
        return lambda facts, params: params[what]
    if kind == CONSTANT:
        return lambda facts, params: what
    if kind == PAIR:
        name, first, second = what
        return _simple_pair(ARITHMETIC_OPS[name], first, second)
    return what  # type: ignore[no-any-return]


def arithmetic_source(name: str, operands: Sequence[Source]) -> Source:
    """How to read add/sub/mul of these operands: inline for two simple ones, else a closure."""
    if len(operands) == 2 and all(kind in (FACT, PARAM, CONSTANT) for kind, _ in operands):
        return (PAIR, (name, operands[0], operands[1]))
    return (CALL, arithmetic(name, operands))


def arithmetic(name: str, operands: Sequence[Source]) -> ValueFn:
    """Fold operands left to right with add/sub/mul; any None operand makes the result None."""
    apply = ARITHMETIC_OPS[name]
    readers = [read(source) for source in operands]

    def fold(facts: Facts, params: Params) -> Any:
        total = None
        for reader in readers:
            value = reader(facts, params)
            if value is None:
                return None
            total = value if total is None else apply(total, value)
        return total

    return fold


def _simple_pair(apply: Callable[[Any, Any], Any], first: Source, second: Source) -> ValueFn:
    (kind_a, a), (kind_b, b) = first, second

    def pair(facts: Facts, params: Params) -> Any:
        left = facts.get(a) if kind_a == FACT else params[a] if kind_a == PARAM else a
        if left is None:
            return None
        right = facts.get(b) if kind_b == FACT else params[b] if kind_b == PARAM else b
        return None if right is None else apply(left, right)

    return pair
