"""The exposure report: exposure and available per account, holds expiring soon, deferred orders by age.

A picture of now (the database's clock), not of a period: exposure is what counts at this moment."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from creditctl.domain.account import CreditAccount
from creditctl.domain.assessment import effective_params
from creditctl.domain.credit import credit_terms
from creditctl.domain.errors import InvalidRequest, ReadReplicaNotReady
from creditctl.domain.money import ZERO, fmt, from_fen
from creditctl.ports.reports import Customers, ExpiringHold, ReportQueries
from creditctl.ports.unit_of_work import UnitOfWork
from rules import RuleSet

# Deferred orders by age (seconds since decided): under 1 h, 1-4 h, 4-12 h, 12-24 h, a day or more.
AGE_EDGES_S = (0, 3600, 4 * 3600, 12 * 3600, 24 * 3600)
AGE_LABELS = ("<1h", "1h-4h", "4h-12h", "12h-24h", ">=24h")
MAX_WITHIN_HOURS = 24 * 366
EXPIRING_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class AccountLine:
    account: CreditAccount
    exposure: Decimal
    available: Decimal | None  # None when the balance is missing or older than max_balance_age_s
    balance_usable: bool
    credit_limit: Decimal
    credit_grade: str
    open_holds: int


@dataclass(frozen=True, slots=True)
class AgeBucket:
    label: str
    min_age_s: int
    max_age_s: int | None
    count: int
    amount: Decimal


@dataclass(frozen=True)
class ExposureReport:
    as_of: datetime
    accounts: list[AccountLine]
    within_hours: int
    expiring: list[ExpiringHold]
    expiring_count: int
    expiring_amount: Decimal
    deferred_by_age: list[AgeBucket]

    @property
    def data_as_of(self) -> datetime:
        """A picture of `as_of`: the data hold every commit up to it (see consistent_now)."""
        return self.as_of

    @property
    def total_exposure(self) -> Decimal:
        return sum((a.exposure for a in self.accounts), ZERO)

    @property
    def total_available(self) -> Decimal:
        """Summed over accounts whose balance is usable."""
        return sum((a.available for a in self.accounts if a.available is not None), ZERO)


def exposure_report(
    customers: Customers, *, within_hours: int = 24, reports: ReportQueries, uow: UnitOfWork
) -> ExposureReport:
    """Every account's exposure and available as the account view computes them, now."""
    if not 1 <= within_hours <= MAX_WITHIN_HOURS:
        raise InvalidRequest(f"within_hours must be 1 to {MAX_WITHIN_HOURS}", field="within_hours")
    now = consistent_now(uow, reports)
    exposures = reports.exposures(now, customers)
    with uow:  # each account under its own rule set (assigned, else its customer's, else the default)
        lines = [
            account_line(e.account, e.exposure_fen, e.open_holds, rules_for(uow, e.account), now)
            for e in exposures
        ]
    until = now + timedelta(hours=within_hours)
    holds, count, fen = reports.expiring_holds(now, until, customers, limit=EXPIRING_LIMIT)
    rows = {r.bucket: r for r in reports.deferred_by_age(now, AGE_EDGES_S, customers)}
    buckets = [
        AgeBucket(
            label,
            AGE_EDGES_S[i],
            AGE_EDGES_S[i + 1] if i + 1 < len(AGE_EDGES_S) else None,
            rows[i].count if i in rows else 0,
            from_fen(rows[i].amount_fen if i in rows else 0),
        )
        for i, label in enumerate(AGE_LABELS)
    ]
    return ExposureReport(now, lines, within_hours, holds, count, from_fen(fen), buckets)


def consistent_now(uow: UnitOfWork, reports: ReportQueries) -> datetime:
    """The moment a picture of now is taken at: the database's now, or earlier when the report queries
    read a replica that has replayed less (holds and deferrals are then judged at that moment, so the
    picture is the one the replica's data show, and never claims data newer than it has)."""
    with uow:
        now = uow.now()
    data_as_of = reports.as_of()
    if data_as_of is None:
        raise ReadReplicaNotReady("the read replica has replayed nothing yet; try again in a few seconds")
    return min(now, data_as_of)


def rules_for(uow: UnitOfWork, account: CreditAccount) -> RuleSet:
    """The rules that decide for the account, as decisions and the account view read them (a per-process
    copy of the assignments: no statement per account)."""
    return uow.rule_sets.for_account(account.customer_code, account.sale_group_code).rule_set.rules


def account_line(
    account: CreditAccount, exposure_fen: int, open_holds: int, rules: RuleSet, now: datetime
) -> AccountLine:
    """One account's figures as the account view computes them (the accounts list shows the same)."""
    params = effective_params(rules, account)
    exposure = from_fen(exposure_fen)
    snap = account.snapshot
    age = snap.age_s(now) if snap else None
    usable = age is not None and age <= int(params["max_balance_age_s"])
    margin = Decimal(params.get("safety_margin", 0))
    terms = credit_terms(account, params, now)
    available = (snap.amount - exposure - margin) if (snap and usable) else None
    return AccountLine(account, exposure, available, usable, terms.limit, terms.grade, open_holds)


EXPOSURE_CSV_HEADER = (
    "section",
    "customer_code",
    "sale_group_code",
    "status",
    "balance",
    "exposure",
    "available",
    "credit_limit",
    "credit_grade",
    "open_holds",
    "hold_id",
    "order_id",
    "expires_at",
    "age_bucket",
    "count",
    "amount",
)


def exposure_csv_rows(report: ExposureReport) -> Iterator[list[str]]:
    """One line per account, per expiring hold, per age bucket, and the totals."""
    blank = [""] * len(EXPOSURE_CSV_HEADER)

    def line(**values: str) -> list[str]:
        row = list(blank)
        for key, value in values.items():
            row[EXPOSURE_CSV_HEADER.index(key)] = value
        return row

    for a in report.accounts:
        snap = a.account.snapshot
        yield line(
            section="account",
            customer_code=a.account.customer_code,
            sale_group_code=a.account.sale_group_code,
            status=str(a.account.status),
            balance=fmt(snap.amount) if snap else "",
            exposure=fmt(a.exposure) or "",
            available=fmt(a.available) or "",
            credit_limit=fmt(a.credit_limit) or "",
            credit_grade=a.credit_grade,
            open_holds=str(a.open_holds),
        )
    yield line(
        section="total",
        exposure=fmt(report.total_exposure) or "",
        available=fmt(report.total_available) or "",
    )
    for h in report.expiring:
        yield line(
            section="expiring_hold",
            customer_code=h.customer_code,
            sale_group_code=h.sale_group_code,
            hold_id=h.hold_id,
            order_id=h.order_id,
            expires_at=h.expires_at.isoformat(),
            amount=fmt(from_fen(h.amount_fen)) or "",
        )
    yield line(
        section="expiring_total", count=str(report.expiring_count), amount=fmt(report.expiring_amount) or ""
    )
    for b in report.deferred_by_age:
        yield line(section="deferred_age", age_bucket=b.label, count=str(b.count), amount=fmt(b.amount) or "")
