"""Predicates: a validated condition becomes nested closures once, so evaluation never walks JSON.

Three-valued logic: a test returns True, False or None (unknown, because a fact it needed is None).
The factories specialise the common shapes (fact vs literal, fact vs fact, fact vs a PAIR).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rules.operands import ARITHMETIC_OPS, FACT, PARAM, Facts, Params, Source, ValueFn

Test = Callable[[Facts, Params], bool | None]

COMPARATORS: Mapping[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


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


def compare_pair(fact: str, op: str, pair: tuple[str, Source, Source]) -> Test:
    """fact <op> (a add/sub/mul b) with a and b facts, params or literals, read inline."""
    compare = COMPARATORS[op]
    name, (kind_a, a), (kind_b, b) = pair
    apply = ARITHMETIC_OPS[name]

    def test(facts: Facts, params: Params) -> bool | None:
        left = facts.get(fact)
        if left is None:
            return None
        x = facts.get(a) if kind_a == FACT else params[a] if kind_a == PARAM else a
        if x is None:
            return None
        y = facts.get(b) if kind_b == FACT else params[b] if kind_b == PARAM else b
        return None if y is None else compare(left, apply(x, y))

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
    if len(tests) == 2:
        return _both(tests[0], tests[1])
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
    if len(tests) == 2:
        return _either(tests[0], tests[1])
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


def _both(first: Test, second: Test) -> Test:
    def test(facts: Facts, params: Params) -> bool | None:
        a = first(facts, params)
        if a is False:
            return False
        b = second(facts, params)
        if b is False:
            return False
        return None if a is None or b is None else True

    return test


def _either(first: Test, second: Test) -> Test:
    def test(facts: Facts, params: Params) -> bool | None:
        a = first(facts, params)
        if a is True:
            return True
        b = second(facts, params)
        if b is True:
            return True
        return None if a is None or b is None else False

    return test
