"""Rule messages: "{order.amount}"-style placeholders naming facts or params, checked when saved."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from string import Formatter
from typing import Any

from rules.facts import FACTS, FactType
from rules.problems import Problems

Render = Callable[[Mapping[str, Any], Mapping[str, Decimal]], str]
UNKNOWN = "unknown"


def show(value: object, kind: FactType) -> str:
    """Money with two places ("1999.98"), None as "unknown", everything else as itself."""
    if value is None:
        return UNKNOWN
    if kind is FactType.MONEY and isinstance(value, Decimal | int):
        return format(value, ".2f")
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


@dataclass(frozen=True, slots=True)
class _Slot:
    name: str
    kind: FactType
    is_fact: bool

    def text(self, facts: Mapping[str, Any], params: Mapping[str, Decimal]) -> str:
        value = facts.get(self.name) if self.is_fact else params.get(self.name)
        return show(value, self.kind)


def compile_template(
    text: str, pointer: str, params: Mapping[str, FactType], problems: Problems
) -> Render | None:
    """Check every placeholder names a fact or declared param; return a renderer."""
    try:
        pieces = list(Formatter().parse(text))
    except ValueError as error:
        problems.add(pointer, f"message template is malformed: {error}")
        return None
    pattern: list[str] = []
    slots: list[_Slot] = []
    for literal, name, spec, conversion in pieces:
        pattern.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is None:
            continue
        slot = _slot(name, params)
        if slot is None or spec or conversion:
            problems.add(pointer, f"placeholder {{{name}}} must name a fact or a param, with no format")
            continue
        pattern.append(f"{{{len(slots)}}}")
        slots.append(slot)
    return _renderer("".join(pattern), tuple(slots))


def _slot(name: str, params: Mapping[str, FactType]) -> _Slot | None:
    if name in FACTS:
        return _Slot(name, FACTS[name].type, is_fact=True)
    if name in params:
        return _Slot(name, params[name], is_fact=False)
    return None


def _renderer(pattern: str, slots: tuple[_Slot, ...]) -> Render:
    if not slots:
        return lambda facts, params: pattern.format()

    def render(facts: Mapping[str, Any], params: Mapping[str, Decimal]) -> str:
        return pattern.format(*[slot.text(facts, params) for slot in slots])

    return render
