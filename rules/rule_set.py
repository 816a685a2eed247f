"""A compiled rule set: evaluate facts against every rule and say which outcome wins, with a trace."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from rules import predicates
from rules.compiler import Decide, Evaluate, Plan, compile_rule_set
from rules.outcome import Outcome
from rules.results import Evaluation, RuleTrace
from rules.rule import Rule

_EMPTY: Mapping[str, Any] = MappingProxyType({})
# One rule set compiled at a time in a process: CPython 3.11's compile() is not safe in two threads at once
# (its AST validation keeps the recursion depth in shared state: "SystemError: AST constructor recursion
# depth mismatch", seen with 50 concurrent first decisions), and a set needs compiling only once anyway.
_COMPILING = threading.Lock()


class RuleSet:
    """Compiled and immutable: build it with `parse_rule_set`, evaluate it as often as you like."""

    __slots__ = ("_auto_unfreeze", "_document", "_evaluate", "_outcome", "_plan", "name", "params", "rules")
    name: str
    params: Mapping[str, Decimal]
    rules: tuple[Rule, ...]
    _document: dict[str, Any]
    _auto_unfreeze: predicates.Test | None
    _plan: Plan
    _evaluate: Evaluate | None  # compiled on first use: validating a document never pays for it
    _outcome: Decide | None

    def __init__(
        self,
        name: str,
        params: Mapping[str, Decimal],
        rules: tuple[Rule, ...],
        document: dict[str, Any],
        auto_unfreeze: predicates.Test | None = None,
    ) -> None:
        own = dict(params)
        rules = tuple(rules)
        # Every param a rule or its message names: an override of any other one changes nothing.
        named = tuple(dict.fromkeys(name for rule in rules for name in (*rule.params, *rule.message_params)))
        plan = Plan(
            rules,
            own,
            named,
            tuple(_fixed_params(rule, own) for rule in rules),
            tuple(
                None if rule.enabled else RuleTrace(rule.id, False, False, _EMPTY, _EMPTY) for rule in rules
            ),
        )
        fields: dict[str, Any] = {
            "name": name,
            "params": MappingProxyType(own),
            "rules": rules,
            "_document": copy.deepcopy(document),
            "_auto_unfreeze": auto_unfreeze,
            "_plan": plan,
            "_evaluate": None,
            "_outcome": None,
        }
        for key, value in fields.items():
            object.__setattr__(self, key, value)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError(f"a RuleSet is immutable; cannot set {key!r}")

    @property
    def document(self) -> dict[str, Any]:
        """The canonical JSON-able document (a fresh copy: the rule set itself never changes)."""
        return copy.deepcopy(self._document)

    def __repr__(self) -> str:
        return f"<RuleSet {self.name!r}: {len(self.rules)} rules>"

    def evaluate(self, facts: Mapping[str, Any], params: Mapping[str, Decimal] | None = None) -> Evaluation:
        """Evaluate every rule; the most severe match wins, no match approves. `params` override ours.

        The trace has every rule with the facts and params it read; a match's message is rendered when
        read. The service passes its account's params, which mostly are ours (the very same objects):
        then the trace's params are shared constant mappings; with an override that matters, fresh dicts.
        """
        run = self._evaluate
        if run is None:
            run = self._compile()[0]
        return run(facts, params)

    def outcome(self, facts: Mapping[str, Any], params: Mapping[str, Decimal] | None = None) -> Outcome:
        """Just the outcome evaluate() would give: no matches, no trace, and a rule no more severe
        than the worst match so far is not tested. For replaying many facts (backtests); call
        evaluate() for the why of the few that matter."""
        run = self._outcome
        if run is None:
            run = self._compile()[1]
        return run(facts, params)

    def _compile(self) -> tuple[Evaluate, Decide]:
        """Write this set's functions (rules.compiler), once, whichever threads meet it first."""
        with _COMPILING:
            if self._evaluate is not None and self._outcome is not None:  # another thread just did
                return self._evaluate, self._outcome
            compiled = compile_rule_set(self._plan)
            object.__setattr__(self, "_evaluate", compiled[0])
            object.__setattr__(self, "_outcome", compiled[1])
            return compiled

    def auto_unfreeze(self, facts: Mapping[str, Any], params: Mapping[str, Decimal] | None = None) -> bool:
        """Whether the document's auto_unfreeze condition holds (unknown does not); False without one."""
        if self._auto_unfreeze is None:
            return False
        own = self._plan.own
        merged = {**own, **params} if params else own
        return self._auto_unfreeze(facts, merged) is True


def _fixed_params(rule: Rule, params: Mapping[str, Decimal]) -> Mapping[str, Decimal]:
    """The params a rule's trace shows when nothing is overridden: one constant mapping per rule."""
    return MappingProxyType({name: params[name] for name in rule.params}) if rule.params else _EMPTY
