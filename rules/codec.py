"""Rule documents as JSON text, with money kept exact: Decimal in, decimal strings out."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from rules.problems import FLOAT_MESSAGE, RuleProblem, RuleSetInvalid, find_floats


def loads_document(text: str) -> dict[str, Any]:
    """Parse JSON with numbers as Decimal (never float); NaN/Infinity and non-objects are refused."""
    try:
        document = json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise RuleSetInvalid([RuleProblem("", f"not valid JSON: {error}")]) from None
    if not isinstance(document, dict):
        raise RuleSetInvalid([RuleProblem("", "a rule set document must be a JSON object")])
    return document


def dumps_document(document: Mapping[str, Any]) -> str:
    """Compact JSON with sorted keys; Decimals as plain strings. A float is refused, never written."""
    floats = list(find_floats(dict(document)))
    if floats:
        raise RuleSetInvalid([RuleProblem(pointer, FLOAT_MESSAGE) for pointer in floats])
    return json.dumps(document, default=_encode, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _refuse_constant(name: str) -> Any:
    raise RuleSetInvalid([RuleProblem("", f"{name} is not a number a rule may use")])


def _encode(value: object) -> Any:
    if isinstance(value, Decimal) and value.is_finite():
        return format(value, "f")
    raise TypeError(f"{type(value).__name__} is not allowed in a rule document")
