"""Credit profile: a grade from payment history, and the credit line the grade earns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from creditctl.domain.account import CreditAccount, CreditInputs, PaymentProfile
from creditctl.domain.credit import credit_limit, credit_terms, grade
from rules import PARAM_DEFAULTS

pytestmark = pytest.mark.unit


def profile(ratio: str = "1", days: int = 0) -> PaymentProfile:
    return PaymentProfile(max_overdue_days=days, on_time_ratio=Decimal(ratio))


class TestGrade:
    def test_neutral_profile_without_payment_records_is_grade_a(self) -> None:
        assert grade(PaymentProfile()) == "A"

    @pytest.mark.parametrize(
        ("ratio", "days", "expected"),
        [
            ("0.95", 0, "A"),
            ("0.95", 1, "B"),
            ("0.9499", 0, "B"),
            ("0.85", 30, "B"),
            ("0.85", 31, "C"),
            ("0.8499", 0, "C"),
            ("0.70", 60, "C"),
            ("0.70", 61, "D"),
            ("0.6999", 0, "D"),
            ("0", 0, "D"),
        ],
    )
    def test_grade_follows_on_time_ratio_and_worst_overdue_days(
        self, ratio: str, days: int, expected: str
    ) -> None:
        assert grade(profile(ratio, days)) == expected


class TestCreditLimit:
    def test_no_credit_line_until_an_administrator_grants_one(self) -> None:
        assert credit_limit(PARAM_DEFAULTS, "A") == Decimal("0.00")

    @pytest.mark.parametrize(
        ("grade_name", "expected"),
        [("A", "500.00"), ("B", "375.00"), ("C", "250.00"), ("D", "0.00")],
    )
    def test_base_limit_times_the_grade_multiplier(self, grade_name: str, expected: str) -> None:
        params = {**PARAM_DEFAULTS, "base_credit_limit": Decimal("500.00")}
        assert credit_limit(params, grade_name) == Decimal(expected)

    def test_rounds_down_to_the_fen_never_granting_a_fraction_more(self) -> None:
        params = {"base_credit_limit": Decimal("0.03"), "grade_multiplier_c": Decimal("0.50")}
        assert credit_limit(params, "C") == Decimal("0.01")

    def test_unknown_multiplier_grants_nothing(self) -> None:
        assert credit_limit({"base_credit_limit": Decimal("100")}, "A") == Decimal("0.00")

    def test_limit_has_two_places(self) -> None:
        limit = credit_limit({**PARAM_DEFAULTS, "base_credit_limit": Decimal("7")}, "A")
        assert str(limit) == "7.00"


class TestCreditTerms:
    NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

    def account(self, **inputs: object) -> CreditAccount:
        return CreditAccount(id=1, customer_code="c", sale_group_code="g", credit=CreditInputs(**inputs))  # type: ignore[arg-type]

    def test_the_account_base_replaces_the_rule_parameter(self) -> None:
        terms = credit_terms(self.account(base_limit=Decimal("1000.00")), PARAM_DEFAULTS, self.NOW)
        assert (terms.base_source, terms.limit) == ("account", Decimal("1000.00"))

    def test_the_cap_limits_to_a_factor_of_the_average_balance(self) -> None:
        params = {**PARAM_DEFAULTS, "avg_balance_cap_factor": Decimal("0.5")}
        account = self.account(base_limit=Decimal("1000.00"), average_balance=Decimal("600.00"))
        assert credit_terms(account, params, self.NOW).limit == Decimal("300.00")
        assert credit_terms(self.account(base_limit=Decimal("1000.00")), params, self.NOW).limit == 0

    def test_a_running_temporary_limit_raises_the_limit_until_it_ends(self) -> None:
        account = self.account(
            base_limit=Decimal("1000.00"),
            temporary_limit=Decimal("5000.00"),
            temporary_until=self.NOW + timedelta(hours=1),
        )
        assert credit_terms(account, PARAM_DEFAULTS, self.NOW).limit == Decimal("5000.00")
        later = self.NOW + timedelta(hours=1)
        assert credit_terms(account, PARAM_DEFAULTS, later).limit == Decimal("1000.00")

    def test_grade_bands_are_parameters(self) -> None:
        params = {**PARAM_DEFAULTS, "grade_a_max_overdue_days": Decimal("10")}
        assert grade(profile("1", 10), params) == "A"
        assert grade(profile("1", 10)) == "B"
