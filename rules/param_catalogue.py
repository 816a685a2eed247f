"""The parameter catalogue: every parameter the service relies on, with its default and its bounds.

The bounds are checked here and nowhere else: a rule set document (rules.parser, so validation, publication
and `creditctl rules import`) and an account's overrides (rules.params.check_overrides, so the API, the
console and the CLI) all call `param_problem`. Each bound keeps a setting from stopping order intake (a
value the clock, the database or the money type cannot hold) or from leaking money (a hold that ends
before Haier's debit shows in a balance). The README's "Parameter bounds" table says why for each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType

from rules.facts import FactType

MAX_MONEY = Decimal("1000000000000.00")  # the contract's ceiling (creditctl.domain.money.MAX_AMOUNT)
PLACES = {FactType.INTEGER: 0, FactType.MONEY: 2, FactType.RATIO: 4}
UNITS = {FactType.MONEY: "CNY", FactType.RATIO: "ratio"}
SUFFIX_UNITS = {"s": "seconds", "days": "days", "factor": "factor"}  # by the name's last word

# A hold lives at least an hour: the order is placed with Haier right after it is approved and Haier
# debits the payer account when it accepts the order (its APIs answer within 30 s, retried at most 3
# times: minutes, not hours), and a balance is relied on for at most MAX_BALANCE_AGE_S (30 minutes) after
# it was fetched. So an hour covers the debit and the oldest balance that may not show it yet.
MIN_HOLD_TTL_S = 3600
MAX_BALANCE_AGE_S = 1800
DAY_S = 86400


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """A parameter the service itself relies on; integers are whole numbers (seconds, days).

    `minimum` and `maximum` are inclusive; money has at most two places, ratios four."""

    name: str
    type: FactType
    default: Decimal
    description: str
    minimum: Decimal
    maximum: Decimal
    unit: str

    @property
    def places(self) -> int:
        """Decimal places a value may have."""
        return PLACES[self.type]

    def show(self, value: Decimal) -> str:
        """A value as the README and the messages write it: whole seconds, money with two places."""
        if self.type is FactType.INTEGER:
            return str(int(value))
        return format(value.quantize(Decimal(1).scaleb(-2)) if self.type is FactType.MONEY else value, "f")


Row = tuple[str, FactType, str, str, str, str]


def _specs(*rows: Row) -> Mapping[str, ParamSpec]:
    def spec(name: str, kind: FactType, default: str, low: str, high: str, text: str) -> ParamSpec:
        unit = SUFFIX_UNITS.get(name.rsplit("_", 1)[-1]) or UNITS[kind]
        return ParamSpec(name, kind, Decimal(default), text, Decimal(low), Decimal(high), unit)

    return MappingProxyType({row[0]: spec(*row) for row in rows})


_M, _I, _R = FactType.MONEY, FactType.INTEGER, FactType.RATIO
_MAX = str(MAX_MONEY)
_YEARS_10 = "3650"
KNOWN_PARAMS: Mapping[str, ParamSpec] = _specs(
    (
        "max_balance_age_s",
        _I,
        "1800",
        "1",
        str(MAX_BALANCE_AGE_S),
        "Older balances are not relied on (seconds).",
    ),
    (
        "refresh_after_s",
        _I,
        "300",
        "0",
        str(MAX_BALANCE_AGE_S),
        "Balances older than this are refreshed before deciding (seconds).",
    ),
    ("safety_margin", _M, "0.00", "0.00", _MAX, "Kept back from available (CNY)."),
    (
        "max_overdue_days",
        _I,
        "90",
        "0",
        _YEARS_10,
        "Overdue payments beyond this many days freeze the account.",
    ),
    (
        "single_order_review_amount",
        _M,
        "500000.00",
        "0.00",
        _MAX,
        "Orders above this go to manual review (CNY).",
    ),
    (
        "low_balance_threshold",
        _M,
        "10000.00",
        "0.00",
        _MAX,
        "Notify when available would drop below this (CNY).",
    ),
    (
        "low_balance_hysteresis",
        _M,
        "1000.00",
        "0.00",
        _MAX,
        "balance.low fires again only after available rose above threshold plus this (CNY).",
    ),
    ("base_credit_limit", _M, "0.00", "0.00", _MAX, "Credit line before the grade multiplier (CNY)."),
    (
        "deferral_ttl_s",
        _I,
        "86400",
        "60",
        str(30 * DAY_S),
        "A deferred order is blocked after this long (seconds).",
    ),
    (
        "hold_ttl_s",
        _I,
        "604800",
        str(MIN_HOLD_TTL_S),
        str(90 * DAY_S),
        "An unsettled hold expires after this long (seconds).",
    ),
    ("grade_multiplier_a", _R, "1.00", "0", "1", "Share of the base credit limit granted to grade A."),
    ("grade_multiplier_b", _R, "0.75", "0", "1", "Share of the base credit limit granted to grade B."),
    ("grade_multiplier_c", _R, "0.50", "0", "1", "Share of the base credit limit granted to grade C."),
    ("grade_multiplier_d", _R, "0.00", "0", "1", "Share of the base credit limit granted to grade D."),
    ("grade_a_min_on_time_ratio", _R, "0.95", "0", "1", "Grade A needs at least this on-time ratio."),
    (
        "grade_a_max_overdue_days",
        _I,
        "0",
        "0",
        _YEARS_10,
        "Grade A allows at most this many open overdue days.",
    ),
    ("grade_b_min_on_time_ratio", _R, "0.85", "0", "1", "Grade B needs at least this on-time ratio."),
    (
        "grade_b_max_overdue_days",
        _I,
        "30",
        "0",
        _YEARS_10,
        "Grade B allows at most this many open overdue days.",
    ),
    ("grade_c_min_on_time_ratio", _R, "0.70", "0", "1", "Grade C needs at least this on-time ratio."),
    (
        "grade_c_max_overdue_days",
        _I,
        "60",
        "0",
        _YEARS_10,
        "Grade C allows at most this many open overdue days.",
    ),
    (
        "payment_window_days",
        _I,
        "365",
        "1",
        _YEARS_10,
        "Invoices due within this many days count in on-time ratio.",
    ),
    (
        "avg_balance_window_days",
        _I,
        "90",
        "1",
        _YEARS_10,
        "Days of balance snapshots averaged for the credit limit cap.",
    ),
    (
        "avg_balance_cap_factor",
        _R,
        "0",
        "0",
        "100",
        "Cap the limit at this factor of the average balance (0: off).",
    ),
)
PARAM_DEFAULTS: Mapping[str, Decimal] = MappingProxyType({n: s.default for n, s in KNOWN_PARAMS.items()})


def param_problem(spec: ParamSpec, value: Decimal) -> str | None:
    """What is wrong with `value` for this parameter (its places, its bounds), or None when it is good."""
    if spec.type is FactType.INTEGER and value != value.to_integral_value():
        return f"{spec.name!r} must be a whole number of {spec.unit}, got {value}"
    if spec.places and -value.as_tuple().exponent > spec.places:  # type: ignore[operator]
        return f"{spec.name!r} has at most {spec.places} decimal places, got {value}"
    if not spec.minimum <= value <= spec.maximum:
        low, high = spec.show(spec.minimum), spec.show(spec.maximum)
        return f"{spec.name!r} must be between {low} and {high} ({spec.unit}), got {value}"
    return None


def within_bounds(spec: ParamSpec, value: Decimal) -> Decimal:
    """The nearest value the bounds and places allow (for a version published before they existed)."""
    bounded = min(max(value, spec.minimum), spec.maximum)
    if -bounded.as_tuple().exponent > spec.places:  # type: ignore[operator]
        bounded = bounded.quantize(Decimal(1).scaleb(-spec.places))
    return bounded
