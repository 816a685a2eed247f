"""An account's holds with their lives (held, settled in parts, released, expired), newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from creditctl.domain.errors import UnknownAccount, UnknownCustomer
from creditctl.domain.hold import Hold
from creditctl.ports.balance_provider import BalanceProvider
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.named_accounts import open_named_account

HoldCursor = tuple[datetime, str]  # (created_at, id) of the last hold of a page


@dataclass(frozen=True, slots=True)
class HoldPage:
    items: list[Hold]
    next_cursor: HoldCursor | None


def list_holds(
    customer_code: str,
    sale_group_code: str,
    *,
    statuses: frozenset[str] | None,
    after: HoldCursor | None,
    limit: int,
    scope: frozenset[str] | None,
    uow: UnitOfWork,
    balances: BalanceProvider | None = None,
) -> HoldPage:
    """A page of the account's holds, newest first, as they stand now (the database's time): a hold
    past its expiry shows as expired even before the sweeper ends it."""
    if scope is not None and customer_code not in scope:
        raise UnknownCustomer(customer_code)
    open_named_account(uow, balances, customer_code, sale_group_code, scope)
    with uow:
        account = uow.accounts.get(customer_code, sale_group_code)
        if account is None:
            raise UnknownAccount(customer_code, sale_group_code)
        now = uow.now()
        items = uow.holds.page(account.id, statuses=statuses, now=now, after=after, limit=limit + 1)
    more = len(items) > limit
    items = [h.as_seen_at(now) for h in items[:limit]]
    return HoldPage(items, (items[-1].created_at, items[-1].id) if more else None)
