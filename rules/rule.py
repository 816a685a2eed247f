"""One rule: validated fields plus its compiled condition and message renderer."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from rules import predicates
from rules.conditions import compile_condition
from rules.numbers import describe
from rules.outcome import Outcome
from rules.problems import child
from rules.scope import Scope
from rules.shape import Shape
from rules.templates import Render, Show, compile_template

RULE_ID = re.compile(r"[a-z][a-z0-9_]{0,63}")
REASON = re.compile(r"[A-Z][A-Z0-9_]{1,63}")
ACTION = re.compile(r"notify:[a-z][a-z0-9_.]*")
RULE_KEYS = ("id", "description", "when", "outcome", "reason", "message", "actions", "enabled")
REQUIRED_KEYS = ("id", "when", "outcome", "reason")
OUTCOMES = {outcome.value: outcome for outcome in Outcome}


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled rule; `when` is the canonical condition, `facts`/`params` the names it reads.

    `message_params` are the params its message names (facts/params are the condition's only);
    `message_slots` what each placeholder names, (name, is_fact), for `show(values)`.
    """

    id: str
    description: str
    when: dict[str, Any]
    outcome: Outcome
    reason: str
    message: str
    actions: tuple[str, ...]
    enabled: bool
    facts: tuple[str, ...] = field(repr=False)
    params: tuple[str, ...] = field(repr=False)
    message_params: tuple[str, ...] = field(repr=False)
    test: predicates.Test = field(repr=False, compare=False)
    render: Render = field(repr=False, compare=False)
    shape: Shape = field(repr=False, compare=False)
    message_slots: tuple[tuple[str, bool], ...] = field(repr=False, compare=False)
    show: Show = field(repr=False, compare=False)

    @property
    def document(self) -> dict[str, Any]:
        """The rule's canonical JSON form."""
        return {
            "id": self.id,
            "description": self.description,
            "when": copy.deepcopy(self.when),
            "outcome": self.outcome.value,
            "reason": self.reason,
            "message": self.message,
            "actions": list(self.actions),
            "enabled": self.enabled,
        }


def compile_rule(node: Any, pointer: str, scope: Scope) -> Rule | None:
    """Validate every field of one rule (reporting all problems) and compile it."""
    if not isinstance(node, dict):
        scope.problems.add(pointer, f"a rule must be an object, got {describe(node)}")
        return None
    fields = _Fields(node, pointer, scope)
    fields.check_keys()
    rule_id = fields.matching("id", RULE_ID, "^[a-z][a-z0-9_]{0,63}$")
    reason = fields.matching("reason", REASON, "^[A-Z][A-Z0-9_]{1,63}$")
    outcome = fields.outcome()
    actions = fields.actions()
    enabled = fields.typed("enabled", bool, True)
    description = fields.typed("description", str, "")
    message = fields.typed("message", str, "")
    template = compile_template(message, child(pointer, "message"), scope.params.types, scope.problems)
    when = compile_condition(node["when"], child(pointer, "when"), scope) if "when" in node else None
    if rule_id is None or reason is None or outcome is None or actions is None:
        return None
    if template is None or when is None:
        return None
    return Rule(
        id=rule_id,
        description=description,
        when=when.canonical,
        outcome=outcome,
        reason=reason,
        message=message,
        actions=actions,
        enabled=enabled,
        facts=tuple(scope.facts_read),
        params=tuple(scope.params_read),
        message_params=template.params,
        test=when.test,
        render=template.render,
        shape=when.shape,
        message_slots=template.slots,
        show=template.show,
    )


class _Fields:
    """Field checks that report and carry on, so one rule yields all its problems."""

    def __init__(self, node: dict[str, Any], pointer: str, scope: Scope) -> None:
        self.node, self.pointer, self.problems = node, pointer, scope.problems

    def check_keys(self) -> None:
        for key in self.node:
            if key not in RULE_KEYS:
                self.problems.add(child(self.pointer, key), f"unknown key {key!r} in a rule")
        for key in REQUIRED_KEYS:
            if key not in self.node:
                self.problems.add(self.pointer, f"a rule needs {key!r}")

    def matching(self, key: str, pattern: re.Pattern[str], shown: str) -> str | None:
        value = self.node.get(key)
        if key in self.node and not (isinstance(value, str) and pattern.fullmatch(value)):
            self.problems.add(child(self.pointer, key), f"{key} {value!r} must match {shown}")
            return None
        return value

    def typed(self, key: str, kind: type[Any], default: Any) -> Any:
        value = self.node.get(key, default)
        if not isinstance(value, kind):
            self.problems.add(
                child(self.pointer, key), f"{key} must be a {kind.__name__}, got {describe(value)}"
            )
            return default
        return value

    def outcome(self) -> Outcome | None:
        if "outcome" not in self.node:
            return None
        value = self.node["outcome"]
        found = OUTCOMES.get(value) if isinstance(value, str) else None
        if found is None:
            allowed = ", ".join(OUTCOMES)
            self.problems.add(child(self.pointer, "outcome"), f"outcome {value!r} must be one of: {allowed}")
        return found

    def actions(self) -> tuple[str, ...] | None:
        value = self.node.get("actions", [])
        where = child(self.pointer, "actions")
        if not isinstance(value, list):
            self.problems.add(where, f"actions must be a list, got {describe(value)}")
            return None
        bad = [
            i for i, action in enumerate(value) if not (isinstance(action, str) and ACTION.fullmatch(action))
        ]
        for i in bad:
            self.problems.add(child(where, i), f"action {value[i]!r} must match ^notify:[a-z][a-z0-9_.]*$")
        return None if bad else tuple(value)
