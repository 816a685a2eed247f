"""What an evaluation returns: the outcome, the rules that matched, and a trace of every rule."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal

from rules.outcome import Outcome


@dataclass(frozen=True, slots=True)
class Match:
    """A rule whose condition held; `message` is already rendered for a human."""

    rule_id: str
    outcome: Outcome
    reason: str
    message: str
    actions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RuleTrace:
    """How one rule went: matched True/False, or None when a fact it needed was missing.

    `reads` maps every fact the condition refers to onto the value seen and `params` every
    param it refers to; a disabled rule reads nothing, so both are empty for it.
    """

    rule_id: str
    matched: bool | None
    enabled: bool
    reads: Mapping[str, object]
    params: Mapping[str, Decimal]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The most severe matching outcome (approve if none), matches in rule order, and the trace."""

    outcome: Outcome
    matches: tuple[Match, ...]
    trace: tuple[RuleTrace, ...]


# Building frozen dataclasses fast. A dataclass __init__ writes each field through the frozen
# __setattr__; the evaluation loop builds one RuleTrace per rule per call, and that was a third of
# its time. Match and Evaluation are written slot by slot through their descriptors (half the cost);
# RuleTrace is filled in as a TraceBuilder, a plain class with the very same slots, whose class
# is then switched to RuleTrace (a third of the cost). Neither has __post_init__ or defaults to skip.
_new = object.__new__
_EVALUATION_SLOTS = tuple(getattr(Evaluation, field.name).__set__ for field in fields(Evaluation))
_MATCH_SLOTS = tuple(getattr(Match, field.name).__set__ for field in fields(Match))


class TraceBuilder:
    """RuleTrace's slots, writable: fill every one, then set `__class__ = RuleTrace`."""

    __slots__ = ("enabled", "matched", "params", "reads", "rule_id")  # CPython lays slots out sorted
    rule_id: str
    matched: bool | None
    enabled: bool
    reads: Mapping[str, object]
    params: Mapping[str, Decimal]


if set(TraceBuilder.__slots__) != {field.name for field in fields(RuleTrace)}:
    raise ImportError("TraceBuilder must have exactly RuleTrace's fields")


def make_evaluation(outcome: Outcome, matches: tuple[Match, ...], trace: tuple[RuleTrace, ...]) -> Evaluation:
    """Same as Evaluation(outcome, matches, trace), for the evaluation loop."""
    evaluation: Evaluation = _new(Evaluation)
    set_outcome, set_matches, set_trace = _EVALUATION_SLOTS
    set_outcome(evaluation, outcome)
    set_matches(evaluation, matches)
    set_trace(evaluation, trace)
    return evaluation


def make_match(rule_id: str, outcome: Outcome, reason: str, message: str, actions: tuple[str, ...]) -> Match:
    """Same as Match(rule_id, outcome, reason, message, actions), for the evaluation loop."""
    match: Match = _new(Match)
    set_rule_id, set_outcome, set_reason, set_message, set_actions = _MATCH_SLOTS
    set_rule_id(match, rule_id)
    set_outcome(match, outcome)
    set_reason(match, reason)
    set_message(match, message)
    set_actions(match, actions)
    return match
