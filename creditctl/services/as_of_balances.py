"""Balances stamped as of when their request left, on the database's clock.

An upstream reads its ledger some time after the request leaves and before the answer arrives, so the
only moment an answer is certainly as recent as is the moment the request was sent. A settled hold stops
counting only when a snapshot as of a later moment arrives (design.md): stamping at arrival would let a
settlement made while the answer was on the wire vanish from exposure before the balance reflects it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from creditctl.domain.balance import BalanceReport
from creditctl.ports.balance_provider import BalanceProvider
from creditctl.ports.clock import Clock


class AsOfBalanceProvider:
    """A BalanceProvider in front of one that calls the upstream, stamping each report with the database's
    time when its request left. The inner provider's own stamp is one instance's clock and is dropped.

    Put it directly around the provider that calls the upstream, never around one that may answer with a
    stored report (the shared report keeps the stamp its fetch was given)."""

    def __init__(self, inner: BalanceProvider, database_clock: Clock) -> None:
        self.inner = inner
        self.source = inner.source
        self._clock = database_clock

    def fetch(self, customer_code: str, *, timeout_s: float) -> BalanceReport:
        sent_at = self._clock.now()
        report = self.inner.fetch(customer_code, timeout_s=timeout_s)
        return replace(report, fetched_at=sent_at)

    def customers(self) -> list[str]:
        return self.inner.customers()

    def __getattr__(self, name: str) -> Any:
        """The inner provider's own tools (a fake's `set_balance`, a breaker's state) stay reachable."""
        if name == "inner":  # not yet set (copying, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)
