"""Rule messages: "{order.amount}"-style placeholders naming facts or params, checked when saved."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from operator import methodcaller
from string import Formatter
from typing import Any

from rules.facts import FACTS, FactType
from rules.problems import Problems

Render = Callable[[Mapping[str, Any], Mapping[str, Decimal]], str]
UNKNOWN = "unknown"


def _plain(value: object) -> str:
    return format(value, "f") if isinstance(value, Decimal) else str(value)


# How a placeholder renders a value of each type (None is always "unknown"): money with two places
# ("1999.98"), other Decimals without an exponent, the rest as themselves.
_SHOW: dict[FactType, Callable[[Any], str]] = {
    FactType.MONEY: methodcaller("__format__", ".2f"),
    FactType.RATIO: _plain,
    FactType.INTEGER: _plain,
    FactType.STRING: str,
    FactType.ENUM: str,
}


@dataclass(frozen=True, slots=True)
class _Slot:
    name: str
    kind: FactType
    is_fact: bool


@dataclass(frozen=True, slots=True)
class Template:
    """A checked message: `render(facts, params)`, and the params it names."""

    render: Render
    params: tuple[str, ...]


def compile_template(
    text: str, pointer: str, params: Mapping[str, FactType], problems: Problems
) -> Template | None:
    """Check every placeholder names a fact or declared param; return a renderer."""
    try:
        pieces = list(Formatter().parse(text))
    except ValueError as error:
        problems.add(pointer, f"message template is malformed: {error}")
        return None
    texts = [""]  # texts[i] comes before slots[i]; the last one ends the message
    slots: list[_Slot] = []
    for literal, name, spec, conversion in pieces:
        texts[-1] += literal
        if name is None:
            continue
        slot = _slot(name, params)
        if slot is None or spec or conversion:
            problems.add(pointer, f"placeholder {{{name}}} must name a fact or a param, with no format")
            continue
        slots.append(slot)
        texts.append("")
    named = tuple(dict.fromkeys(slot.name for slot in slots if not slot.is_fact))
    return Template(_renderer(texts[0], tuple(zip(slots, texts[1:], strict=True))), named)


def _slot(name: str, params: Mapping[str, FactType]) -> _Slot | None:
    if name in FACTS:
        return _Slot(name, FACTS[name].type, is_fact=True)
    if name in params:
        return _Slot(name, params[name], is_fact=False)
    return None


def _renderer(head: str, slots: tuple[tuple[_Slot, str], ...]) -> Render:
    # Joining pieces is half the cost of str.format, and a matched rule renders on every evaluation.
    if not slots:
        return lambda facts, params: head
    parts = tuple((slot.name, slot.is_fact, _SHOW[slot.kind], tail) for slot, tail in slots)

    def render(facts: Mapping[str, Any], params: Mapping[str, Decimal]) -> str:
        out = [head]
        for name, is_fact, shown, tail in parts:
            value = (facts if is_fact else params).get(name)
            out.append(UNKNOWN if value is None else shown(value))
            out.append(tail)
        return "".join(out)

    return render
