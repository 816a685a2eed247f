"""Freezing and lifting under the account lock, each kept in the freeze history with its event."""

from __future__ import annotations

from datetime import datetime

from creditctl.domain.account import CreditAccount
from creditctl.domain.errors import UnknownAccount, UnknownCustomer
from creditctl.domain.freeze import Freeze, LiftedHow
from creditctl.ports.balance_provider import BalanceProvider
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.events import account_event
from creditctl.services.named_accounts import open_named_account


def record_freeze(uow: UnitOfWork, account: CreditAccount, *, reason: str, by: str, now: datetime) -> None:
    """Freeze the locked account: a history row and account.frozen, in the caller's transaction."""
    account.freeze(reason=reason, by=by, now=now)
    uow.freezes.open(account.id, reason=reason, by=by, now=now)
    account_event(uow, "account.frozen", account, now, reason=reason, frozen_by=by)


def record_lift(
    uow: UnitOfWork, account: CreditAccount, *, how: LiftedHow, by: str, reason: str | None, now: datetime
) -> None:
    """Lift the locked account's freeze: the history row closed and account.unfrozen (except when an
    administrator's freeze replaces a rule's: the account stays frozen, so no unfrozen event)."""
    previous = account.frozen_reason
    uow.freezes.lift(account.id, how=how, by=by, reason=reason, now=now)
    if how is LiftedHow.REPLACED:
        return
    account.unfreeze()
    account_event(
        uow, "account.unfrozen", account, now, how=how.value, by=by, reason=reason, frozen_reason=previous
    )


def account_freezes(
    customer_code: str,
    sale_group_code: str,
    *,
    scope: frozenset[str] | None,
    uow: UnitOfWork,
    balances: BalanceProvider | None = None,
) -> list[Freeze]:
    """The account's freezes, newest first (the open one, if any, first)."""
    if scope is not None and customer_code not in scope:
        raise UnknownCustomer(customer_code)
    open_named_account(uow, balances, customer_code, sale_group_code, scope)
    with uow:
        account = uow.accounts.get(customer_code, sale_group_code)
        if account is None:
            raise UnknownAccount(customer_code, sale_group_code)
        return uow.freezes.for_account(account.id)
