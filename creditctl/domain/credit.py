"""Credit profile: a grade from payment history and the credit limit it earns.

grade: the first of A, B, C whose band holds (on_time_ratio >= grade_x_min_on_time_ratio and
max_overdue_days <= grade_x_max_overdue_days), else D.
limit: base x grade_multiplier_<grade>, rounded down to the fen; with avg_balance_cap_factor > 0 at most
factor x the average balance of the last avg_balance_window_days (0 without snapshots in the window); and
while an approved temporary limit runs, the larger of the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from creditctl.domain.account import CreditAccount, PaymentProfile
from creditctl.domain.money import CENT, ZERO
from rules import PARAM_DEFAULTS

GRADES = ("A", "B", "C", "D")


@dataclass(frozen=True, slots=True)
class GradeBand:
    grade: str
    min_on_time_ratio: Decimal | None  # None: D, the band for everything else
    max_overdue_days: int | None


def grade_bands(params: Mapping[str, Decimal] = PARAM_DEFAULTS) -> tuple[GradeBand, ...]:
    """A, B, C from the parameters (defaults where a set omits them), best first."""

    def p(name: str) -> Decimal:
        return Decimal(params.get(name, PARAM_DEFAULTS[name]))

    return tuple(
        GradeBand(g, p(f"grade_{g.lower()}_min_on_time_ratio"), int(p(f"grade_{g.lower()}_max_overdue_days")))
        for g in GRADES[:3]
    )


def matched_band(payment: PaymentProfile, params: Mapping[str, Decimal] = PARAM_DEFAULTS) -> GradeBand:
    for band in grade_bands(params):
        assert band.min_on_time_ratio is not None and band.max_overdue_days is not None
        if (
            payment.on_time_ratio >= band.min_on_time_ratio
            and payment.max_overdue_days <= band.max_overdue_days
        ):
            return band
    return GradeBand("D", None, None)


def grade(payment: PaymentProfile, params: Mapping[str, Decimal] = PARAM_DEFAULTS) -> str:
    """A for a clean history, down to D; the neutral profile (no records) is A."""
    return matched_band(payment, params).grade


def credit_limit(params: Mapping[str, Decimal], grade_name: str, base: Decimal | None = None) -> Decimal:
    """Base limit times the grade's multiplier, rounded down to the fen (never grant a fraction more)."""
    base = Decimal(params.get("base_credit_limit", 0)) if base is None else base
    multiplier = Decimal(params.get(f"grade_multiplier_{grade_name.lower()}", 0))
    limit = (base * multiplier).quantize(CENT, rounding=ROUND_DOWN)
    return max(limit, Decimal("0.00"))


@dataclass(frozen=True, slots=True)
class CreditTerms:
    """How credit.limit was reached, step by step."""

    band: GradeBand
    base: Decimal
    base_source: str  # "account" (set by an administrator) or "rule_set" (base_credit_limit)
    multiplier: Decimal
    graded: Decimal
    cap_factor: Decimal
    average_balance: Decimal | None
    cap: Decimal | None  # None: no cap
    profile_limit: Decimal
    temporary: Decimal | None
    limit: Decimal

    @property
    def grade(self) -> str:
        return self.band.grade


def credit_terms(account: CreditAccount, params: Mapping[str, Decimal], now: datetime) -> CreditTerms:
    """The account's credit limit at `now` from its stored inputs and the parameters. Pure, no I/O."""
    band = matched_band(account.payment, params)
    inputs = account.credit
    base = inputs.base_limit if inputs.base_limit is not None else Decimal(params.get("base_credit_limit", 0))
    graded = credit_limit(params, band.grade, base)
    factor = Decimal(params.get("avg_balance_cap_factor", 0))
    cap = None
    if factor > 0:
        average = inputs.average_balance if inputs.average_balance is not None else ZERO
        cap = max(ZERO, (average * factor).quantize(CENT, rounding=ROUND_DOWN))
    profile_limit = graded if cap is None else min(graded, cap)
    temporary = inputs.temporary_at(now)
    return CreditTerms(
        band=band,
        base=base,
        base_source="account" if inputs.base_limit is not None else "rule_set",
        multiplier=Decimal(params.get(f"grade_multiplier_{band.grade.lower()}", 0)),
        graded=graded,
        cap_factor=factor,
        average_balance=inputs.average_balance,
        cap=cap,
        profile_limit=profile_limit,
        temporary=temporary,
        limit=profile_limit if temporary is None else max(profile_limit, temporary),
    )


@dataclass(frozen=True, slots=True)
class ProfileChange:
    """One entry of an account's credit history: what changed it, its inputs and the result."""

    at: datetime
    trigger: str  # payments, base_limit, daily, limit_request, params
    by: str
    reason: str | None
    grade: str
    limit: Decimal
    inputs: dict[str, str | int | None]


def describe_inputs(account: CreditAccount, terms: CreditTerms) -> dict[str, str | int | None]:
    """The inputs and intermediate figures of `terms`, as strings, for the history."""

    def s(v: Decimal | None) -> str | None:
        return None if v is None else format(v, "f")

    p = account.payment
    return {
        "max_overdue_days": p.max_overdue_days,
        "on_time_ratio": s(p.on_time_ratio),
        "overdue_amount": s(p.overdue_amount),
        "base": s(terms.base),
        "base_source": terms.base_source,
        "multiplier": s(terms.multiplier),
        "average_balance": s(terms.average_balance),
        "cap_factor": s(terms.cap_factor),
        "cap": s(terms.cap),
        "profile_limit": s(terms.profile_limit),
        "temporary_limit": s(terms.temporary),
    }
