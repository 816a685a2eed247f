"""Customers and their payer accounts: registering a sold-to code and refreshing its balances."""

from __future__ import annotations

from creditctl.domain.account import CreditAccount
from creditctl.domain.assessment import rule_params
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
    store_report(report, uow=uow)
    return report


def store_report(report: BalanceReport, *, uow: UnitOfWork) -> None:
    """Apply an upstream answer to every payer account of a known customer, each under its lock."""
    with uow:
        known = uow.customers.exists(report.customer_code)
    if not known:
        return
    for payer in report.accounts:
        with uow:
            account = uow.accounts.lock(report.customer_code, payer.sale_group_code)
            if account is None:
                account = uow.accounts.add(
                    CreditAccount(
                        id=0, customer_code=report.customer_code, sale_group_code=payer.sale_group_code
                    )
                )
            refresh_locked_account(uow, account, report, uow.now())
            uow.accounts.save(account)
            uow.commit()


def customer_balances(
    customer_code: str,
    *,
    refresh: bool | None,
    scope: frozenset[str] | None,
    uow: UnitOfWork,
    balances: BalanceProvider,
    clock: Clock,
    timeout_s: float = 10.0,
) -> list[CreditAccount]:
    """Every payer account of a customer with its stored snapshot.

    refresh=True asks the upstream first; None asks it only when a snapshot is missing or older than
    the rule set's refresh_after_s; False never asks. An upstream failure raises BalanceUnavailable.
    """
    if scope is not None and customer_code not in scope:
        raise UnknownCustomer(customer_code)
    with uow:
        if not uow.customers.exists(customer_code):
            raise UnknownCustomer(customer_code)
        accounts = uow.accounts.for_customer(customer_code)
        refresh_after = int(rule_params(uow.rule_sets.active().rules)["refresh_after_s"])
        now = uow.now()
    stale = not accounts or any(
        a.snapshot is None or a.snapshot.age_s(now) >= refresh_after for a in accounts
    )
    if refresh or (refresh is None and stale):
        refresh_balances(
            customer_code, scope=scope, uow=uow, balances=balances, clock=clock, timeout_s=timeout_s
        )
        with uow:
            accounts = uow.accounts.for_customer(customer_code)
    return accounts
