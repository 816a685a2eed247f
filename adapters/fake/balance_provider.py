"""A balance provider for development and tests: Haier-shaped data from a JSON file or the built-in demo,
with switches to make it fail or be slow like the real upstream can."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from creditctl.domain.balance import BalanceReport, PayerBalance
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
        self._data: dict[str, list[PayerBalance]] = {}
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
        parsed = {code: [_entry(code, e) for e in entries] for code, entries in data.items()}
        with self._lock:
            self._data = parsed

    def set_balance(self, customer_code: str, sale_group_code: str, amount: Decimal | str) -> None:
        with self._lock:
            entries = self._data.setdefault(customer_code, [])
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
            entries = self._data.get(customer_code)
        if entries is None:
            raise BalanceUnavailable("UNKNOWN_CUSTOMER", "the upstream does not know this customer")
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
            self.load(json.loads(self._path.read_text(encoding="utf-8"), parse_float=Decimal))
            self._mtime = mtime


def _entry(customer_code: str, e: dict[str, Any]) -> PayerBalance:
    raw = e["payerAccountBalance"]
    if isinstance(raw, float):
        raise ValueError(f"{customer_code}: payerAccountBalance must be a decimal string, not a float")
    return PayerBalance(
        sale_group_code=str(e["saleGroupCode"]),
        sale_group_name=str(e.get("saleGroupName", "")),
        payer_account_code=str(e.get("payerAccountCode", customer_code)),
        payer_account_name=str(e.get("payerAccountName", "")),
        amount=Decimal(str(raw)),
    )
