"""One upstream balance call per customer per database, however many decisions ask at once.

Inside a process, concurrent callers share one in-flight fetch. Across processes, a lease on the
customer's shared report row picks the one instance that calls the upstream; the others wait for
the report it stores. The fetch runs in the background: a caller whose deadline passes falls back,
while the fetch completes and refreshes the stored snapshots for the next decision.

A fetched report is applied to the customer's accounts (`on_report`) before the lease ends and the flight
lands: until then a caller that finds its snapshot stale joins the flight or waits on the lease, and after,
it finds its snapshot fresh. The stored report alone cannot stand in for that: it is reused for reuse_s
after its request left (snapshots are as of their request), which an answer slower than reuse_s never is,
so a caller in between would call the upstream a second time within the refresh window."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime, timedelta

from creditctl.domain.balance import BalanceReport
from creditctl.ports.balance_provider import BalanceProvider, BalanceUnavailable
from creditctl.ports.balance_reports import SharedBalanceReports
from creditctl.ports.clock import Clock

log = logging.getLogger("creditctl.balances")


class SharedBalanceProvider:
    """A BalanceProvider in front of another one, adding single flight and a shared, fresh report."""

    def __init__(
        self,
        inner: BalanceProvider,
        reports: SharedBalanceReports,
        clock: Clock,
        *,
        reuse_s: float = 1.0,
        error_reuse_s: float = 2.0,
        fetch_timeout_s: float = 30.0,
        poll_s: float = 0.05,
        on_report: Callable[[BalanceReport], None] | None = None,
        max_workers: int = 8,
    ) -> None:
        self.inner = inner
        self.source = inner.source
        self._reports = reports
        self._clock = clock
        self._reuse = timedelta(seconds=reuse_s)
        self._error_reuse = timedelta(seconds=error_reuse_s)
        self._fetch_timeout_s = fetch_timeout_s
        self._poll_s = poll_s
        self._on_report = on_report
        self._holder = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._inflight: dict[str, Future[BalanceReport]] = {}
        self._guard = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="balance-fetch")

    def customers(self) -> list[str]:
        return self.inner.customers()

    def fetch(self, customer_code: str, *, timeout_s: float) -> BalanceReport:
        with self._guard:
            future = self._inflight.get(customer_code)
            if future is None:
                future = Future()
                self._inflight[customer_code] = future
                self._pool.submit(self._lead, customer_code, future)
        try:
            return future.result(timeout=max(0.0, timeout_s))
        except FutureTimeout:
            raise BalanceUnavailable(
                "UPSTREAM_TIMEOUT", f"no balance within {timeout_s:.1f}s; the fetch goes on in the background"
            ) from None

    def _lead(self, customer_code: str, future: Future[BalanceReport]) -> None:
        report: BalanceReport | None = None
        error: BaseException | None = None
        try:
            report = self._obtain(customer_code)
        except BaseException as exc:
            error = exc
        # Land the flight before telling its callers: a caller that comes after it ended starts a new
        # flight instead of picking up this one's (by then old) outcome.
        with self._guard:
            if self._inflight.get(customer_code) is future:
                del self._inflight[customer_code]
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(report)  # type: ignore[arg-type]

    def _obtain(self, customer_code: str) -> BalanceReport:
        """The report to use: a fresh stored one, another instance's, or one fetched (and applied) here."""
        stored, error, error_at = self._reports.latest(customer_code)
        now = self._clock.now()
        reusable = self._reusable(stored, error, error_at, now)
        if reusable is not None:
            return reusable
        lease_until = now + timedelta(seconds=self._fetch_timeout_s + 5)
        if self._reports.try_lease(customer_code, self._holder, now, lease_until):
            # Another instance may have stored its answer and ended its lease between our read and
            # our lease: use that answer rather than calling the upstream a second time.
            stored, error, error_at = self._reports.latest(customer_code)
            try:
                reusable = self._reusable(stored, error, error_at, now)
            except BalanceUnavailable:
                assert error is not None and error_at is not None
                self._reports.fail(customer_code, self._holder, error, error_at)  # the same; ends our lease
                raise
            if reusable is not None:
                self._reports.store(reusable, self._holder)  # not newer: changes nothing, ends our lease
                return reusable
            return self._fetch_and_share(customer_code)
        return self._await_other_instance(customer_code, stored, now)

    def _reusable(
        self, stored: BalanceReport | None, error: str | None, error_at: datetime | None, now: datetime
    ) -> BalanceReport | None:
        """The stored report when fresh enough; raises when the upstream failed moments ago."""
        if stored is not None and now - stored.fetched_at <= self._reuse:
            return stored
        if error and error_at and now - error_at <= self._error_reuse:
            raise BalanceUnavailable(error, "the balance service failed moments ago; not asking again yet")
        return None

    def _fetch_and_share(self, customer_code: str) -> BalanceReport:
        try:
            report = self.inner.fetch(customer_code, timeout_s=self._fetch_timeout_s)
        except BalanceUnavailable as exc:
            self._reports.fail(customer_code, self._holder, exc.code, self._clock.now())
            raise
        except Exception:
            self._reports.fail(customer_code, self._holder, "SERVICE_UNAVAILABLE", self._clock.now())
            raise
        self._apply(report)  # under our lease, before the flight lands (see the module's docstring)
        self._reports.store(report, self._holder)
        return report

    def _apply(self, report: BalanceReport) -> None:
        if self._on_report is None:
            return
        try:
            self._on_report(report)
        except Exception:
            log.exception("storing the fetched balances of %s failed", report.customer_code)

    def _await_other_instance(
        self, customer_code: str, stored: BalanceReport | None, started: datetime
    ) -> BalanceReport:
        seen = stored.fetched_at if stored else None
        give_up = time.monotonic() + self._fetch_timeout_s + 5
        while time.monotonic() < give_up:
            time.sleep(self._poll_s)
            report, error, error_at = self._reports.latest(customer_code)
            if report is not None and (seen is None or report.fetched_at > seen):
                return report
            if error and error_at and error_at >= started:
                raise BalanceUnavailable(error, "another instance's balance fetch failed")
        raise BalanceUnavailable("UPSTREAM_TIMEOUT", "another instance's balance fetch did not finish")
