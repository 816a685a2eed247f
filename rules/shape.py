"""A compiled condition as plain data, for rules.compiler to write out as straight-line code.

The closures of rules.predicates and these shapes are built from the same validated node, side by
side: the closures evaluate one condition alone (auto_unfreeze, a rule too large to inline), the
shapes let a whole rule set become one function.
"""

from __future__ import annotations

from typing import NamedTuple

from rules.operands import Source


class Compare(NamedTuple):
    """fact <op> value; `source` is how the value is read (rules.operands)."""

    fact: str
    op: str
    source: Source


class Member(NamedTuple):
    """fact in (or, negated, not in) a set of literals."""

    fact: str
    values: frozenset[object]
    negate: bool


class Missing(NamedTuple):
    """fact is missing (or, negated, present)."""

    fact: str
    negate: bool


class Not(NamedTuple):
    inner: Shape


class Group(NamedTuple):
    """all (`any_=False`) or any of the members, in order."""

    any_: bool
    members: tuple[Shape, ...]


Shape = Compare | Member | Missing | Not | Group
