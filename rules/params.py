"""Rule set parameters: validation of a document's params and of an account's overrides.

The known ones, their defaults and bounds are the catalogue's (rules.param_catalogue)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from rules.facts import FACTS, FactType
from rules.numbers import describe, parse_number
from rules.param_catalogue import KNOWN_PARAMS, PARAM_DEFAULTS, ParamSpec, param_problem, within_bounds
from rules.problems import Problems, child

__all__ = [
    "KNOWN_PARAMS",
    "PARAM_DEFAULTS",
    "DeclaredParams",
    "ParamSpec",
    "check_overrides",
    "declare_params",
]

PARAM_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True, slots=True)
class DeclaredParams:
    """A document's params: values for evaluation, types for rendering, canonical JSON for storage."""

    values: dict[str, Decimal] = field(default_factory=dict)
    types: dict[str, FactType] = field(default_factory=dict)
    canonical: dict[str, int | str] = field(default_factory=dict)


def declare_params(node: Any, pointer: str, problems: Problems, *, stored: bool = False) -> DeclaredParams:
    """Validate the "params" object; bad entries are reported and left out.

    `stored`: the document of a version already published, perhaps before the bounds existed; a known
    param outside them is taken at the nearest bound instead of refused, so that the version still decides
    (and never with a value the bounds forbid)."""
    declared = DeclaredParams()
    if node is None:
        return declared
    if not isinstance(node, dict):
        problems.add(pointer, f"params must be an object, got {describe(node)}")
        return declared
    for name, raw in node.items():
        _declare_one(declared, name, raw, child(pointer, name), problems, stored)
    return declared


def _declare_one(
    declared: DeclaredParams, name: str, raw: Any, pointer: str, problems: Problems, stored: bool
) -> None:
    if not PARAM_NAME.fullmatch(name) or name in FACTS:
        problems.add(
            pointer, f"param name {name!r} must match ^[a-z][a-z0-9_]{{0,63}}$ and not be a fact name"
        )
        return
    number = parse_number(raw)
    if number is None:
        problems.add(pointer, f"param {name!r} must be an integer or a decimal string, got {describe(raw)}")
        return
    spec = KNOWN_PARAMS.get(name)
    kind = spec.type if spec else (FactType.INTEGER if isinstance(number, int) else FactType.MONEY)
    value = Decimal(number)
    if kind is FactType.INTEGER and value != value.to_integral_value():
        problems.add(pointer, f"param {name!r} must be a whole number, got {raw}")
        return
    problem = None if spec is None else param_problem(spec, value)
    if problem is not None and spec is not None:
        if not stored:
            problems.add(pointer, problem)
            return
        value = within_bounds(spec, value)
    declared.values[name] = value
    declared.types[name] = kind
    declared.canonical[name] = int(value) if kind is FactType.INTEGER else format(value, "f")


def check_overrides(node: Any, pointer: str = "") -> tuple[dict[str, int | str], list[tuple[str, str]]]:
    """Per-account overrides: only known params, each of its type and within its bounds; canonical values
    and every problem."""
    if not isinstance(node, dict):
        return {}, [(pointer, f"params must be an object, got {describe(node)}")]
    out: dict[str, int | str] = {}
    problems: list[tuple[str, str]] = []
    for name, raw in node.items():
        where = child(pointer, name)
        value, problem = _override(name, raw)
        if problem is not None:
            problems.append((where, problem))
        elif value is not None:
            out[name] = value
    return out, problems


def _override(name: str, raw: Any) -> tuple[int | str | None, str | None]:
    """One override's canonical value, or what is wrong with it."""
    spec = KNOWN_PARAMS.get(name)
    number = parse_number(raw) if not isinstance(raw, float) else None
    if spec is None:
        return None, f"unknown param {name!r}; known: {', '.join(KNOWN_PARAMS)}"
    if number is None:
        return None, f"{name!r} is {spec.type.value}: write an integer or a decimal string"
    if spec.type is FactType.INTEGER and (not isinstance(number, int) or isinstance(raw, str)):
        return None, f"{name!r} is a whole number (seconds or days), got {describe(raw)}"
    if spec.type is not FactType.INTEGER and not isinstance(raw, str):
        return None, f"{name!r} is {spec.type.value}: write it as a decimal string"
    problem = param_problem(spec, Decimal(number))
    if problem is not None:
        return None, problem
    return (int(number) if spec.type is FactType.INTEGER else format(Decimal(number), "f")), None
