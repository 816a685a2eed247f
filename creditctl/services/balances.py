"""A balance a decision may use: the stored snapshot when young, else the upstream, else the fallback."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from creditctl.domain.account import CreditAccount
from creditctl.domain.balance import BalanceReport, BalanceSnapshot
from creditctl.domain.decision import Reason
from creditctl.ports.balance_provider import BalanceProvider, BalanceUnavailable
from creditctl.ports.unit_of_work import UnitOfWork

UPSTREAM_MESSAGES = {
    "UPSTREAM_TIMEOUT": "the balance service did not answer in time",
    "CIRCUIT_OPEN": "the balance service is failing; calls are paused",
    "RATE_LIMITED": "the balance service is rate limiting us",
    "UNKNOWN_CUSTOMER": "the balance service does not know this customer",
}


@dataclass(frozen=True, slots=True)
class Fetched:
    """The outcome of asking the upstream: a report, or why there is none."""

    report: BalanceReport | None
    error: Reason | None


def needs_refresh(account: CreditAccount | None, params: dict[str, Decimal], now: datetime) -> bool:
    """A snapshot younger than refresh_after_s is used as is; anything else is fetched again, and so is
    one already too old to rely on (max_balance_age_s set below refresh_after_s would otherwise defer every
    order until refresh_after_s passed)."""
    if account is None or account.snapshot is None:
        return True
    age = account.snapshot.age_s(now)
    return _older_than_refresh(account.snapshot.fetched_at, params, now) or age > int(
        params.get("max_balance_age_s", age)
    )


def _older_than_refresh(fetched_at: datetime, params: Mapping[str, Decimal], now: datetime) -> bool:
    """Elapsed time, not the rounded-up age a rule sees: rounded up, a snapshot 1.01 s old is "2 s old",
    so refresh_after_s=R would fetch every R-1 s and a refresh window could hold two upstream calls.
    (Rounding up is right for max_balance_age_s, where it errs on the safe side; here it only costs calls.)"""
    return (now - fetched_at).total_seconds() >= int(params.get("refresh_after_s", 0))


def young_report(report: BalanceReport | None, params: Mapping[str, Decimal], now: datetime) -> bool:
    """A kept answer younger than refresh_after_s tells which payer accounts the customer has, without
    asking again (as a young snapshot tells an account's balance)."""
    return report is not None and not _older_than_refresh(report.fetched_at, params, now)


def fetch_report(balances: BalanceProvider, customer_code: str, timeout_s: float) -> Fetched:
    """Ask the provider once; a failure becomes a reason a deferred decision can show."""
    try:
        return Fetched(balances.fetch(customer_code, timeout_s=timeout_s), None)
    except BalanceUnavailable as exc:
        message = UPSTREAM_MESSAGES.get(exc.code, "the balance service could not give a balance")
        return Fetched(None, Reason(rule="upstream", reason=exc.code, message=message))


def keep_report(uow: UnitOfWork, fetched: Fetched) -> None:
    """Keep an answer as the customer's newest (unless a newer one is), in a short transaction of its own
    (never the decision's: the kept row is one per customer, its accounts' decisions must not queue on it)."""
    if fetched.report is not None:
        with uow:
            uow.balance_reports.keep(fetched.report)
            uow.commit()


def adopt_report(account: CreditAccount, report: BalanceReport | None) -> BalanceSnapshot | None:
    """Apply the report's entry for this account; return the new snapshot if it was newer than ours."""
    if report is None:
        return None
    payer = report.for_sale_group(account.sale_group_code)
    if payer is None:
        return None
    snapshot = BalanceSnapshot(amount=payer.amount, fetched_at=report.fetched_at, source=report.source)
    return snapshot if account.adopt(payer, snapshot) else None
