"""Balances stamped as of when their request left, on the database's clock.

An upstream reads its ledger some time after the request leaves and before the answer arrives, so the
only moment an answer is certainly as recent as is the moment the request was sent. A settled hold stops
counting only when a snapshot as of a later moment arrives (design.md): stamping at arrival would let a
settlement made while the answer was on the wire vanish from exposure before the balance reflects it.

A provider may answer a caller with a request another caller sent earlier (the Haier client's single
flight): the answer is then as of that earlier request, not as of this caller's. So a report is stamped
with the earliest send time among the calls for the same customer that overlapped it, one of which sent
the request it answers: older than need be at times (a later refresh comes sooner), never younger."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from datetime import datetime
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
        self._guard = threading.Lock()
        self._open: dict[str, list[_Call]] = {}  # per customer, the calls under way

    def fetch(self, customer_code: str, *, timeout_s: float) -> BalanceReport:
        call = self._begin(customer_code)
        try:
            call.sent_at = self._clock.now()  # before the request can leave (or be joined)
            report = self.inner.fetch(customer_code, timeout_s=timeout_s)
        finally:
            self._end(customer_code, call)
        with self._guard:
            sent = [c.sent_at for c in (call, *call.overlapped) if c.sent_at is not None]
        return replace(report, fetched_at=min(sent))

    def _begin(self, customer_code: str) -> _Call:
        """Register a call before its time is read: every call under way now overlaps it, and so will
        every call that begins before it ends."""
        call = _Call()
        with self._guard:
            under_way = self._open.setdefault(customer_code, [])
            for other in under_way:
                other.overlapped.append(call)
                call.overlapped.append(other)
            under_way.append(call)
        return call

    def _end(self, customer_code: str, call: _Call) -> None:
        with self._guard:
            under_way = self._open[customer_code]
            under_way.remove(call)
            if not under_way:
                del self._open[customer_code]

    def customers(self) -> list[str]:
        return self.inner.customers()

    def __getattr__(self, name: str) -> Any:
        """The inner provider's own tools (a fake's `set_balance`, a breaker's state) stay reachable."""
        if name == "inner":  # not yet set (copying, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


@dataclass(eq=False)
class _Call:
    """One fetch under way: when it was sent (once read) and the calls for its customer it overlapped."""

    sent_at: datetime | None = None
    overlapped: list[_Call] = field(default_factory=list)
