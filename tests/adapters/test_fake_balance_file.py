"""The fake provider's file (CREDITCTL_FAKE_BALANCES) is read as Haier's answer is: a customer whose
balance is not exact money fails with UPSTREAM_MALFORMED, the others are served; a file that is not JSON
fails every fetch until it is fixed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from adapters.fake.balance_provider import FakeBalanceProvider
from creditctl.ports.balance_provider import BalanceUnavailable

pytestmark = pytest.mark.adapters

GOOD, BAD = "8800000001", "8800000002"


def entry(balance: Any) -> dict[str, Any]:
    return {"saleGroupCode": "GA10", "payerAccountCode": "P", "payerAccountBalance": balance}


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    stamp = path.stat().st_mtime + 1  # a new mtime even within the file system's resolution
    os.utime(path, (stamp, stamp))


def malformed(provider: FakeBalanceProvider, code: str) -> BalanceUnavailable:
    with pytest.raises(BalanceUnavailable) as caught:
        provider.fetch(code, timeout_s=1)
    assert caught.value.code == "UPSTREAM_MALFORMED"
    return caught.value


@pytest.mark.parametrize(
    "raw",
    ['"1000.005"', "1000.005", '"-0.001"', "NaN", '"NaN"', '"Infinity"', '"1e30"', "1.5e-7", "null", '"x"'],
)
def test_a_balance_that_is_not_exact_money_fails_that_customer_only(tmp_path: Path, raw: str) -> None:
    path = tmp_path / "balances.json"
    write(
        path,
        f'{{"{GOOD}": [{json.dumps(entry("1000.00"))}], "{BAD}": [{{"saleGroupCode": "GA10", '
        f'"payerAccountBalance": {raw}}}]}}',
    )
    provider = FakeBalanceProvider(path=path)
    assert provider.customers() == [GOOD, BAD]
    error = malformed(provider, BAD)
    assert "entry 0" in error.message
    assert str(provider.fetch(GOOD, timeout_s=1).accounts[0].amount) == "1000.00"


def test_negative_and_exact_balances_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "balances.json"
    write(path, json.dumps({GOOD: [entry("-1520.75")], BAD: [entry(12)]}))
    provider = FakeBalanceProvider(path=path)
    assert str(provider.fetch(GOOD, timeout_s=1).accounts[0].amount) == "-1520.75"
    assert provider.fetch(BAD, timeout_s=1).accounts[0].amount == 12


def test_a_file_that_is_not_json_fails_every_fetch_until_fixed(tmp_path: Path) -> None:
    path = tmp_path / "balances.json"
    write(path, json.dumps({GOOD: [entry("1.00")]}))
    provider = FakeBalanceProvider(path=path)
    write(path, '{"8800000001": [')
    assert "not valid JSON" in malformed(provider, GOOD).message
    write(path, json.dumps({GOOD: [entry("2.00")]}))
    assert str(provider.fetch(GOOD, timeout_s=1).accounts[0].amount) == "2.00"


def test_loaded_data_with_a_float_is_refused_the_same_way() -> None:
    provider = FakeBalanceProvider({GOOD: [entry(0.1)]})
    assert "decimal string" in malformed(provider, GOOD).message
