"""Bring a locked account up to date before anything is decided on it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from creditctl.domain.account import CreditAccount
from creditctl.domain.assessment import effective_params
from creditctl.domain.balance import BalanceReport
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.balances import adopt_report
from creditctl.services.credit_profile import recompute_profile
from creditctl.services.outcome import recheck_account_queue


def refresh_locked_account(
    uow: UnitOfWork,
    account: CreditAccount,
    report: BalanceReport | None,
    now: datetime,
    *,
    params: Mapping[str, Decimal] | None = None,
) -> None:
    """End holds past their expiry, take a newer balance, and stop counting settlements it includes;
    recompute the credit profile once its date has passed (the first time on a new UTC day); with a
    newer balance, evaluate the account's deferred orders again (oldest first, each approval taking its
    hold here, under the caller's lock; at most REQUEUE_LIMIT per adoption, the rest on the next).

    The common case (nothing due, no new snapshot, profile of today) runs no statement here."""
    if account.may_have_due_holds(now):
        account.exposure -= uow.holds.expire_due(account.id, now)
    snapshot = adopt_report(account, report)
    if snapshot is not None:
        account.exposure -= uow.holds.stop_counting_settled(account.id, snapshot.fetched_at)
        uow.balance_history.add(account.id, snapshot)
    if account.credit.is_stale(now):
        if params is None:
            params = effective_params(uow.rule_sets.active().rules, account)
        recompute_profile(uow, account, params, now, trigger="daily", by="creditctl")
    if snapshot is not None:  # a newer balance: the account's deferred orders are evaluated again
        recheck_account_queue(uow, account, now)
