"""AsOfBalanceProvider: a report is as of when its request left, on the database's clock, never later.

The Haier client (adapters/haier/balance_provider.py) lets concurrent callers for one customer share one
request in flight (single flight). A caller that joins a request someone else sent earlier gets an answer
whose upstream read may precede its own call: stamping that answer with the joiner's own call time would
make it look younger than it is (a settle between the read and the joiner's call would then be taken as
included in the balance). bootstrap wraps any provider it is given in AsOfBalanceProvider; only haier's own
wiring puts SharedBalanceProvider in front, which sends one call per customer at a time."""

from __future__ import annotations

import threading
from datetime import datetime
from decimal import Decimal

import pytest

from adapters.fake.clock import FakeClock
from adapters.haier.single_flight import SingleFlight
from creditctl.domain.balance import BalanceReport, PayerBalance
from creditctl.ports.balance_provider import BalanceUnavailable
from creditctl.services.as_of_balances import AsOfBalanceProvider

pytestmark = pytest.mark.unit

CUSTOMER = "8800000001"


class SharingUpstream:
    """One request per customer in flight, shared by every caller that comes meanwhile (as the Haier client
    does); the ledger is read when the request reaches the upstream, the answer held until `answer` is set.
    Stamps its reports with its own clock at arrival, as a client does (AsOfBalanceProvider drops that)."""

    source = "sharing"

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self._flights: SingleFlight[BalanceReport] = SingleFlight()
        self.requests: list[datetime] = []  # when each request read the ledger
        self.read = threading.Event()
        self.answer = threading.Event()

    def fetch(self, customer_code: str, *, timeout_s: float) -> BalanceReport:
        return self._flights.do(
            customer_code,
            lambda: self._request(customer_code),
            wait_s=timeout_s,
            on_timeout=lambda: BalanceUnavailable("UPSTREAM_TIMEOUT", "a shared request did not finish"),
        )

    def _request(self, customer_code: str) -> BalanceReport:
        self.requests.append(self._clock.now())
        self.read.set()
        assert self.answer.wait(10), "the test never let the answer go"
        entry = PayerBalance("GA10", "GA10", customer_code, customer_code, Decimal("1000.00"))
        return BalanceReport(customer_code, (entry,), self._clock.now(), self.source)

    def customers(self) -> list[str]:
        return [CUSTOMER]


def fetch_in_thread(
    provider: AsOfBalanceProvider, box: dict[str, BalanceReport], key: str
) -> threading.Thread:
    thread = threading.Thread(target=lambda: box.setdefault(key, provider.fetch(CUSTOMER, timeout_s=10)))
    thread.start()
    return thread


class TestAsOfBalanceProvider:
    def test_stamps_a_report_when_its_request_left_not_when_its_answer_arrived(self) -> None:
        clock = FakeClock()
        upstream = SharingUpstream(clock)
        provider = AsOfBalanceProvider(upstream, clock)
        sent_at, got = clock.now(), {}
        thread = fetch_in_thread(provider, got, "only")
        assert upstream.read.wait(5)
        clock.advance(7)
        upstream.answer.set()
        thread.join(5)
        assert got["only"].fetched_at == sent_at

    def test_a_caller_that_joins_an_earlier_request_gets_that_request_s_time_not_its_own(self) -> None:
        clock = FakeClock()
        upstream = SharingUpstream(clock)
        provider = AsOfBalanceProvider(upstream, clock)
        got: dict[str, BalanceReport] = {}
        first = fetch_in_thread(provider, got, "first")
        assert upstream.read.wait(5)
        clock.advance(5)  # the joiner asks 5 s after the shared request read the ledger
        joiner = fetch_in_thread(provider, got, "joiner")
        assert wait_for_waiter(upstream), "the second caller never joined the request in flight"
        clock.advance(2)
        upstream.answer.set()
        first.join(5)
        joiner.join(5)

        (read_at,) = upstream.requests  # one request, shared
        assert got["first"].fetched_at <= read_at
        assert got["joiner"].fetched_at <= read_at, (
            f"the joiner's answer is stamped {got['joiner'].fetched_at}, after its ledger read at {read_at}"
        )

    def test_calls_that_do_not_overlap_keep_their_own_times(self) -> None:
        clock = FakeClock()
        upstream = SharingUpstream(clock)
        upstream.answer.set()
        provider = AsOfBalanceProvider(upstream, clock)
        first = provider.fetch(CUSTOMER, timeout_s=1)
        clock.advance(30)
        second = provider.fetch(CUSTOMER, timeout_s=1)
        assert (second.fetched_at - first.fetched_at).total_seconds() == 30


def wait_for_waiter(upstream: SharingUpstream) -> bool:
    for _ in range(500):
        if upstream._flights.waiters(CUSTOMER) == 1:
            return True
        threading.Event().wait(0.01)
    return False
