"""A balance provider for development and tests: Haier-shaped data from a JSON file or the built-in demo,
with switches to make it fail or be slow like the real upstream can.

What Haier's client refuses as malformed, the file is refused for too, per customer: a balance that is
not a decimal string or integer, not finite, above 1,000,000,000,000.00 or with a third decimal makes
that customer's fetches fail with UPSTREAM_MALFORMED (never a rounded or zero balance); a file that is
not JSON does so for every customer until it is fixed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from creditctl.domain.balance import BalanceReport, PayerBalance
from creditctl.domain.money import CENT, MAX_AMOUNT
from creditctl.ports.balance_provider import BalanceUnavailable
from creditctl.ports.clock import Clock, SystemClock

DEMO_FILE = Path(__file__).with_name("demo_balances.json")


class FakeBalanceProvider:
    """Serves balances from memory; `path` (if given) is re-read whenever the file changes."""

    source = "fake"

    def __init__(
        self,
        data: dict[str, list[dict[str, Any]]] | None = None,
        *,
        path: str | Path | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._lock = threading.Lock()
        self._path = Path(path) if path else None
        self._mtime = 0.0
        self._data: dict[str, list[PayerBalance] | str] = {}  # a str: why its entries are refused
        self._file_error: str | None = None
        self._clock = clock or SystemClock()
        self._sleep = sleep
        self.calls: list[str] = []
        self.failure: str | None = None
        self.delay_s = 0.0
        if data is not None:
            self.load(data)
        elif self._path is None:
            self._path = DEMO_FILE
        self._maybe_reload()

    def load(self, data: dict[str, list[dict[str, Any]]]) -> None:
        if not isinstance(data, dict):
            raise MalformedFile("the balance file is not an object of customer codes")
        parsed = {str(code): _entries(str(code), entries) for code, entries in data.items()}
        with self._lock:
            self._data = parsed
            self._file_error = None

    def set_balance(self, customer_code: str, sale_group_code: str, amount: Decimal | str) -> None:
        with self._lock:
            entries = self._data.get(customer_code)
            if not isinstance(entries, list):
                entries = self._data[customer_code] = []
            for i, e in enumerate(entries):
                if e.sale_group_code == sale_group_code:
                    entries[i] = PayerBalance(
                        e.sale_group_code,
                        e.sale_group_name,
                        e.payer_account_code,
                        e.payer_account_name,
                        Decimal(amount),
                    )
                    return
            entries.append(
                PayerBalance(sale_group_code, sale_group_code, customer_code, customer_code, Decimal(amount))
            )

    def fail_with(self, code: str | None) -> None:
        """Make every fetch raise BalanceUnavailable(code); None heals it."""
        self.failure = code

    def fetch(self, customer_code: str, *, timeout_s: float) -> BalanceReport:
        self._maybe_reload()
        self.calls.append(customer_code)
        if self.delay_s:
            self._sleep(min(self.delay_s, timeout_s))
            if self.delay_s > timeout_s:
                raise BalanceUnavailable("UPSTREAM_TIMEOUT", f"no answer within {timeout_s:.1f}s")
        if self.failure:
            raise BalanceUnavailable(self.failure, f"simulated upstream failure {self.failure}")
        with self._lock:
            entries, file_error = self._data.get(customer_code), self._file_error
        if file_error is not None:
            raise BalanceUnavailable(
                "UPSTREAM_MALFORMED", f"the fake balance file is unreadable: {file_error}"
            )
        if entries is None:
            raise BalanceUnavailable("UNKNOWN_CUSTOMER", "the upstream does not know this customer")
        if isinstance(entries, str):
            raise BalanceUnavailable("UPSTREAM_MALFORMED", f"balance answer unreadable: {entries}")
        return BalanceReport(customer_code, tuple(entries), self._now(), self.source)

    def customers(self) -> list[str]:
        self._maybe_reload()
        with self._lock:
            return sorted(self._data)

    def _now(self) -> datetime:
        return self._clock.now()

    def _maybe_reload(self) -> None:
        if self._path is None:
            return
        mtime = self._path.stat().st_mtime
        if mtime != self._mtime:
            self._mtime = mtime
            try:
                self.load(json.loads(self._path.read_text(encoding="utf-8"), parse_float=Decimal))
            except (ValueError, MalformedFile) as exc:  # not JSON, not UTF-8, not an object
                why = str(exc) if isinstance(exc, MalformedFile) else "it is not valid JSON"
                with self._lock:
                    self._data, self._file_error = {}, why


class MalformedFile(ValueError):
    """The balance file, or one customer's entries in it, cannot be read as Haier's answer."""


def _entries(customer_code: str, entries: Any) -> list[PayerBalance] | str:
    """The customer's payer balances, or why they are refused (the message names no value)."""
    if not isinstance(entries, list):
        return "the customer's entries are not a list"
    try:
        return [_entry(customer_code, e, i) for i, e in enumerate(entries)]
    except MalformedFile as exc:
        return str(exc)


def _entry(customer_code: str, e: Any, index: int) -> PayerBalance:
    if not isinstance(e, dict) or not e.get("saleGroupCode"):
        raise MalformedFile(f"entry {index} has no saleGroupCode")
    return PayerBalance(
        sale_group_code=str(e["saleGroupCode"]),
        sale_group_name=str(e.get("saleGroupName", "")),
        payer_account_code=str(e.get("payerAccountCode", customer_code)),
        payer_account_name=str(e.get("payerAccountName", "")),
        amount=_amount(e.get("payerAccountBalance"), index),
    )


def _amount(raw: Any, index: int) -> Decimal:
    """As Haier's answer is read: a decimal string or an integer, finite, plausible, exact in fen."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
        raise MalformedFile(f"entry {index} has no payerAccountBalance decimal string")
    try:
        amount = Decimal(raw.strip() if isinstance(raw, str) else raw)
    except InvalidOperation:
        raise MalformedFile(f"entry {index} has a payerAccountBalance that is not a decimal") from None
    if not amount.is_finite():
        raise MalformedFile(f"entry {index} has a payerAccountBalance that is not finite")
    if amount.copy_abs() > MAX_AMOUNT:
        raise MalformedFile(f"entry {index} has an implausibly large payerAccountBalance")
    if amount.quantize(CENT) != amount:
        raise MalformedFile(f"entry {index} has a payerAccountBalance with more than two decimals")
    return amount.copy_abs() if amount.is_zero() else amount
