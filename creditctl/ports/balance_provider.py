"""The balance provider port: every payer account balance of one customer, from the upstream of record."""

from __future__ import annotations

from typing import Protocol

from creditctl.domain.balance import BalanceReport
from creditctl.domain.errors import CreditctlError

# Stable codes a provider reports when it cannot give a balance (the Haier adapter maps HTTP faults
# onto these).
UPSTREAM_CODES = frozenset(
    {
        "AUTH_FAILED",
        "TOKEN_EXPIRED",
        "INVALID_CREDENTIALS",
        "BALANCE_QUERY_FAILED",
        "UPSTREAM_TIMEOUT",
        "UPSTREAM_MALFORMED",
        "RATE_LIMITED",
        "SERVICE_UNAVAILABLE",
        "CIRCUIT_OPEN",
        "UNKNOWN_CUSTOMER",
    }
)


class BalanceUnavailable(CreditctlError):
    """The upstream could not tell the balance. Never read as a zero balance.

    `code` is one of UPSTREAM_CODES; `sent` is False when the request never left (breaker open,
    rate limit), True when it was sent and the outcome is unknown or refused.
    """

    def __init__(self, code: str, message: str, *, sent: bool = True, retry_after_s: float | None = None):
        super().__init__(message)
        self.code = code
        self.sent = sent
        self.retry_after_s = retry_after_s


class BalanceProvider(Protocol):
    """Where balances come from: the fake in development and tests, Haier's JSH finance API in production."""

    source: str

    def fetch(self, customer_code: str, *, timeout_s: float) -> BalanceReport:
        """Every payer account of `customer_code`, amounts as Decimal CNY, `fetched_at` UTC.

        Answers within `timeout_s` or raises BalanceUnavailable (code UPSTREAM_TIMEOUT); raises
        BalanceUnavailable for any failure, including a customer the upstream does not know
        (code UNKNOWN_CUSTOMER). Never returns a made-up or partial balance.
        """
        ...

    def customers(self) -> list[str]:
        """The customer codes this provider is configured to serve (for demo data and checks)."""
        ...
