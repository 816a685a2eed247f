"""Rule set parameters: the known ones with defaults and types, and validation of a document's params."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from rules.facts import FACTS, FactType
from rules.numbers import describe, parse_number
from rules.problems import Problems, child

PARAM_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """A parameter the service itself relies on; integers are whole numbers (seconds, days)."""

    name: str
    type: FactType
    default: Decimal
    description: str


def _specs(*rows: tuple[str, FactType, str, str]) -> Mapping[str, ParamSpec]:
    return MappingProxyType(
        {name: ParamSpec(name, kind, Decimal(value), text) for name, kind, value, text in rows}
    )


_M, _I, _R = FactType.MONEY, FactType.INTEGER, FactType.RATIO
KNOWN_PARAMS: Mapping[str, ParamSpec] = _specs(
    ("max_balance_age_s", _I, "1800", "Older balances are not relied on (seconds)."),
    ("refresh_after_s", _I, "300", "Balances older than this are refreshed before deciding (seconds)."),
    ("safety_margin", _M, "0.00", "Kept back from available (CNY)."),
    ("max_overdue_days", _I, "90", "Overdue payments beyond this many days freeze the account."),
    ("single_order_review_amount", _M, "500000.00", "Orders above this go to manual review (CNY)."),
    ("low_balance_threshold", _M, "10000.00", "Notify when available would drop below this (CNY)."),
    (
        "low_balance_hysteresis",
        _M,
        "1000.00",
        "balance.low fires again only after available rose above threshold plus this (CNY).",
    ),
    ("base_credit_limit", _M, "0.00", "Credit line before the grade multiplier (CNY)."),
    ("deferral_ttl_s", _I, "86400", "A deferred order is blocked after this long (seconds)."),
    ("hold_ttl_s", _I, "604800", "An unsettled hold expires after this long (seconds)."),
    ("grade_multiplier_a", _R, "1.00", "Share of the base credit limit granted to grade A."),
    ("grade_multiplier_b", _R, "0.75", "Share of the base credit limit granted to grade B."),
    ("grade_multiplier_c", _R, "0.50", "Share of the base credit limit granted to grade C."),
    ("grade_multiplier_d", _R, "0.00", "Share of the base credit limit granted to grade D."),
    ("grade_a_min_on_time_ratio", _R, "0.95", "Grade A needs at least this on-time ratio."),
    ("grade_a_max_overdue_days", _I, "0", "Grade A allows at most this many open overdue days."),
    ("grade_b_min_on_time_ratio", _R, "0.85", "Grade B needs at least this on-time ratio."),
    ("grade_b_max_overdue_days", _I, "30", "Grade B allows at most this many open overdue days."),
    ("grade_c_min_on_time_ratio", _R, "0.70", "Grade C needs at least this on-time ratio."),
    ("grade_c_max_overdue_days", _I, "60", "Grade C allows at most this many open overdue days."),
    ("payment_window_days", _I, "365", "Invoices due within this many days count in on-time ratio."),
    ("avg_balance_window_days", _I, "90", "Days of balance snapshots averaged for the credit limit cap."),
    (
        "avg_balance_cap_factor",
        _R,
        "0",
        "Cap the limit at this factor of the average balance (0: off).",
    ),
)
PARAM_DEFAULTS: Mapping[str, Decimal] = MappingProxyType({n: s.default for n, s in KNOWN_PARAMS.items()})


@dataclass(frozen=True, slots=True)
class DeclaredParams:
    """A document's params: values for evaluation, types for rendering, canonical JSON for storage."""

    values: dict[str, Decimal] = field(default_factory=dict)
    types: dict[str, FactType] = field(default_factory=dict)
    canonical: dict[str, int | str] = field(default_factory=dict)


def declare_params(node: Any, pointer: str, problems: Problems) -> DeclaredParams:
    """Validate the "params" object; bad entries are reported and left out."""
    declared = DeclaredParams()
    if node is None:
        return declared
    if not isinstance(node, dict):
        problems.add(pointer, f"params must be an object, got {describe(node)}")
        return declared
    for name, raw in node.items():
        _declare_one(declared, name, raw, child(pointer, name), problems)
    return declared


def _declare_one(declared: DeclaredParams, name: str, raw: Any, pointer: str, problems: Problems) -> None:
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
    if spec is not None and value < 0:
        problems.add(pointer, f"param {name!r} must not be negative, got {raw}")
        return
    declared.values[name] = value
    declared.types[name] = kind
    declared.canonical[name] = int(value) if kind is FactType.INTEGER else format(value, "f")


def check_overrides(node: Any, pointer: str = "") -> tuple[dict[str, int | str], list[tuple[str, str]]]:
    """Per-account overrides: only known params, each of its type; canonical values and every problem."""
    if not isinstance(node, dict):
        return {}, [(pointer, f"params must be an object, got {describe(node)}")]
    out: dict[str, int | str] = {}
    problems: list[tuple[str, str]] = []
    for name, raw in node.items():
        where = child(pointer, name)
        spec = KNOWN_PARAMS.get(name)
        number = parse_number(raw) if not isinstance(raw, float) else None
        if spec is None:
            problems.append((where, f"unknown param {name!r}; known: {', '.join(KNOWN_PARAMS)}"))
        elif number is None:
            problems.append((where, f"{name!r} is {spec.type.value}: write an integer or a decimal string"))
        elif spec.type is FactType.INTEGER and (not isinstance(number, int) or isinstance(raw, str)):
            problems.append((where, f"{name!r} is a whole number (seconds or days), got {describe(raw)}"))
        elif spec.type is not FactType.INTEGER and not isinstance(raw, str):
            problems.append((where, f"{name!r} is {spec.type.value}: write it as a decimal string"))
        elif spec.type is FactType.MONEY and Decimal(number).as_tuple().exponent < -2:  # type: ignore[operator]
            problems.append((where, f"{name!r} is money: at most two decimal places, got {raw}"))
        elif Decimal(number) < 0:
            problems.append((where, f"{name!r} must not be negative, got {raw}"))
        else:
            out[name] = int(number) if spec.type is FactType.INTEGER else format(Decimal(number), "f")
    return out, problems
