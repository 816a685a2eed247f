"""What an evaluation returns: the outcome, the rules that matched, and a trace of every rule."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import FrozenInstanceError, dataclass, fields
from decimal import Decimal
from typing import Any

from rules.outcome import Outcome


class Match:
    """A rule whose condition held, with its message for a human.

    The message is rendered when first read (a decision stores or answers it; most evaluations of a
    backtest or a release check never read it), from the values its placeholders named when the rule
    matched: `_show(_values)`. Immutable, and equal, hashed and shown as a dataclass of the five fields.
    """

    __slots__ = ("_message", "_show", "_values", "actions", "outcome", "reason", "rule_id")
    __match_args__ = ("rule_id", "outcome", "reason", "message", "actions")
    rule_id: str
    outcome: Outcome
    reason: str
    actions: tuple[str, ...]
    _message: str | None
    _show: Callable[[tuple[Any, ...]], str] | None
    _values: tuple[Any, ...]

    def __init__(
        self, rule_id: str, outcome: Outcome, reason: str, message: str, actions: tuple[str, ...]
    ) -> None:
        for name, value in (
            ("rule_id", rule_id),
            ("outcome", outcome),
            ("reason", reason),
            ("actions", actions),
            ("_message", message),
            ("_show", None),
            ("_values", ()),
        ):
            object.__setattr__(self, name, value)

    @property
    def message(self) -> str:
        """The rendered message (rendered once, then kept)."""
        message = self._message
        if message is None:
            assert self._show is not None
            message = self._show(self._values)
            object.__setattr__(self, "_message", message)  # the same text whichever thread renders it
        return message

    def _fields(self) -> tuple[str, Outcome, str, str, tuple[str, ...]]:
        return (self.rule_id, self.outcome, self.reason, self.message, self.actions)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Match)
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        names = ("rule_id", "outcome", "reason", "message", "actions")
        return "Match(" + ", ".join(f"{n}={v!r}" for n, v in zip(names, self._fields(), strict=True)) + ")"

    def __reduce__(self) -> tuple[type[Match], tuple[str, Outcome, str, str, tuple[str, ...]]]:
        """Copied and pickled as its five fields, the message rendered."""
        return (Match, self._fields())

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")


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


# Building frozen objects fast. A dataclass __init__ writes each field through the frozen
# __setattr__, and evaluate() builds a RuleTrace per rule per call: that was a third of its time.
# Instead each is filled in as a *Builder, a plain class with the very same slots (so the same
# memory layout), whose __class__ is then switched to the frozen class: a third of the cost. None of
# these classes has a __post_init__ or defaults that this could skip. rules.compiler writes these
# steps inline in the function it generates.
_new = object.__new__


class TraceBuilder:
    """RuleTrace's slots, writable: fill every one, then set `__class__ = RuleTrace`."""

    __slots__ = ("enabled", "matched", "params", "reads", "rule_id")  # CPython lays slots out sorted
    rule_id: str
    matched: bool | None
    enabled: bool
    reads: Mapping[str, object]
    params: Mapping[str, Decimal]


class MatchBuilder:
    """Match's slots, writable: fill every one, then set `__class__ = Match`."""

    __slots__ = ("_message", "_show", "_values", "actions", "outcome", "reason", "rule_id")
    rule_id: str
    outcome: Outcome
    reason: str
    actions: tuple[str, ...]
    _message: str | None
    _show: Callable[[tuple[Any, ...]], str] | None
    _values: tuple[Any, ...]


class EvaluationBuilder:
    """Evaluation's slots, writable: fill every one, then set `__class__ = Evaluation`."""

    __slots__ = ("matches", "outcome", "trace")
    outcome: Outcome
    matches: tuple[Match, ...]
    trace: tuple[RuleTrace, ...]


def _check_builders() -> None:
    for builder, built in ((TraceBuilder, RuleTrace), (EvaluationBuilder, Evaluation)):
        if set(builder.__slots__) != {field.name for field in fields(built)}:
            raise ImportError(f"{builder.__name__} must have exactly the fields of {built.__name__}")
    if set(MatchBuilder.__slots__) != set(Match.__slots__):
        raise ImportError("MatchBuilder must have exactly the slots of Match")


_check_builders()
