"""Balances as Haier reports them: one entry per payer account of a customer, with when and where from."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class PayerBalance:
    """One payer account's balance in one sales organisation, as the upstream reported it."""

    sale_group_code: str
    sale_group_name: str
    payer_account_code: str
    payer_account_name: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class BalanceReport:
    """Every payer account of one customer from one upstream answer."""

    customer_code: str
    accounts: tuple[PayerBalance, ...]
    fetched_at: datetime
    source: str

    def for_sale_group(self, sale_group_code: str) -> PayerBalance | None:
        return next((a for a in self.accounts if a.sale_group_code == sale_group_code), None)

    def age_s(self, now: datetime) -> int:
        """Whole seconds, rounded up, as a snapshot's age is."""
        return max(0, math.ceil((now - self.fetched_at).total_seconds()))


@dataclass(frozen=True, slots=True)
class BalanceSnapshot:
    """The balance a decision may rely on: amount, when it was fetched (UTC) and from which source."""

    amount: Decimal
    fetched_at: datetime
    source: str

    def age_s(self, now: datetime) -> int:
        """Whole seconds, rounded up: a balance 3.04 s old is 4 s old to a rule, never 3."""
        return max(0, math.ceil((now - self.fetched_at).total_seconds()))
