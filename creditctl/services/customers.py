"""Customers and their payer accounts: knowing a sold-to code, listing them, refreshing their balances.

A customer is known when it is registered, or when the active balance provider names it (a Haier
config lists it with its password; the fake file holds it): such a customer is registered on first
use, with no separate step."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from creditctl.domain.account import CreditAccount
from creditctl.domain.assessment import rule_params
from creditctl.domain.balance import BalanceReport
from creditctl.domain.errors import InvalidRequest, UnknownCustomer
from creditctl.ports.balance_provider import BalanceProvider
from creditctl.ports.clock import Clock
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.account_state import refresh_locked_account


@dataclass(frozen=True, slots=True)
class CustomerListing:
    """A known customer: registered and/or named by the balance provider, with its payer accounts."""

    customer_code: str
    name: str
    registered: bool
    balance_source: str | None  # "fake", "haier:<config>"; None when the provider does not serve it
    accounts: list[CreditAccount]


def valid_code(code: str) -> bool:
    return bool(code) and code.isalnum() and len(code) <= 32


def register_customer(code: str, *, name: str = "", uow: UnitOfWork, clock: Clock) -> bool:
    """Make a sold-to code known (or give a known one its name); False when it was known already."""
    if not valid_code(code):
        raise InvalidRequest("a customer code is 1-32 letters or digits", field="customer_code")
    with uow:
        added = uow.customers.add(code, name, clock.now())
        if not added and name:
            uow.customers.set_name(code, name)
        uow.commit()
    return added


def ensure_known(customer_code: str, *, uow: UnitOfWork, balances: BalanceProvider, now: datetime) -> bool:
    """True when the customer is known: registered, or named by the balance provider and registered now.

    Idempotent and safe when concurrent first uses race (one inserts, the others find it). Asks the
    provider only for a code not registered yet. False for any other code (nothing is written)."""
    with uow:
        if uow.customers.exists(customer_code):
            return True
    if not valid_code(customer_code) or customer_code not in balances.customers():
        return False
    with uow:
        uow.customers.add(customer_code, "", now)
        uow.commit()
    return True


def list_customers(
    *, scope: frozenset[str] | None, uow: UnitOfWork, balances: BalanceProvider, source: str
) -> list[CustomerListing]:
    """Every known customer (a limited key: only its own) with its stored payer accounts. Writes nothing.

    `source` names the provider as it serves now ("fake", "haier:main")."""
    served = {c for c in balances.customers() if valid_code(c)}
    with uow:
        names = uow.customers.names()
        codes = sorted(set(names) | served)
        if scope is not None:
            codes = [c for c in codes if c in scope]
        accounts = {code: uow.accounts.for_customer(code) for code in codes}
    return [
        CustomerListing(
            customer_code=code,
            name=names.get(code, ""),
            registered=code in names,
            balance_source=source if code in served else None,
            accounts=accounts[code],
        )
        for code in codes
    ]


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
    if not ensure_known(customer_code, uow=uow, balances=balances, now=clock.now()):
        raise UnknownCustomer(customer_code)
    report = balances.fetch(customer_code, timeout_s=timeout_s)
    store_report(report, uow=uow)
    return report


def store_report(report: BalanceReport, *, uow: UnitOfWork) -> None:
    """Keep an upstream answer of a known customer (what its provider named most recently) and apply it
    to every payer account it names, each under its lock."""
    with uow:
        known = uow.customers.exists(report.customer_code)
        if known:
            uow.balance_reports.keep(report)
            uow.commit()
    if known:
        _apply_to_accounts(report, uow)


def apply_report(report: BalanceReport, *, uow: UnitOfWork) -> None:
    """Apply an upstream answer of a known customer to every payer account it names, each under its lock,
    leaving the kept answer to its caller (SharedBalanceProvider stores it as it ends its lease)."""
    with uow:
        known = uow.customers.exists(report.customer_code)
    if known:
        _apply_to_accounts(report, uow)


def _apply_to_accounts(report: BalanceReport, uow: UnitOfWork) -> None:
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
    if not ensure_known(customer_code, uow=uow, balances=balances, now=clock.now()):
        raise UnknownCustomer(customer_code)
    with uow:
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
