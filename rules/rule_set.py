"""A compiled rule set: evaluate facts against every rule and say which outcome wins, with a trace."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from decimal import Decimal
from operator import is_, itemgetter
from types import MappingProxyType
from typing import Any, NamedTuple

from rules import predicates
from rules.outcome import BY_SEVERITY, Outcome
from rules.reads import Reader, reader
from rules.results import Evaluation, Match, RuleTrace, TraceBuilder, make_evaluation
from rules.rule import Rule

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_new = object.__new__


class _Step(NamedTuple):
    """A rule prepared for the evaluation loop, unpacked in one go instead of attribute by attribute."""

    rule_id: str
    test: predicates.Test
    severity: int
    read_facts: Reader
    read_params: Reader | None
    fixed_params: Mapping[str, Decimal]  # the trace's params when no overrides are given
    disabled: RuleTrace | None  # the (constant) trace of a disabled rule
    rule: Rule


class RuleSet:
    """Compiled and immutable: build it with `parse_rule_set`, evaluate it as often as you like."""

    __slots__ = (
        "_auto_unfreeze",
        "_document",
        "_params",
        "_pick",
        "_picked",
        "_steps",
        "name",
        "params",
        "rules",
    )
    name: str
    params: Mapping[str, Decimal]
    rules: tuple[Rule, ...]
    _params: dict[str, Decimal]
    _document: dict[str, Any]
    _auto_unfreeze: predicates.Test | None
    _steps: tuple[_Step, ...]
    _pick: Callable[[Mapping[str, Decimal]], tuple[Decimal, ...]] | None
    _picked: tuple[Decimal, ...]

    def __init__(
        self,
        name: str,
        params: Mapping[str, Decimal],
        rules: tuple[Rule, ...],
        document: dict[str, Any],
        auto_unfreeze: predicates.Test | None = None,
    ) -> None:
        own = dict(params)
        named = tuple(dict.fromkeys(name for rule in rules for name in (*rule.params, *rule.message_params)))
        pick = _picker(named) if named else None
        fields: dict[str, Any] = {
            "name": name,
            "params": MappingProxyType(own),
            "rules": tuple(rules),
            "_params": own,
            "_document": copy.deepcopy(document),
            "_auto_unfreeze": auto_unfreeze,
            "_steps": tuple(_step(rule, own) for rule in rules),
            "_pick": pick,  # the values of every param a rule names, to spot overrides that matter
            "_picked": () if pick is None else pick(own),
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
        """Evaluate every rule; the most severe match wins, no match approves. `params` override ours."""
        seen = facts if type(facts) is dict else dict(facts)  # dict.get is what the closures call
        merged, overridden = self._with(params)
        get, get_param = seen.get, merged.get
        worst = 0
        matches: list[Match] = []
        trace: list[Any] = []  # RuleTraces (built as TraceBuilders, which mypy cannot follow)
        append = trace.append
        for rule_id, test, severity, read_facts, read_params, fixed, disabled, rule in self._steps:
            if disabled is not None:
                append(disabled)
                continue
            matched = test(seen, merged)
            if matched:
                matches.append(rule.match(seen, merged))
                if severity > worst:
                    worst = severity
            # RuleTrace(rule_id, matched, True, reads, params), built the fast way: see results.py
            step = _new(TraceBuilder)
            step.rule_id = rule_id
            step.matched = matched
            step.enabled = True
            step.reads = read_facts(get)
            step.params = read_params(get_param) if overridden and read_params else fixed
            step.__class__ = RuleTrace  # type: ignore[assignment]
            append(step)
        return make_evaluation(BY_SEVERITY[worst], tuple(matches), tuple(trace))

    def outcome(self, facts: Mapping[str, Any], params: Mapping[str, Decimal] | None = None) -> Outcome:
        """Just the outcome evaluate() would give: no matches, no trace, and a rule no more severe
        than the worst match so far is not tested. For replaying many facts (backtests); call
        evaluate() for the why of the few that matter."""
        seen = facts if type(facts) is dict else dict(facts)
        merged = self._with(params)[0]
        worst = 0
        for step in self._steps:
            if step.severity > worst and step.disabled is None and step.test(seen, merged):
                worst = step.severity
        return BY_SEVERITY[worst]

    def _with(self, params: Mapping[str, Decimal] | None) -> tuple[Mapping[str, Decimal], bool]:
        """The params to evaluate with, and whether they differ from ours in any the rules name.

        The service passes its account's params, which mostly are ours: the very same objects,
        so an identity check (cheaper than merging) lets the evaluation keep the fixed trace params.
        """
        if not params or self._pick is None:
            return self._params, False
        try:
            if all(map(is_, self._pick(params), self._picked)):
                return self._params, False
        except KeyError:
            pass
        return {**self._params, **params}, True

    def auto_unfreeze(self, facts: Mapping[str, Any], params: Mapping[str, Decimal] | None = None) -> bool:
        """Whether the document's auto_unfreeze condition holds (unknown does not); False without one."""
        if self._auto_unfreeze is None:
            return False
        merged = {**self._params, **params} if params else self._params
        return self._auto_unfreeze(facts, merged) is True


def _picker(names: tuple[str, ...]) -> Callable[[Mapping[str, Decimal]], tuple[Decimal, ...]]:
    """mapping -> the values of `names`, always as a tuple (itemgetter returns a bare value for one)."""
    if len(names) == 1:
        (name,) = names
        return lambda mapping: (mapping[name],)
    return itemgetter(*names)


def _step(rule: Rule, params: Mapping[str, Decimal]) -> _Step:
    fixed = MappingProxyType({name: params[name] for name in rule.params}) if rule.params else _EMPTY
    disabled = None if rule.enabled else RuleTrace(rule.id, False, False, _EMPTY, _EMPTY)
    read_params = reader(rule.params) if rule.params else None
    return _Step(
        rule.id, rule.test, rule.outcome.severity, reader(rule.facts), read_params, fixed, disabled, rule
    )
