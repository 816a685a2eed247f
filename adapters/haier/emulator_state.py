"""The emulator's memory: customers and balances, issued tokens, the fault switched on, call counts."""

from __future__ import annotations

import copy
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

FAULT_MODES = frozenset(
    {
        "none",
        "503",
        "500",
        "429",
        "401",
        "revoke_tokens",
        "timeout",
        "slow",
        "malformed",
        "reset",
        "wrong_password",
    }
)
FAULT_TARGETS = frozenset({"balance", "token", "all"})
TOKEN_LIFETIME_S = 3600

DEMO_CUSTOMERS: dict[str, dict[str, Any]] = {
    "8800633175": {
        "password": "demo-175",
        "accounts": [
            {
                "saleGroupCode": "1001",
                "saleGroupName": "海尔空调销售组织",
                "payerAccountCode": "8800633175",
                "payerAccountName": "青岛示例家电有限公司",
                "payerAccountBalance": "1250000.00",
            },
            {
                "saleGroupCode": "1002",
                "saleGroupName": "海尔冰箱销售组织",
                "payerAccountCode": "8800633175",
                "payerAccountName": "青岛示例家电有限公司",
                "payerAccountBalance": "38000.50",
            },
        ],
    },
    "8800633176": {
        "password": "demo-176",
        "accounts": [
            {
                "saleGroupCode": "1001",
                "saleGroupName": "海尔空调销售组织",
                "payerAccountCode": "8800633176",
                "payerAccountName": "济南示例电器商行",
                "payerAccountBalance": "-1520.75",
            }
        ],
    },
}


@dataclass
class Fault:
    mode: str = "none"
    target: str = "balance"
    delay_s: float | None = None
    remaining: int | None = None  # None: every call until switched off


@dataclass
class EmulatorState:
    """Thread-safe state of one emulator app."""

    customers: dict[str, dict[str, Any]]
    rate_limit_per_s: int = 100
    lock: threading.Lock = field(default_factory=threading.Lock)
    tokens: dict[str, float] = field(default_factory=dict)
    fault: Fault = field(default_factory=Fault)
    stats: dict[str, Any] = field(
        default_factory=lambda: {"token_calls": 0, "balance_calls": 0, "token_calls_by_path": {}}
    )
    windows: dict[str, deque[float]] = field(default_factory=dict)

    @classmethod
    def create(cls, customers: dict[str, dict[str, Any]] | None, rate_limit_per_s: int) -> EmulatorState:
        chosen = DEMO_CUSTOMERS if customers is None else customers
        return cls(customers=copy.deepcopy(chosen), rate_limit_per_s=rate_limit_per_s)

    def count(self, kind: str, path: str | None = None) -> None:
        with self.lock:
            self.stats[f"{kind}_calls"] += 1
            if path is not None:
                by_path = self.stats["token_calls_by_path"]
                by_path[path] = by_path.get(path, 0) + 1

    def throttled(self, interface: str) -> bool:
        """True when `interface` already had rate_limit_per_s calls in the last second."""
        now = time.monotonic()
        with self.lock:
            window = self.windows.setdefault(interface, deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= self.rate_limit_per_s:
                return True
            window.append(now)
            return False

    def issue_token(self) -> str:
        value = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[value] = time.monotonic() + TOKEN_LIFETIME_S
        return value

    def token_valid(self, value: str) -> bool:
        with self.lock:
            expiry = self.tokens.get(value)
        return expiry is not None and expiry > time.monotonic()

    def set_fault(self, mode: str, target: str, delay_s: float | None, count: int | None) -> None:
        with self.lock:
            if mode == "revoke_tokens":
                self.tokens.clear()
                self.fault = Fault()
            else:
                self.fault = Fault(mode, target, delay_s, count)

    def take_fault(self, interface: str) -> Fault | None:
        """The fault to apply to this call of `interface`, counting it down; None for a normal answer."""
        with self.lock:
            fault = self.fault
            if fault.mode == "none" or fault.target not in (interface, "all"):
                return None
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.fault = Fault()
            return fault

    def set_balance(self, customer_code: str, entry: dict[str, Any], password: str | None) -> None:
        with self.lock:
            customer = self.customers.setdefault(customer_code, {"password": password or "", "accounts": []})
            if password:
                customer["password"] = password
            for account in customer["accounts"]:
                if account["saleGroupCode"] == entry["saleGroupCode"]:
                    account.update(entry)
                    return
            customer["accounts"].append(entry)

    def accounts(self, customer_code: str) -> tuple[str, list[dict[str, Any]]] | None:
        with self.lock:
            customer = self.customers.get(customer_code)
            if customer is None:
                return None
            return customer["password"], copy.deepcopy(customer["accounts"])

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            stats = copy.deepcopy(self.stats)
            stats["fault"] = {
                "mode": self.fault.mode,
                "target": self.fault.target,
                "remaining": self.fault.remaining,
            }
            stats["tokens_live"] = len(self.tokens)
            return stats
