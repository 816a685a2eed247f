"""Bring a locked account up to date before anything is decided on it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from creditctl.domain.account import CreditAccount
from creditctl.domain.audit import SYSTEM, Actor
from creditctl.domain.balance import BalanceReport
from creditctl.domain.low_balance import rearm
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.balances import adopt_report
from creditctl.services.credit_profile import account_params, recompute_profile
from creditctl.services.hold_expiry import expire_due_holds
from creditctl.services.outcome import recheck_account_queue


def refresh_locked_account(
    uow: UnitOfWork,
    account: CreditAccount,
    report: BalanceReport | None,
    now: datetime,
    *,
    params: Mapping[str, Decimal] | None = None,
    actor: Actor = SYSTEM,
) -> None:
    """End holds past their expiry, take a newer balance, and stop counting settlements it includes;
    recompute the credit profile once its date has passed (the first time on a new UTC day); with a
    newer balance, evaluate the account's deferred orders again (oldest first, each approval taking its
    hold here, under the caller's lock; at most REQUEUE_LIMIT per adoption, the rest on the next).

    The common case (nothing due, no new snapshot, profile of today) runs no statement here."""
    if account.may_have_due_holds(now):
        expire_due_holds(uow, account, now)
    snapshot = adopt_report(account, report)
    if snapshot is not None:
        account.exposure -= uow.holds.stop_counting_settled(account.id, snapshot.fetched_at)
        uow.balance_history.add(account.id, snapshot)
    if account.credit.is_stale(now):
        if params is None:
            params = account_params(uow, account)
        recompute_profile(uow, account, params, now, trigger="daily", by="creditctl")
    if account.low_balance_alerted:  # money came back since the alert: the next fall alerts again
        rearm(account, params if params is not None else account_params(uow, account))
    if snapshot is not None:  # a newer balance: the account's deferred orders are evaluated again
        recheck_account_queue(uow, account, now, actor=actor)  # by whoever's request brought the balance
