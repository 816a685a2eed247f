"""A fake upstream that keeps its own ledger, for the outside checker (reliability-tests.md, items 1 and 16).

Haier is the system of record: it debits an order when the order system settles it (the test's driver
debits here FIRST, then tells creditctl), and credits a payment when one arrives. creditctl only ever sees
the ledger through `fetch`, which behaves like the real Haier provider does today:

  * the ledger is read when the request arrives at the upstream;
  * the answer travels back for a while (a seeded random latency, or held by the test: `hold_next_answer`);
  * `fetched_at` is stamped with the *calling instance's* clock at the moment the answer is returned.

So a settle that lands while an answer is on the wire, or an instance whose clock is fast, produces a
snapshot that looks newer than it is. Each instance gets its own view, `upstream.provider(clock)`, all of
them reading the one ledger.

The ledger also records what the outside checker needs per account: the starting money, payments and
debits (tests/outside_checker.py).
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from creditctl.domain.balance import BalanceReport, PayerBalance
from creditctl.ports.balance_provider import BalanceUnavailable
from creditctl.ports.clock import Clock

Account = tuple[str, str]  # (customer code, sale group code)


@dataclass
class Flight:
    """One answer the test holds on the wire: `read` is set once the ledger has been read (`balance` is
    what was read), the answer is returned only after the test sets `release`.

    stamped=False: held before the answer arrives (it is stamped when released, like today's provider).
    stamped=True: the answer has arrived and been stamped; the caller is held before it goes on (as a
    decision may be, e.g. waiting for the account lock)."""

    customer_code: str | None
    stamped: bool = False
    read: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    balances: dict[str, Decimal] = field(default_factory=dict)

    def wait_read(self, timeout_s: float = 10.0) -> None:
        assert self.read.wait(timeout_s), "the held fetch never reached the upstream"


@dataclass
class LedgerTotals:
    start: Decimal = Decimal("0.00")
    payments: Decimal = Decimal("0.00")
    debits: Decimal = Decimal("0.00")
    lowest: Decimal | None = None  # the lowest balance the ledger ever showed (after a debit)

    @property
    def balance(self) -> Decimal:
        return self.start + self.payments - self.debits


class LedgerUpstream:
    """The upstream of record, shared by every instance: one ledger, read by each instance's provider."""

    source = "ledger"

    def __init__(
        self,
        *,
        latency_s: tuple[float, float] = (0.0, 0.0),
        seed: int = 0,
        failure_rate: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._lock = threading.Lock()
        self._accounts: dict[Account, LedgerTotals] = {}
        self._names: dict[str, list[str]] = defaultdict(list)  # customer -> its sale groups, in order
        self._rng = random.Random(seed)
        self._latency = latency_s
        self._failure_rate = failure_rate
        self._sleep = sleep
        self._flights: list[Flight] = []
        self.fetches = 0
        self.failures = 0

    # -- the ledger ------------------------------------------------------------------------------------

    def open_account(self, customer_code: str, sale_group_code: str, start: Decimal | str) -> None:
        with self._lock:
            key = (customer_code, sale_group_code)
            assert key not in self._accounts, f"{key} already open"
            self._accounts[key] = LedgerTotals(start=Decimal(start))
            self._names[customer_code].append(sale_group_code)

    def debit(self, customer_code: str, sale_group_code: str, amount: Decimal) -> None:
        """Haier debits a settled order (before the order system reports the settlement)."""
        with self._lock:
            t = self._accounts[(customer_code, sale_group_code)]
            t.debits += amount
            t.lowest = t.balance if t.lowest is None else min(t.lowest, t.balance)

    def credit(self, customer_code: str, sale_group_code: str, amount: Decimal) -> None:
        """A payment arrives."""
        with self._lock:
            self._accounts[(customer_code, sale_group_code)].payments += amount

    def totals(self) -> dict[Account, LedgerTotals]:
        with self._lock:
            return {
                k: LedgerTotals(v.start, v.payments, v.debits, v.lowest) for k, v in self._accounts.items()
            }

    def totals_of(self, account: Account) -> LedgerTotals:
        with self._lock:
            v = self._accounts[account]
            return LedgerTotals(v.start, v.payments, v.debits, v.lowest)

    def balance(self, customer_code: str, sale_group_code: str) -> Decimal:
        with self._lock:
            return self._accounts[(customer_code, sale_group_code)].balance

    def customers(self) -> list[str]:
        with self._lock:
            return sorted(self._names)

    # -- answers on the wire ---------------------------------------------------------------------------

    def hold_next_answer(self, customer_code: str | None = None, *, stamped: bool = False) -> Flight:
        """The next fetch (of `customer_code`, or any) is held until the test releases it."""
        flight = Flight(customer_code, stamped=stamped)
        with self._lock:
            self._flights.append(flight)
        return flight

    def provider(self, clock: Clock) -> LedgerProvider:
        """The BalanceProvider one instance uses: this ledger, stamped with that instance's clock."""
        return LedgerProvider(self, clock)

    # -- what a provider does --------------------------------------------------------------------------

    def _read(self, customer_code: str) -> tuple[tuple[PayerBalance, ...], float, bool, Flight | None]:
        """Under the lock: the ledger as of now, the latency of this answer, whether it fails, a hold."""
        with self._lock:
            self.fetches += 1
            groups = self._names.get(customer_code)
            if groups is None:
                raise BalanceUnavailable("UNKNOWN_CUSTOMER", "the upstream does not know this customer")
            entries = tuple(
                PayerBalance(g, g, customer_code, customer_code, self._accounts[(customer_code, g)].balance)
                for g in groups
            )
            latency = self._rng.uniform(*self._latency)
            fails = self._failure_rate > 0 and self._rng.random() < self._failure_rate
            if fails:
                self.failures += 1
            flight = next((f for f in self._flights if f.customer_code in (None, customer_code)), None)
            if flight is not None:
                self._flights.remove(flight)
                flight.balances = {e.sale_group_code: e.amount for e in entries}
        return entries, latency, fails, flight


class LedgerProvider:
    """One instance's view of the ledger (the BalanceProvider port)."""

    def __init__(self, upstream: LedgerUpstream, clock: Clock) -> None:
        self.upstream = upstream
        self.source = upstream.source
        self._clock = clock

    def fetch(self, customer_code: str, *, timeout_s: float) -> BalanceReport:
        # The ledger as the request lands; the answer is stamped below, when it arrives back.
        entries, latency, fails, flight = self.upstream._read(customer_code)
        if flight is not None and not flight.stamped:
            flight.read.set()
            assert flight.release.wait(30), "the test never released the held answer"
        if latency:
            self.upstream._sleep(min(latency, timeout_s))
            if latency > timeout_s:
                raise BalanceUnavailable("UPSTREAM_TIMEOUT", f"no answer within {timeout_s:.1f}s")
        if fails:
            raise BalanceUnavailable("SERVICE_UNAVAILABLE", "simulated upstream failure")
        report = BalanceReport(customer_code, entries, self._clock.now(), self.source)  # stamped on arrival
        if flight is not None and flight.stamped:
            flight.read.set()
            assert flight.release.wait(30), "the test never released the held answer"
        return report

    def customers(self) -> list[str]:
        return self.upstream.customers()
