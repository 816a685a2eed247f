"""Customers and their payer accounts: registering a sold-to code and refreshing its balances."""

from __future__ import annotations

from creditctl.domain.account import CreditAccount
from creditctl.domain.balance import BalanceReport
from creditctl.domain.errors import InvalidRequest, UnknownCustomer
from creditctl.ports.balance_provider import BalanceProvider
from creditctl.ports.clock import Clock
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.account_state import refresh_locked_account


def register_customer(code: str, *, name: str = "", uow: UnitOfWork, clock: Clock) -> bool:
    """Make a sold-to code known; its accounts appear as its balances are fetched."""
    if not code or not code.isalnum() or len(code) > 32:
        raise InvalidRequest("a customer code is 1-32 letters or digits", field="customer_code")
    with uow:
        added = uow.customers.add(code, name, clock.now())
        uow.commit()
    return added


def refresh_balances(
    customer_code: str,
    *,
    scope: frozenset[str] | None,
    uow: UnitOfWork,
    balances: BalanceProvider,
    clock: Clock,
    timeout_s: float = 10.0,
) -> BalanceReport:
    """Fetch every payer account of the customer and store each snapshot, creating accounts as needed.

    Raises BalanceUnavailable when the upstream cannot answer (nothing is stored then).
    """
    if scope is not None and customer_code not in scope:
        raise UnknownCustomer(customer_code)
    with uow:
        if not uow.customers.exists(customer_code):
            raise UnknownCustomer(customer_code)
    report = balances.fetch(customer_code, timeout_s=timeout_s)
    for payer in report.accounts:
        with uow:
            account = uow.accounts.lock(customer_code, payer.sale_group_code)
            if account is None:
                account = uow.accounts.add(
                    CreditAccount(id=0, customer_code=customer_code, sale_group_code=payer.sale_group_code)
                )
            refresh_locked_account(uow, account, report, clock.now())
            uow.accounts.save(account)
            uow.commit()
    return report
