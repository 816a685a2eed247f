"""Credit profile: a grade from payment history and the credit limit it earns."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from creditctl.domain.account import PaymentProfile
from creditctl.domain.money import CENT

GRADES = ("A", "B", "C", "D")
# (minimum on-time ratio, maximum worst open overdue days) per grade, best first.
_GRADE_BANDS = (("A", Decimal("0.95"), 0), ("B", Decimal("0.85"), 30), ("C", Decimal("0.70"), 60))


def grade(payment: PaymentProfile) -> str:
    """A for a clean history, down to D; the neutral profile (no records) is A."""
    for name, min_ratio, max_days in _GRADE_BANDS:
        if payment.on_time_ratio >= min_ratio and payment.max_overdue_days <= max_days:
            return name
    return "D"


def credit_limit(params: Mapping[str, Decimal], grade_name: str) -> Decimal:
    """Base limit times the grade's multiplier, rounded down to the fen (never grant a fraction more)."""
    base = Decimal(params.get("base_credit_limit", 0))
    multiplier = Decimal(params.get(f"grade_multiplier_{grade_name.lower()}", 0))
    limit = (base * multiplier).quantize(CENT, rounding="ROUND_DOWN")
    return max(limit, Decimal("0.00"))
