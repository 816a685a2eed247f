"""Every balance answer shape, exact money, and the answers that must be refused as malformed."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from adapters.haier.envelope import MalformedAnswer, QueryRefused, load_json, parse_amount, parse_balances

from .conftest import ENTRIES, envelope

pytestmark = pytest.mark.adapters

ONE = ENTRIES[0]


def parse(text: str | bytes):
    return parse_balances(load_json(text.encode() if isinstance(text, str) else text))


def entry(balance: object) -> str:
    body = dict(ONE)
    body["payerAccountBalance"] = "__B__"
    return json.dumps([body]).replace('"__B__"', balance if isinstance(balance, str) else json.dumps(balance))


class TestShapes:
    @pytest.mark.parametrize(
        "doc",
        [
            envelope(ENTRIES),
            {"success": True, "data": ENTRIES},
            {"code": "success", "data": ENTRIES},
            {"data": ENTRIES},
            ENTRIES,
        ],
    )
    def test_lists_of_entries(self, doc: object) -> None:
        balances = parse(json.dumps(doc))
        assert [b.sale_group_code for b in balances] == ["1001", "1002"]
        assert [b.amount for b in balances] == [Decimal("1250000.00"), Decimal("38000.50")]
        assert balances[0].payer_account_name == "青岛示例"

    @pytest.mark.parametrize("doc", [envelope(ONE), {"data": ONE}, ONE])
    def test_single_entries(self, doc: object) -> None:
        (balance,) = parse(json.dumps(doc))
        assert (balance.sale_group_code, balance.payer_account_code) == ("1001", "P-1001")

    def test_an_empty_list_is_no_accounts_not_a_zero(self) -> None:
        assert parse(json.dumps(envelope([]))) == ()

    def test_names_may_be_missing_but_codes_may_not(self) -> None:
        (balance,) = parse('[{"saleGroupCode": 1001, "payerAccountCode": "P", "payerAccountBalance": 5}]')
        assert (balance.sale_group_code, balance.sale_group_name, balance.amount) == ("1001", "", Decimal(5))

    def test_a_byte_order_mark_is_tolerated(self) -> None:
        assert len(parse(b"\xef\xbb\xbf" + json.dumps(ENTRIES).encode())) == 2


class TestMoney:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ('"1999.98"', "1999.98"),
            ("1999.98", "1999.98"),
            ("0.1", "0.1"),
            ('"-1520.75"', "-1520.75"),
            ("-1520.75", "-1520.75"),
            ('"1999.980"', "1999.980"),
            ("1000.500", "1000.500"),
            ('"1E-2"', "0.01"),
            ("100", "100"),
            ('"1E+3"', "1E+3"),
            ('" 12.50 "', "12.50"),
            ('"-0.00"', "0.00"),
            ("-0.0", "0.0"),
            ('"999999999999.99"', "999999999999.99"),
        ],
    )
    def test_amounts_are_exact(self, raw: str, expected: str) -> None:
        (balance,) = parse(entry(raw))
        assert balance.amount == Decimal(expected)
        assert str(balance.amount) == expected
        assert not balance.amount.is_signed() or balance.amount < 0

    def test_a_json_number_never_passes_through_float(self) -> None:
        (balance,) = parse(entry("999999999999.10"))
        assert str(balance.amount) == "999999999999.10"  # float would say 999999999999.1

    @pytest.mark.parametrize(
        "raw", ['"1000.005"', "1000.005", '"-0.001"', "0.30000000000000004441", '"1E-7"', '"12.3456"']
    )
    def test_refuses_a_third_decimal_rather_than_rounding_it(self, raw: str) -> None:
        with pytest.raises(MalformedAnswer, match="more than two decimals"):
            parse(entry(raw))

    @pytest.mark.parametrize(
        "raw",
        [
            "NaN",
            "Infinity",
            "-Infinity",
            '"NaN"',
            '"sNaN"',
            '"Infinity"',
            '"1_000"',
            '"12,50"',
            '""',
            '"abc"',
            "null",
            "true",
            "[]",
            "{}",
            "1e400",
            '"1000000000000.01"',
            '"-99999999999999999999"',
            '"1e999999"',
            "1" + "0" * 5000,
        ],
    )
    def test_refuses_non_numbers_non_finite_and_implausible_amounts(self, raw: str) -> None:
        with pytest.raises(MalformedAnswer):
            parse(entry(raw))

    def test_parse_amount_refuses_float_input(self) -> None:
        with pytest.raises(MalformedAnswer):
            parse_amount(0.1)


class TestRefusals:
    def test_success_false_is_a_refusal_with_its_description(self) -> None:
        with pytest.raises(QueryRefused, match="customer password is incorrect") as caught:
            parse(json.dumps(envelope(None, success=False, description="customer password is incorrect")))
        assert caught.value.code == "FAIL"

    def test_an_error_code_without_success_is_a_refusal(self) -> None:
        with pytest.raises(QueryRefused):
            parse('{"code": "E500", "description": "boom", "data": null}')

    @pytest.mark.parametrize(
        "body",
        [
            b"",
            b"<html>502 Bad Gateway</html>",
            b'{"success": true, "data": [{"saleGroupCode": "10',
            b"\xff\xfe not utf-8",
            b'"a string"',
            b"42",
            b"null",
            b'{"success": true}',
            b'{"success": true, "data": null}',
            b'{"success": true, "data": "none"}',
            b'{"success": "true", "data": []}',
            b'{"unexpected": 1}',
            b"[1, 2]",
            b'[{"payerAccountCode": "P", "payerAccountBalance": "1"}]',
            b'[{"saleGroupCode": "1", "payerAccountBalance": "1"}]',
            b'[{"saleGroupCode": "1", "payerAccountCode": "P"}]',
            b'[{"saleGroupCode": "1", "payerAccountCode": "P", "payerAccountBalance": "1", '
            b'"saleGroupName": 7}]',
            b'[{"saleGroupCode": true, "payerAccountCode": "P", "payerAccountBalance": "1"}]',
            b"[" * 100_000 + b"]" * 100_000,
        ],
    )
    def test_malformed_answers(self, body: bytes) -> None:
        with pytest.raises(MalformedAnswer):
            parse(body)
