"""Rule messages: "{order.amount}"-style placeholders naming facts or params, checked when saved.

A message is rendered from the values its placeholders name (`show(values)`), so an evaluation can
keep those values and render only when someone reads the message (rules.results.Match).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_HALF_EVEN, Context, Decimal
from string import Formatter
from typing import Any

from rules.facts import FACTS, FactType
from rules.problems import Problems

Render = Callable[[Mapping[str, Any], Mapping[str, Decimal]], str]
Show = Callable[[tuple[Any, ...]], str]
UNKNOWN = "unknown"

# format(value, ".2f") rounds with the calling thread's decimal context; a message rendered later than
# its evaluation (or in another thread) must not depend on it: half-even to cents, as the default does.
# And format() costs six times str(): money mostly has two places already, and then str() is the text
# (str() writes an exponent only as "E", after the digits, so "." third from the end means two places).
_CENTS = Decimal("0.01")
_TO_CENTS = Context(prec=MAX_PREC, rounding=ROUND_HALF_EVEN, Emax=MAX_EMAX, Emin=MIN_EMIN)


def _money(value: Any) -> str:
    if type(value) is Decimal:
        text = str(value)
        if text[-3:-2] == ".":
            return text
        if value.is_finite():
            return format(_TO_CENTS.quantize(value, _CENTS), "f")
    return format(value, ".2f")  # an int (exact), or what a caller passed against the catalogue


def _plain(value: object) -> str:
    if type(value) is Decimal:
        text = str(value)  # the same as format(value, "f") unless it has an exponent
        return text if "E" not in text and "e" not in text else format(value, "f")
    return format(value, "f") if isinstance(value, Decimal) else str(value)


# How a placeholder renders a value of each type (None is always "unknown"): money with two places
# ("1999.98"), other Decimals without an exponent, the rest as themselves.
_SHOW: dict[FactType, Callable[[Any], str]] = {
    FactType.MONEY: _money,
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
    """A checked message: `render(facts, params)`, or `show(values)` of the `slots` (name, is_fact) in
    order; and the params it names."""

    render: Render
    params: tuple[str, ...]
    slots: tuple[tuple[str, bool], ...]
    show: Show


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
    show = _shower(texts[0], tuple(zip(slots, texts[1:], strict=True)))
    names = tuple((slot.name, slot.is_fact) for slot in slots)
    return Template(_renderer(names, show), named, names, show)


def _slot(name: str, params: Mapping[str, FactType]) -> _Slot | None:
    if name in FACTS:
        return _Slot(name, FACTS[name].type, is_fact=True)
    if name in params:
        return _Slot(name, params[name], is_fact=False)
    return None


def _shower(head: str, slots: tuple[tuple[_Slot, str], ...]) -> Show:
    # Joining pieces is half the cost of str.format.
    if not slots:
        return lambda values: head
    parts = tuple((_SHOW[slot.kind], tail) for slot, tail in slots)

    def show(values: tuple[Any, ...]) -> str:
        out = [head]
        for value, (shown, tail) in zip(values, parts, strict=True):
            out.append(UNKNOWN if value is None else shown(value))
            out.append(tail)
        return "".join(out)

    return show


def _renderer(names: tuple[tuple[str, bool], ...], show: Show) -> Render:
    def render(facts: Mapping[str, Any], params: Mapping[str, Decimal]) -> str:
        return show(tuple((facts if is_fact else params).get(name) for name, is_fact in names))

    return render
