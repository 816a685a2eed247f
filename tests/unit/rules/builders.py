"""Small document builders so each test shows only the rule it is about."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from rules import RuleSet, RuleSetInvalid, parse_rule_set


def cmp(fact: str, op: str, value: Any = None) -> dict[str, Any]:
    node: dict[str, Any] = {"fact": fact, "op": op}
    if op not in ("missing", "present"):
        node["value"] = value
    return node


def rule(rule_id: str = "r", when: Any = None, **fields: Any) -> dict[str, Any]:
    node = {"id": rule_id, "when": when if when is not None else cmp("order.amount", "gt", 0)}
    node.setdefault("outcome", "block")
    node.setdefault("reason", "TEST_REASON")
    node.update(fields)
    return node


def document(*rules: dict[str, Any], params: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": "test", "params": params or {}, "rules": list(rules), **extra}


def one_rule(when: Any, params: dict[str, Any] | None = None, **fields: Any) -> RuleSet:
    return parse_rule_set(document(rule("r", when, **fields), params=params))


def check(when: Any, facts: dict[str, Any], params: dict[str, Any] | None = None) -> bool | None:
    """What a single rule's condition says about these facts: True, False or None (unknown)."""
    return one_rule(when, params).evaluate(facts).trace[0].matched


def problems(doc: Any) -> dict[str, str]:
    """pointer -> message for every problem the document has."""
    with pytest.raises(RuleSetInvalid) as caught:
        parse_rule_set(doc)
    return {problem.pointer: problem.message for problem in caught.value.errors}


def money(text: str) -> Decimal:
    return Decimal(text)
