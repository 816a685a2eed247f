"""parse_rule_set: validate a whole document, report every problem at once, compile what is good."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rules.conditions import Condition, compile_condition
from rules.numbers import describe
from rules.params import declare_params
from rules.problems import Problems, child
from rules.rule import Rule, compile_rule
from rules.rule_set import RuleSet
from rules.scope import Scope

DOCUMENT_KEYS = ("name", "params", "auto_unfreeze", "rules")
MAX_RULES = 200


def parse_rule_set(document: Mapping[str, Any], *, stored: bool = False) -> RuleSet:
    """Validate and compile a rule document; raise RuleSetInvalid listing ALL problems.

    `stored`: a published version read back, whose known params are taken within their bounds rather
    than refused (see rules.params.declare_params); everything else is checked as always."""
    node = dict(document) if isinstance(document, Mapping) else document
    problems = Problems(node)
    if not isinstance(node, dict):
        problems.add("", f"a rule set document must be an object, got {describe(node)}")
        problems.raise_if_any()
    for key in node:
        if key not in DOCUMENT_KEYS:
            problems.add(
                child("", key), f"unknown key {key!r} in a rule set (expected: {', '.join(DOCUMENT_KEYS)})"
            )
    name = node.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.add("/name", f"name must be a non-empty string, got {describe(name)}")
    scope = Scope(problems, declare_params(node.get("params"), "/params", problems, stored=stored))
    unfreeze = _auto_unfreeze(node.get("auto_unfreeze"), scope)
    rules = _rules(node.get("rules"), scope)
    problems.raise_if_any()
    canonical = {
        "name": name,
        "params": scope.params.canonical,
        "auto_unfreeze": None if unfreeze is None else unfreeze.canonical,
        "rules": [rule.document for rule in rules],
    }
    test = None if unfreeze is None else unfreeze.test
    return RuleSet(str(name), scope.params.values, tuple(rules), canonical, test)


def _auto_unfreeze(node: Any, scope: Scope) -> Condition | None:
    return None if node is None else compile_condition(node, "/auto_unfreeze", scope.fresh())


def _rules(node: Any, scope: Scope) -> list[Rule]:
    if not isinstance(node, list):
        scope.problems.add("/rules", f"rules must be a list, got {describe(node)}")
        return []
    if len(node) > MAX_RULES:
        scope.problems.add("/rules", f"at most {MAX_RULES} rules, got {len(node)}")
    _report_duplicate_ids(node, scope.problems)
    compiled = [compile_rule(item, child("/rules", i), scope.fresh()) for i, item in enumerate(node)]
    return [rule for rule in compiled if rule is not None]


def _report_duplicate_ids(nodes: list[Any], problems: Problems) -> None:
    first: dict[str, int] = {}
    for index, item in enumerate(nodes):
        rule_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(rule_id, str):
            continue
        if rule_id in first:
            problems.add(
                f"/rules/{index}/id", f"duplicate rule id {rule_id!r} (first at /rules/{first[rule_id]})"
            )
        else:
            first[rule_id] = index
