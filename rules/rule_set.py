"""A compiled rule set: evaluate facts against every rule and say which outcome wins, with a trace."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any, NamedTuple

from rules import operators
from rules.outcome import BY_SEVERITY
from rules.results import Evaluation, Match, RuleTrace, make_trace
from rules.rule import Rule
from rules.views import KeysView

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class _Step(NamedTuple):
    """A rule prepared for the evaluation loop, unpacked in one go instead of attribute by attribute."""

    rule_id: str
    test: operators.Test
    severity: int
    facts: tuple[str, ...]
    params: tuple[str, ...]
    fixed_params: Mapping[str, Decimal]  # the trace's params when no overrides are given
    disabled: RuleTrace | None  # the (constant) trace of a disabled rule
    rule: Rule


class RuleSet:
    """Compiled and immutable: build it with `parse_rule_set`, evaluate it as often as you like."""

    __slots__ = ("_auto_unfreeze", "_document", "_params", "_steps", "name", "params", "rules")

    def __init__(
        self,
        name: str,
        params: Mapping[str, Decimal],
        rules: tuple[Rule, ...],
        document: dict[str, Any],
        auto_unfreeze: operators.Test | None = None,
    ) -> None:
        self.name = name
        self._params = dict(params)
        self.params: Mapping[str, Decimal] = MappingProxyType(self._params)
        self.rules = rules
        self._document = copy.deepcopy(document)
        self._auto_unfreeze = auto_unfreeze
        self._steps = tuple(_step(rule, self._params) for rule in rules)

    @property
    def document(self) -> dict[str, Any]:
        """The canonical JSON-able document (a fresh copy: the rule set itself never changes)."""
        return copy.deepcopy(self._document)

    def __repr__(self) -> str:
        return f"<RuleSet {self.name!r}: {len(self.rules)} rules>"

    def evaluate(self, facts: Mapping[str, Any], params: Mapping[str, Decimal] | None = None) -> Evaluation:
        """Evaluate every rule; the most severe match wins, no match approves. `params` override ours."""
        seen = dict(facts)  # the trace must show what was evaluated even if the caller edits `facts` later
        merged = {**self._params, **params} if params else self._params
        worst = 0
        matches: list[Match] = []
        trace: list[RuleTrace] = []
        for rule_id, test, severity, names, param_names, fixed, disabled, rule in self._steps:
            if disabled is not None:
                trace.append(disabled)
                continue
            matched = test(seen, merged)
            if matched:
                matches.append(Match(rule_id, rule.outcome, rule.reason, rule.render(seen, merged), rule.actions))
                worst = max(worst, severity)
            used = KeysView(merged, param_names) if params and param_names else fixed
            trace.append(make_trace(rule_id, matched, True, KeysView(seen, names), used))
        return Evaluation(BY_SEVERITY[worst], tuple(matches), tuple(trace))

    def auto_unfreeze(self, facts: Mapping[str, Any], params: Mapping[str, Decimal] | None = None) -> bool:
        """Whether the document's auto_unfreeze condition holds (unknown does not); False without one."""
        if self._auto_unfreeze is None:
            return False
        merged = {**self._params, **params} if params else self._params
        return self._auto_unfreeze(facts, merged) is True


def _step(rule: Rule, params: Mapping[str, Decimal]) -> _Step:
    fixed = MappingProxyType({name: params[name] for name in rule.params}) if rule.params else _EMPTY
    disabled = None if rule.enabled else RuleTrace(rule.id, False, False, _EMPTY, _EMPTY)
    return _Step(rule.id, rule.test, rule.outcome.severity, rule.facts, rule.params, fixed, disabled, rule)
