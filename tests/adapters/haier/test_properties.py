"""Properties over many generated values: exact money in, exact money out; secrets never survive a scrub."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.haier.envelope import MalformedAnswer, load_json, parse_balances
from adapters.haier.redaction import Redactor

pytestmark = pytest.mark.adapters

DETERMINISTIC = settings(derandomize=True, database=None, max_examples=200, deadline=None)
amounts = st.decimals(
    min_value=Decimal("-1000000000000"), max_value=Decimal("1000000000000"), places=2, allow_nan=False
)


@DETERMINISTIC
@given(amount=amounts, as_string=st.booleans())
def test_any_plausible_amount_comes_back_exactly(amount: Decimal, as_string: bool) -> None:
    raw = json.dumps(str(amount)) if as_string else str(amount)
    body = f'[{{"saleGroupCode": "1", "payerAccountCode": "P", "payerAccountBalance": {raw}}}]'
    (balance,) = parse_balances(load_json(body.encode()))
    assert balance.amount == amount
    assert not (balance.amount.is_zero() and balance.amount.is_signed())


@DETERMINISTIC
@given(amount=amounts, extra=st.integers(min_value=1, max_value=9), as_string=st.booleans())
def test_any_amount_with_a_third_decimal_is_malformed(amount: Decimal, extra: int, as_string: bool) -> None:
    odd = amount + Decimal(extra) / 1000
    raw = json.dumps(str(odd)) if as_string else str(odd)
    body = f'[{{"saleGroupCode": "1", "payerAccountCode": "P", "payerAccountBalance": {raw}}}]'
    with pytest.raises(MalformedAnswer):
        parse_balances(load_json(body.encode()))


secret_text = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FFF), min_size=4, max_size=40)


@DETERMINISTIC
@given(secret=secret_text, prefix=st.text(max_size=30), suffix=st.text(max_size=30))
def test_a_known_secret_never_survives_a_scrub(secret: str, prefix: str, suffix: str) -> None:
    redactor = Redactor([secret])
    assert secret not in redactor.scrub(prefix + secret + suffix)
