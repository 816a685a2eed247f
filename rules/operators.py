"""Closure factories: a validated condition becomes nested closures once, so evaluation never walks JSON.

Three-valued logic: a test returns True, False or None (unknown, because a fact it needed is None).
The factories specialise the common shapes (fact vs constant, fact vs fact) because a closure call
is the unit of cost here.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from rules.numbers import ARITHMETIC

Facts = Mapping[str, Any]
Params = Mapping[str, Decimal]
ValueFn = Callable[[Facts, Params], Any]
Test = Callable[[Facts, Params], bool | None]

COMPARATORS: Mapping[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
ARITHMETIC_OPS: Mapping[str, Callable[[Any, Any], Any]] = {
    "add": ARITHMETIC.add,
    "sub": ARITHMETIC.subtract,
    "mul": ARITHMETIC.multiply,
}


def fact_value(name: str) -> ValueFn:
    """Read a fact; absent and None are the same: unknown."""
    return lambda facts, params: facts.get(name)


def param_value(name: str) -> ValueFn:
    """Read a param from the merged params (validation made sure it is declared)."""
    return lambda facts, params: params[name]


def constant(value: object) -> ValueFn:
    """A literal."""
    return lambda facts, params: value


def arithmetic(name: str, operands: Sequence[ValueFn]) -> ValueFn:
    """Fold operands left to right with add/sub/mul; any None operand makes the result None."""
    apply = ARITHMETIC_OPS[name]
    if len(operands) == 2:
        first, second = operands

        def pair(facts: Facts, params: Params) -> Any:
            left = first(facts, params)
            if left is None:
                return None
            right = second(facts, params)
            return None if right is None else apply(left, right)

        return pair

    def fold(facts: Facts, params: Params) -> Any:
        total = None
        for operand in operands:
            value = operand(facts, params)
            if value is None:
                return None
            total = value if total is None else apply(total, value)
        return total

    return fold


def compare_constant(fact: str, op: str, value: object) -> Test:
    """fact <op> literal."""
    compare = COMPARATORS[op]

    def test(facts: Facts, params: Params) -> bool | None:
        left = facts.get(fact)
        return None if left is None else compare(left, value)

    return test


def compare_fact(fact: str, op: str, other: str) -> Test:
    """fact <op> another fact."""
    compare = COMPARATORS[op]

    def test(facts: Facts, params: Params) -> bool | None:
        left = facts.get(fact)
        right = facts.get(other)
        return None if left is None or right is None else compare(left, right)

    return test


def compare_param(fact: str, op: str, param: str) -> Test:
    """fact <op> param."""
    compare = COMPARATORS[op]

    def test(facts: Facts, params: Params) -> bool | None:
        left = facts.get(fact)
        return None if left is None else compare(left, params[param])

    return test


def compare_value(fact: str, op: str, value: ValueFn) -> Test:
    """fact <op> computed value (arithmetic)."""
    compare = COMPARATORS[op]

    def test(facts: Facts, params: Params) -> bool | None:
        left = facts.get(fact)
        if left is None:
            return None
        right = value(facts, params)
        return None if right is None else compare(left, right)

    return test


def member(fact: str, values: frozenset[object], negate: bool) -> Test:
    """fact in / not_in a set of literals (Decimal and int hash alike, so 5 matches "5.00")."""
    if negate:
        return lambda facts, params: None if (v := facts.get(fact)) is None else v not in values
    return lambda facts, params: None if (v := facts.get(fact)) is None else v in values


def missing(fact: str, negate: bool) -> Test:
    """`missing` (or `present` when negated) is never unknown: it is the question about None."""
    if negate:
        return lambda facts, params: facts.get(fact) is not None
    return lambda facts, params: facts.get(fact) is None


def negation(inner: Test) -> Test:
    """not: unknown stays unknown."""
    return lambda facts, params: None if (r := inner(facts, params)) is None else not r


def all_of(tests: Sequence[Test]) -> Test:
    """False if any is False, else unknown if any is unknown, else True."""
    if len(tests) == 1:
        return tests[0]
    members = tuple(tests)

    def test(facts: Facts, params: Params) -> bool | None:
        unknown = False
        for each in members:
            result = each(facts, params)
            if result is False:
                return False
            if result is None:
                unknown = True
        return None if unknown else True

    return test


def any_of(tests: Sequence[Test]) -> Test:
    """True if any is True, else unknown if any is unknown, else False."""
    if len(tests) == 1:
        return tests[0]
    members = tuple(tests)

    def test(facts: Facts, params: Params) -> bool | None:
        unknown = False
        for each in members:
            result = each(facts, params)
            if result is True:
                return True
            if result is None:
                unknown = True
        return None if unknown else False

    return test
