"""Comparison ops, three-valued logic and arithmetic, one rule at a time."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.unit.rules.builders import check, cmp

pytestmark = pytest.mark.unit

D = Decimal


class TestComparisonOps:
    @pytest.mark.parametrize(
        ("op", "amount", "expected"),
        [
            ("eq", "100.00", True),
            ("eq", "100.01", False),
            ("ne", "100.01", True),
            ("ne", "100", False),
            ("gt", "100.01", True),
            ("gt", "100.00", False),
            ("gte", "100.00", True),
            ("gte", "99.99", False),
            ("lt", "99.99", True),
            ("lt", "100.00", False),
            ("lte", "100.00", True),
            ("lte", "100.01", False),
        ],
    )
    def test_orders_money_exactly(self, op: str, amount: str, expected: bool) -> None:
        assert check(cmp("order.amount", op, "100.00"), {"order.amount": D(amount)}) is expected

    def test_decimal_comparison_is_exact_without_quantizing(self) -> None:
        when = cmp("order.amount", "gt", "100.00")
        assert check(when, {"order.amount": D("100.001")}) is True
        assert check(when, {"order.amount": D("100.0000")}) is False

    def test_integer_and_money_compare_numerically(self) -> None:
        assert check(cmp("order.amount", "eq", 5), {"order.amount": D("5.00")}) is True
        assert check(cmp("balance.age_s", "lt", "1800.5"), {"balance.age_s": 1800}) is True
        assert check(
            cmp("payment.on_time_ratio", "lt", {"fact": "balance.age_s"}),
            {
                "payment.on_time_ratio": D("0.5"),
                "balance.age_s": 1,
            },
        )

    def test_ratio_compares_with_a_decimal_literal(self) -> None:
        assert (
            check(cmp("payment.on_time_ratio", "gte", "0.95"), {"payment.on_time_ratio": D("0.95")}) is True
        )

    def test_in_and_not_in_match_strings(self) -> None:
        assert check(cmp("order.channel", "in", ["web", "edi"]), {"order.channel": "edi"}) is True
        assert check(cmp("order.channel", "in", ["web", "edi"]), {"order.channel": "app"}) is False
        assert check(cmp("order.channel", "not_in", ["web"]), {"order.channel": "app"}) is True
        assert check(cmp("order.channel", "not_in", ["web"]), {"order.channel": "web"}) is False

    def test_in_matches_numbers_by_value(self) -> None:
        assert check(cmp("now.hour", "in", [0, "1.00", 2]), {"now.hour": 1}) is True
        assert check(cmp("order.amount", "in", [5]), {"order.amount": D("5.00")}) is True

    def test_enum_equality(self) -> None:
        assert check(cmp("credit.grade", "eq", "B"), {"credit.grade": "B"}) is True
        assert check(cmp("credit.grade", "ne", "B"), {"credit.grade": "B"}) is False

    def test_string_compared_with_another_string_fact(self) -> None:
        when = cmp("order.channel", "eq", {"fact": "order.sale_group"})
        assert check(when, {"order.channel": "x", "order.sale_group": "x"}) is True

    def test_missing_and_present_are_never_unknown(self) -> None:
        assert check(cmp("balance.amount", "missing"), {"balance.amount": None}) is True
        assert check(cmp("balance.amount", "missing"), {}) is True
        assert check(cmp("balance.amount", "missing"), {"balance.amount": D(0)}) is False
        assert check(cmp("balance.amount", "present"), {"balance.amount": D(0)}) is True
        assert check(cmp("balance.amount", "present"), {}) is False

    def test_param_on_the_right(self) -> None:
        when = cmp("balance.age_s", "gt", {"param": "max_age"})
        assert check(when, {"balance.age_s": 61}, params={"max_age": 60}) is True
        assert check(when, {"balance.age_s": 60}, params={"max_age": 60}) is False


class TestThreeValuedLogic:
    def test_comparison_with_a_missing_fact_is_unknown(self) -> None:
        assert check(cmp("order.amount", "gt", 0), {}) is None
        assert check(cmp("order.amount", "gt", {"fact": "available"}), {"order.amount": D(1)}) is None
        assert check(cmp("order.channel", "in", ["web"]), {"order.channel": None}) is None

    def test_not_of_unknown_is_unknown(self) -> None:
        assert check({"not": cmp("order.amount", "gt", 0)}, {}) is None
        assert check({"not": cmp("order.amount", "gt", 0)}, {"order.amount": D(1)}) is False

    @pytest.mark.parametrize(
        ("amount", "available", "expected"),
        [(None, None, None), ("5", None, None), ("0", None, False), ("5", "5", True), ("0", "5", False)],
    )
    def test_all_is_false_if_any_false_else_unknown_if_any_unknown(
        self, amount: str | None, available: str | None, expected: bool | None
    ) -> None:
        when = {"all": [cmp("order.amount", "gt", 0), cmp("available", "gt", 0)]}
        facts = {"order.amount": amount and D(amount), "available": available and D(available)}
        assert check(when, facts) is expected

    @pytest.mark.parametrize(
        ("amount", "available", "expected"),
        [(None, None, None), ("5", None, True), ("0", None, None), ("0", "0", False), ("0", "5", True)],
    )
    def test_any_is_true_if_any_true_else_unknown_if_any_unknown(
        self, amount: str | None, available: str | None, expected: bool | None
    ) -> None:
        when = {"any": [cmp("order.amount", "gt", 0), cmp("available", "gt", 0)]}
        facts = {"order.amount": amount and D(amount), "available": available and D(available)}
        assert check(when, facts) is expected

    def test_groups_of_three_follow_the_same_rules(self) -> None:
        parts = [cmp("order.amount", "gt", 0), cmp("available", "gt", 0), cmp("exposure", "gt", 0)]
        facts = {"order.amount": D(1), "available": None, "exposure": D(0)}
        assert check({"all": parts}, facts) is False
        assert check({"any": parts}, facts) is True
        assert check({"any": parts}, {**facts, "order.amount": D(0)}) is None

    def test_unknown_rule_does_not_match(self) -> None:
        from tests.unit.rules.builders import one_rule

        evaluation = one_rule(cmp("order.amount", "gt", 0)).evaluate({})
        assert evaluation.matches == ()
        assert evaluation.trace[0].matched is None


class TestArithmetic:
    def test_add_sums_all_operands(self) -> None:
        when = cmp("order.amount", "gt", {"add": [{"fact": "available"}, {"fact": "credit.limit"}, "0.01"]})
        facts = {"available": D("100.00"), "credit.limit": D("50.00")}
        assert check(when, {**facts, "order.amount": D("150.02")}) is True
        assert check(when, {**facts, "order.amount": D("150.01")}) is False

    def test_sub_and_mul(self) -> None:
        assert check(
            cmp("order.amount", "eq", {"sub": [{"fact": "available"}, 1]}),
            {"order.amount": D("9.50"), "available": D("10.50")},
        )
        when = cmp("order.amount", "lte", {"mul": [{"fact": "credit.limit"}, {"param": "share"}]})
        assert (
            check(when, {"order.amount": D("75"), "credit.limit": D("100")}, params={"share": "0.75"}) is True
        )
        assert (
            check(when, {"order.amount": D("75.01"), "credit.limit": D("100")}, params={"share": "0.75"})
            is False
        )

    def test_arithmetic_is_exact_for_decimal_money(self) -> None:
        when = cmp("order.amount", "eq", {"add": ["0.10", "0.20"]})
        assert check(when, {"order.amount": D("0.30")}) is True

    def test_nested_arithmetic(self) -> None:
        total = {"add": [{"mul": [{"fact": "credit.limit"}, "0.5"]}, {"sub": [{"fact": "available"}, 10]}]}
        facts = {"credit.limit": D("100"), "available": D("30"), "order.amount": D("70")}
        assert check(cmp("order.amount", "eq", total), facts) is True

    def test_arithmetic_with_a_missing_operand_is_unknown(self) -> None:
        when = cmp("order.amount", "gt", {"add": [{"fact": "available"}, {"fact": "credit.limit"}]})
        assert check(when, {"order.amount": D(1), "available": None, "credit.limit": D(0)}) is None
        deep = cmp("order.amount", "gt", {"add": [{"sub": [{"fact": "available"}, 1]}, 2, 3]})
        assert check(deep, {"order.amount": D(1)}) is None

    def test_arithmetic_ignores_the_callers_decimal_context(self) -> None:
        import decimal

        when = cmp("order.amount", "eq", {"add": [{"fact": "available"}, "0.01"]})
        with decimal.localcontext() as ctx:
            ctx.prec = 3
            assert check(when, {"order.amount": D("123456.79"), "available": D("123456.78")}) is True
