"""The evaluation loop as it was before rules.compiler, kept as the reference the compiled code must equal.

It walks the rules calling each one's condition closure (rules.predicates, unchanged), renders every
match's message at once with `format(value, ".2f")` for money, and answers plain data: what the service
stores or answers of an evaluation, each value written so that Decimal("60") and Decimal("60.0") differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from string import Formatter
from typing import Any

from rules import FACTS, KNOWN_PARAMS, FactType, Outcome, RuleSet
from rules.numbers import parse_number

Plain = tuple[Any, ...]
_SEVERITY = {outcome.severity: outcome for outcome in Outcome}


def exact(value: object) -> object:
    """A value with its representation: Decimal("1.0") and Decimal("1.00") differ, True and 1 too."""
    if isinstance(value, Mapping):
        return tuple((key, exact(item)) for key, item in value.items())
    if isinstance(value, tuple | list):
        return tuple(exact(item) for item in value)
    return (type(value).__name__, str(value))


def plain(evaluation: Any) -> Plain:
    """An Evaluation as plain data: outcome, matches (message rendered), trace entries."""
    return (
        evaluation.outcome,
        tuple((m.rule_id, m.outcome, m.reason, m.message, m.actions) for m in evaluation.matches),
        tuple(
            (t.rule_id, t.matched, type(t.matched).__name__, t.enabled, exact(t.reads), exact(t.params))
            for t in evaluation.trace
        ),
    )


def reference_evaluate(
    rules: RuleSet, document: Mapping[str, Any], facts: Mapping[str, Any], params: Any = None
) -> Plain:
    """What RuleSet.evaluate answered before it was compiled, as `plain` writes it."""
    seen = facts if type(facts) is dict else dict(facts)
    merged, overridden = _with(rules, params)
    worst = 0
    matches = []
    trace = []
    for rule in rules.rules:
        if not rule.enabled:
            trace.append((rule.id, False, "bool", False, (), ()))
            continue
        matched = rule.test(seen, merged)
        if matched:
            message = _render(rule.message, document, seen, merged)
            matches.append((rule.id, rule.outcome, rule.reason, message, rule.actions))
            worst = max(worst, rule.outcome.severity)
        reads = {name: seen.get(name) for name in rule.facts}
        source = merged if overridden else rules.params
        shown = {name: source.get(name) for name in rule.params}
        trace.append((rule.id, matched, type(matched).__name__, True, exact(reads), exact(shown)))
    return (_SEVERITY[worst], tuple(matches), tuple(trace))


def reference_outcome(rules: RuleSet, facts: Mapping[str, Any], params: Any = None) -> Outcome:
    """What RuleSet.outcome answered before: a rule no more severe than the worst so far is not tested."""
    seen = facts if type(facts) is dict else dict(facts)
    merged = _with(rules, params)[0]
    worst = 0
    for rule in rules.rules:
        if rule.outcome.severity > worst and rule.enabled and rule.test(seen, merged):
            worst = rule.outcome.severity
    return _SEVERITY[worst]


def _with(rules: RuleSet, params: Any) -> tuple[Mapping[str, Decimal], bool]:
    own = rules.params
    named = list(dict.fromkeys(n for rule in rules.rules for n in (*rule.params, *rule.message_params)))
    if not params or not named:
        return own, False
    try:
        given = [params[name] for name in named]  # every one read, as itemgetter did
        if all(value is own[name] for value, name in zip(given, named, strict=True)):
            return own, False
    except KeyError:
        pass
    return {**own, **params}, True


def _render(
    text: str, document: Mapping[str, Any], facts: Mapping[str, Any], params: Mapping[str, Any]
) -> str:
    out = []
    for literal, name, _, _ in Formatter().parse(text):
        out.append(literal)
        if name is None:
            continue
        value = facts.get(name) if name in FACTS else params.get(name)
        kind = FACTS[name].type if name in FACTS else _param_type(name, document)
        if value is None:
            out.append("unknown")
        elif kind is FactType.MONEY:
            out.append(format(value, ".2f"))
        elif kind in (FactType.RATIO, FactType.INTEGER):
            out.append(format(value, "f") if isinstance(value, Decimal) else str(value))
        else:
            out.append(str(value))
    return "".join(out)


def _param_type(name: str, document: Mapping[str, Any]) -> FactType:
    """A declared param's type as rules.params gives it: the catalogue's, else integer for an int."""
    if name in KNOWN_PARAMS:
        return KNOWN_PARAMS[name].type
    return FactType.INTEGER if isinstance(parse_number(document["params"][name]), int) else FactType.MONEY
