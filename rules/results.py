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


_new = object.__new__
# Slot descriptors write straight into the slots; the frozen __setattr__ a dataclass __init__ goes
# through costs twice as much, and evaluate() builds one trace per rule per call.
_TRACE_SLOTS = tuple(getattr(RuleTrace, field.name).__set__ for field in fields(RuleTrace))
_set_rule_id, _set_matched, _set_enabled, _set_reads, _set_params = _TRACE_SLOTS


def make_trace(
    rule_id: str, matched: bool | None, enabled: bool, reads: Mapping[str, object], params: Mapping[str, Decimal]
) -> RuleTrace:
    """Same as RuleTrace(...), for the evaluation loop (no __post_init__ or defaults to skip)."""
    trace: RuleTrace = _new(RuleTrace)
    _set_rule_id(trace, rule_id)
    _set_matched(trace, matched)
    _set_enabled(trace, enabled)
    _set_reads(trace, reads)
    _set_params(trace, params)
    return trace
