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
# __setattr__, and evaluate() builds a RuleTrace per rule per call: that was a third of its time.
# Instead each is filled in as a *Builder, a plain class with the very same slots (so the same
# memory layout), whose __class__ is then switched to the dataclass: a third of the cost. None of
# these dataclasses has a __post_init__ or defaults that this could skip.
_new = object.__new__


class TraceBuilder:
    """RuleTrace's slots, writable: fill every one, then set `__class__ = RuleTrace`."""

    __slots__ = ("enabled", "matched", "params", "reads", "rule_id")  # CPython lays slots out sorted
    rule_id: str
    matched: bool | None
    enabled: bool
    reads: Mapping[str, object]
    params: Mapping[str, Decimal]


class _MatchBuilder:
    __slots__ = ("actions", "message", "outcome", "reason", "rule_id")
    rule_id: str
    outcome: Outcome
    reason: str
    message: str
    actions: tuple[str, ...]


class _EvaluationBuilder:
    __slots__ = ("matches", "outcome", "trace")
    outcome: Outcome
    matches: tuple[Match, ...]
    trace: tuple[RuleTrace, ...]


def _check_builders() -> None:
    for builder, built in (
        (TraceBuilder, RuleTrace),
        (_MatchBuilder, Match),
        (_EvaluationBuilder, Evaluation),
    ):
        if set(builder.__slots__) != {field.name for field in fields(built)}:
            raise ImportError(f"{builder.__name__} must have exactly the fields of {built.__name__}")


_check_builders()


def make_match(rule_id: str, outcome: Outcome, reason: str, message: str, actions: tuple[str, ...]) -> Match:
    """Same as Match(rule_id, outcome, reason, message, actions), faster."""
    match = _new(_MatchBuilder)
    match.rule_id = rule_id
    match.outcome = outcome
    match.reason = reason
    match.message = message
    match.actions = actions
    match.__class__ = Match  # type: ignore[assignment]
    return match  # type: ignore[return-value]


def make_evaluation(outcome: Outcome, matches: tuple[Match, ...], trace: tuple[RuleTrace, ...]) -> Evaluation:
    """Same as Evaluation(outcome, matches, trace), faster."""
    evaluation = _new(_EvaluationBuilder)
    evaluation.outcome = outcome
    evaluation.matches = matches
    evaluation.trace = trace
    evaluation.__class__ = Evaluation  # type: ignore[assignment]
    return evaluation  # type: ignore[return-value]
