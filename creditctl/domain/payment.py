"""Payment records: one per invoice, with the amount paid so far, and the facts a decision reads from them.

Definitions (days are whole UTC days of the database's time `now`; `today` = now's UTC date):
- an invoice is *open* while paid_amount < amount; its *remainder* is amount - paid_amount;
- it is *overdue* when open and due_date < today; its days past due are today - due_date;
- payment.max_overdue_days: the largest days past due among overdue invoices (0 if none);
- payment.overdue_amount: the sum of the remainders of overdue invoices;
- payment.on_time_ratio: among invoices *judged in the window* (today - payment_window_days <= due_date
  < today), the share paid in full on or before their due date (paid_amount = amount and
  paid_date <= due_date); 1 when none is judged. Rounded down to four places.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_DOWN, Decimal

from creditctl.domain.account import PaymentProfile
from creditctl.domain.money import MAX_AMOUNT, ZERO

RATIO_PLACES = Decimal("0.0001")
EARLIEST_DATE = date(2000, 1, 1)
LATEST_DUE_DATE = date(2100, 12, 31)


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """An invoice and what was paid on it so far (cumulative), with the date of the latest payment."""

    invoice_id: str
    amount: Decimal
    due_date: date
    paid_amount: Decimal = ZERO
    paid_date: date | None = None

    @property
    def remainder(self) -> Decimal:
        return self.amount - self.paid_amount

    @property
    def is_open(self) -> bool:
        return self.paid_amount < self.amount

    @property
    def paid_on_time(self) -> bool:
        return not self.is_open and self.paid_date is not None and self.paid_date <= self.due_date

    def problems(self, today: date) -> dict[str, list[str]]:
        """What is wrong with this record, by field (empty: acceptable)."""
        out: dict[str, list[str]] = {}

        def bad(name: str, message: str) -> None:
            out.setdefault(name, []).append(message)

        if not self.invoice_id or len(self.invoice_id) > 64 or self.invoice_id != self.invoice_id.strip():
            bad("invoice_id", "must be 1 to 64 characters without surrounding spaces")
        if not ZERO < self.amount <= MAX_AMOUNT:
            bad("amount", "must be greater than 0.00 and at most 1000000000000.00")
        if self.paid_amount < 0:
            bad("paid_amount", "must not be negative")
        elif self.paid_amount > self.amount:
            bad("paid_amount", f"must not exceed the invoice amount {self.amount}")
        if not EARLIEST_DATE <= self.due_date <= LATEST_DUE_DATE:
            bad("due_date", f"must be between {EARLIEST_DATE} and {LATEST_DUE_DATE}")
        if self.paid_amount > 0 and self.paid_date is None:
            bad("paid_date", "is required when paid_amount is above 0.00")
        if self.paid_amount == 0 and self.paid_date is not None:
            bad("paid_date", "must be empty when nothing is paid (paid_amount 0.00)")
        if self.paid_date is not None and not EARLIEST_DATE <= self.paid_date <= today:
            bad("paid_date", f"must be between {EARLIEST_DATE} and today ({today}, UTC)")
        return out


def payment_facts(records: Iterable[PaymentRecord], today: date, window_days: int) -> PaymentProfile:
    """The three payment facts at `today` (see the module docstring for the exact definitions)."""
    window_start = today - timedelta(days=window_days)
    worst, overdue, judged, on_time = 0, ZERO, 0, 0
    for r in records:
        if r.is_open and r.due_date < today:
            worst = max(worst, (today - r.due_date).days)
            overdue += r.remainder
        if window_start <= r.due_date < today:
            judged += 1
            on_time += r.paid_on_time
    ratio = (Decimal(on_time) / judged).quantize(RATIO_PLACES, ROUND_DOWN) if judged else Decimal("1")
    return PaymentProfile(
        max_overdue_days=worst, on_time_ratio=ratio, overdue_amount=overdue, judged=judged, on_time=on_time
    )
