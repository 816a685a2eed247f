"""The report queries port: aggregates over stored decisions, holds, accounts and upstream calls.

Every method is one read (no lock taken, never blocks deciding); money comes back as integer fen,
times as aware UTC. `customers` None means every customer; a set limits rows to those customers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from creditctl.domain.account import CreditAccount
from creditctl.domain.report_period import OffsetSegment

Customers = frozenset[str] | None


@dataclass(frozen=True, slots=True)
class DayOutcome:
    day: date  # in the display zone
    outcome: str
    count: int
    amount_fen: int


@dataclass(frozen=True, slots=True)
class AccountOutcome:
    customer_code: str
    sale_group_code: str
    outcome: str
    count: int
    amount_fen: int


@dataclass(frozen=True, slots=True)
class ReasonCount:
    outcome: str
    reason: str
    decisions: int  # decisions of that outcome that gave the reason


@dataclass(frozen=True, slots=True)
class AccountExposure:
    account: CreditAccount
    exposure_fen: int  # holds that count at `now` (open and not past expiry, or settled and counting)
    open_holds: int


@dataclass(frozen=True, slots=True)
class ExpiringHold:
    hold_id: str
    order_id: str
    customer_code: str
    sale_group_code: str
    amount_fen: int  # what is still held: the amount less its settled parts
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class AgeBucketRow:
    bucket: int  # index into the edges passed in
    count: int
    amount_fen: int


@dataclass(frozen=True, slots=True)
class CallCount:
    operation: str
    error_code: str | None  # None: the call succeeded
    retry: bool  # attempt > 1
    count: int


class ReportQueries(Protocol):
    """Aggregates for reports, computed by the database (the primary, or a streaming replica)."""

    def as_of(self) -> datetime | None:
        """The moment the data read after this call are complete up to (the primary's clock): now on a
        primary; on a replica, what it has replayed. None: a replica that cannot say yet. Read it first:
        the figures read after it are at least that fresh, never claimed fresher than they are."""
        ...

    def decisions_by_day(self, segments: Sequence[OffsetSegment], customers: Customers) -> list[DayOutcome]:
        """Decisions by display-zone day (decided_at + its segment's offset) and outcome."""
        ...

    def decisions_by_account(
        self, start: datetime, end: datetime, customers: Customers
    ) -> list[AccountOutcome]:
        """Decisions with start <= decided_at < end by (customer, sales group, outcome)."""
        ...

    def reasons(
        self, start: datetime, end: datetime, outcomes: Sequence[str], customers: Customers
    ) -> list[ReasonCount]:
        """For decisions of `outcomes` in the period: how many gave each reason code."""
        ...

    def exposures(self, now: datetime, customers: Customers) -> list[AccountExposure]:
        """Every account with the holds that count against it at `now`, by customer and sales group."""
        ...

    def expiring_holds(
        self, now: datetime, until: datetime, customers: Customers, *, limit: int
    ) -> tuple[list[ExpiringHold], int, int]:
        """Open holds with now < expires_at <= until, soonest first (at most `limit`), and the count
        and fen of all of them."""
        ...

    def deferred_by_age(
        self, now: datetime, edges_s: Sequence[int], customers: Customers
    ) -> list[AgeBucketRow]:
        """Deferred orders whose deferral has not run out at `now`, bucketed by age (now - decided_at):
        bucket i holds ages in [edges_s[i], edges_s[i+1]) seconds, the last one is open-ended."""
        ...

    def upstream_counts(self, start: datetime, end: datetime, customers: Customers) -> list[CallCount]:
        """Upstream calls in the period by operation, error code and whether it was a retry. A limited
        `customers` sees only balance calls for those customers (token calls belong to no customer)."""
        ...

    def upstream_latency_rank(
        self, start: datetime, end: datetime, operation: str | None, rank: int, customers: Customers
    ) -> float | None:
        """The `rank`-th smallest latency (ms, 1-based) of the operation's calls (None: every
        operation's) in the period."""
        ...


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """One call sent to the upstream, as its adapter observed it."""

    called_at: datetime  # UTC, when the request left (this instance's clock: an observation)
    operation: str  # "token", "balance"
    config: str
    customer_code: str | None
    status: int | None  # HTTP status, None when no answer came
    latency_ms: float
    attempt: int  # 1 for the first try, 2.. for retries
    error_code: str | None  # stable code (UPSTREAM_TIMEOUT, ...), None on success


class UpstreamCallLog(Protocol):
    """Where the upstream adapter records its calls; never raises into the call it records."""

    def record(self, call: UpstreamCall) -> None:
        """Store one call (its own short transaction, outside any decision's)."""
        ...
