"""Money is exact: decimal strings in, two-place Decimals in the domain, integer fen at rest."""

from __future__ import annotations

from decimal import Decimal

import pytest

from creditctl.domain.money import CENT, MoneyError, fmt, from_fen, money, parse_money, to_fen

pytestmark = pytest.mark.unit

LARGEST = "99999999999999.99"
TWO_DECIMALS = "at most two decimals"


class TestParseMoney:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("1999.98", Decimal("1999.98")),
            ("100", Decimal("100.00")),
            ("0.5", Decimal("0.50")),
            ("0", Decimal("0.00")),
            ("-12.30", Decimal("-12.30")),
            (LARGEST, Decimal(LARGEST)),
        ],
    )
    def test_accepts_a_decimal_string_and_keeps_two_places(self, text: str, expected: Decimal) -> None:
        parsed = parse_money(text)
        assert parsed == expected
        assert parsed.as_tuple().exponent == -2

    def test_refuses_a_third_decimal_instead_of_rounding(self) -> None:
        with pytest.raises(MoneyError, match=TWO_DECIMALS):
            parse_money("1.005")

    @pytest.mark.parametrize("number", [10.5, 10, Decimal("10.50")])
    def test_refuses_a_json_number(self, number: object) -> None:
        with pytest.raises(MoneyError, match="not a JSON number"):
            parse_money(number)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "text",
        [
            "NaN",
            "nan",
            "Infinity",
            "-Infinity",
            "inf",
            "",
            " ",
            "1e3",
            "1E3",
            "1.5e2",
            "+1.00",
            "01.00",
            "1.",
            ".5",
        ],
    )
    def test_refuses_what_is_not_a_plain_decimal_string(self, text: str) -> None:
        with pytest.raises(MoneyError, match=TWO_DECIMALS):
            parse_money(text)

    def test_refuses_surrounding_whitespace(self) -> None:
        with pytest.raises(MoneyError, match=TWO_DECIMALS):
            parse_money(" 1.00")


class TestMoney:
    def test_quantizes_an_exact_value_to_two_places(self) -> None:
        assert money(Decimal("7.5")) == Decimal("7.50")
        assert money(3) == Decimal("3.00")

    def test_refuses_a_value_that_would_lose_digits(self) -> None:
        with pytest.raises(MoneyError, match=r"more than two decimals: 0\.001"):
            money(Decimal("0.001"))

    @pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity")])
    def test_refuses_a_value_that_is_not_finite(self, value: Decimal) -> None:
        with pytest.raises(MoneyError, match="not a finite exact amount"):
            money(value)

    def test_refuses_a_float(self) -> None:
        with pytest.raises(MoneyError, match="not a finite exact amount"):
            money(0.1)  # type: ignore[arg-type]

    def test_refuses_text_that_is_not_a_number(self) -> None:
        with pytest.raises(MoneyError, match="not a decimal amount: 'abc'"):
            money("abc")


class TestFen:
    def test_round_trips_the_largest_amount_exactly(self) -> None:
        fen = to_fen(Decimal(LARGEST))
        assert fen == 9_999_999_999_999_999
        assert isinstance(fen, int)
        assert from_fen(fen) == Decimal(LARGEST)
        assert str(from_fen(fen)) == LARGEST

    @pytest.mark.parametrize("text", ["0.00", "0.01", "0.10", "1999.98", "-5.55", "123456789.12"])
    def test_round_trips_every_cent(self, text: str) -> None:
        assert from_fen(to_fen(Decimal(text))) == Decimal(text)

    def test_from_fen_always_has_two_places(self) -> None:
        assert from_fen(100).as_tuple().exponent == -2
        assert str(from_fen(0)) == "0.00"
        assert from_fen(1) == CENT

    def test_to_fen_refuses_a_fraction_of_a_fen(self) -> None:
        with pytest.raises(MoneyError, match="more than two decimals"):
            to_fen(Decimal("0.005"))


class TestFmt:
    def test_formats_two_places_and_keeps_none(self) -> None:
        assert fmt(Decimal("5")) == "5.00"
        assert fmt(Decimal(LARGEST)) == LARGEST
        assert fmt(None) is None


class TestParseMoneyReadsTheWholeText:
    @pytest.mark.parametrize("text", ["100.00\n", "100\n", "1.5\n", "100.00\r", "100.00 ", "\n100.00"])
    def test_refuses_a_final_or_leading_newline(self, text: str) -> None:
        with pytest.raises(MoneyError, match=TWO_DECIMALS):
            parse_money(text)
