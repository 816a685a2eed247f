"""Payment facts from payment records: the documented definitions, at a given UTC date."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from creditctl.domain.payment import PaymentRecord, payment_facts

pytestmark = pytest.mark.unit
TODAY = date(2026, 11, 30)


def rec(invoice: str, amount: str, due_days_ago: int, paid: str = "0.00", paid_days_ago: int | None = None):
    return PaymentRecord(
        invoice_id=invoice,
        amount=Decimal(amount),
        due_date=TODAY - timedelta(days=due_days_ago),
        paid_amount=Decimal(paid),
        paid_date=None if paid_days_ago is None else TODAY - timedelta(days=paid_days_ago),
    )


class TestPaymentFacts:
    def test_no_records_give_the_neutral_facts(self) -> None:
        facts = payment_facts([], TODAY, 365)
        assert (facts.max_overdue_days, facts.on_time_ratio, facts.overdue_amount) == (0, Decimal("1"), 0)

    def test_the_worst_open_invoice_and_the_unpaid_remainders_past_due(self) -> None:
        facts = payment_facts(
            [rec("a", "100.00", 40, "30.00", 45), rec("b", "50.00", 5), rec("c", "70.00", -3)], TODAY, 365
        )
        assert facts.max_overdue_days == 40
        assert facts.overdue_amount == Decimal("120.00")  # 70 of a, 50 of b; c is not due yet

    def test_on_time_means_paid_in_full_by_the_due_date_among_invoices_due_in_the_window(self) -> None:
        records = [
            rec("early", "10.00", 10, "10.00", 12),
            rec("late", "10.00", 10, "10.00", 5),
            rec("partial", "10.00", 10, "9.99", 12),
            rec("old", "10.00", 400, "10.00", 500),  # outside the window
            rec("due-today", "10.00", 0),  # not judged yet
        ]
        facts = payment_facts(records, TODAY, 365)
        assert (facts.judged, facts.on_time) == (3, 1)
        assert facts.on_time_ratio == Decimal("0.3333")

    def test_an_invoice_paid_late_in_full_is_not_overdue(self) -> None:
        assert payment_facts([rec("x", "10.00", 20, "10.00", 1)], TODAY, 365).max_overdue_days == 0


class TestPaymentRecordProblems:
    def test_paid_more_than_the_amount_is_refused(self) -> None:
        assert "paid_amount" in rec("x", "10.00", 1, "10.01", 1).problems(TODAY)

    def test_a_payment_needs_its_date_and_no_payment_has_none(self) -> None:
        assert "paid_date" in rec("x", "10.00", 1, "1.00").problems(TODAY)
        assert "paid_date" in rec("x", "10.00", 1, "0.00", 1).problems(TODAY)

    def test_a_future_payment_date_is_refused(self) -> None:
        assert "paid_date" in rec("x", "10.00", 1, "1.00", -1).problems(TODAY)

    def test_a_sane_record_has_no_problem(self) -> None:
        assert rec("x", "10.00", 1, "1.00", 0).problems(TODAY) == {}
