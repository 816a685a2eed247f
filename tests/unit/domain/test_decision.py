"""Orders are fingerprinted so a replay is told apart from a reuse of the order id with another body."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from creditctl.domain.decision import Order
from creditctl.domain.money import parse_money

pytestmark = pytest.mark.unit


def order(**changes: Any) -> Order:
    fields: dict[str, Any] = {
        "order_id": "PO-1",
        "customer_code": "8800000001",
        "sale_group_code": "GA10",
        "amount": parse_money("100.00"),
        "channel": "web",
        "metadata": {"a": 1, "b": "x"},
    }
    fields.update(changes)
    return Order(**fields)


class TestFingerprint:
    def test_same_body_gives_the_same_digest(self) -> None:
        assert order().fingerprint() == order().fingerprint()
        assert len(order().fingerprint()) == 64

    def test_amount_written_with_or_without_decimals_is_the_same_body(self) -> None:
        whole, cents = parse_money("100"), parse_money("100.00")
        assert whole == cents
        assert order(amount=whole).fingerprint() == order(amount=cents).fingerprint()

    def test_metadata_key_order_does_not_matter(self) -> None:
        assert order(metadata={"b": "x", "a": 1}).fingerprint() == order().fingerprint()

    @pytest.mark.parametrize(
        "change",
        [
            {"amount": Decimal("100.01")},
            {"order_id": "PO-2"},
            {"customer_code": "8800000002"},
            {"sale_group_code": "GB20"},
            {"channel": None},
            {"metadata": None},
            {"metadata": {"a": 2, "b": "x"}},
        ],
    )
    def test_any_other_body_gives_another_digest(self, change: dict[str, Any]) -> None:
        assert order(**change).fingerprint() != order().fingerprint()

    def test_non_ascii_metadata_is_fingerprinted(self) -> None:
        assert (
            order(metadata={"备注": "海尔"}).fingerprint() == order(metadata={"备注": "海尔"}).fingerprint()
        )
