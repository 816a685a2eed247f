"""Exact numbers for rules: strict literal parsing and arithmetic that ignores the caller's context."""

from __future__ import annotations

import re
from decimal import Context, Decimal, DivisionByZero, InvalidOperation, Overflow

_DECIMAL_TEXT = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")

# A private context: a caller who lowered getcontext().prec must not make a rule round money.
ARITHMETIC = Context(prec=60, traps=[InvalidOperation, DivisionByZero, Overflow])


def parse_number(value: object) -> int | Decimal | None:
    """An int, finite Decimal or plain decimal string as a number; None for anything else (floats too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value):
        return Decimal(value)
    return None


def canonical_number(value: int | Decimal) -> int | str:
    """JSON form: integers stay integers, decimals become plain strings ("1E+3" -> "1000")."""
    return value if isinstance(value, int) else format(value, "f")


def describe(value: object) -> str:
    """Name a JSON value's type for an error message."""
    names = {bool: "boolean", int: "integer", str: "string", list: "list", dict: "object", float: "float"}
    if value is None:
        return "null"
    if isinstance(value, Decimal):
        return "number"
    return names.get(type(value), type(value).__name__)
