"""A payer account the provider names is an account from the start, on every route, before any order.

Account rows are opened by the first decision on them; payments, the credit profile, limit requests,
freezes, rule set assignments and the account view open them the same way first. The provider's newest
answer for the customer is kept (uow.balance_reports): a sales group it names is opened (its balance
adopted from that answer, as the first decision would), one it does not name is unknown. Where nothing is
kept, or the kept answer is older than refresh_after_s and does not name the group, the provider is asked,
with no transaction open (a lock never waits on the upstream)."""

from __future__ import annotations

from datetime import datetime

from creditctl.domain.account import CreditAccount
from creditctl.domain.assessment import rule_params
from creditctl.domain.balance import BalanceReport
from creditctl.domain.errors import UnknownAccount, UnknownCustomer, UpstreamUnavailable
from creditctl.ports.balance_provider import BalanceProvider
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.balances import fetch_report, keep_report, young_report

FETCH_TIMEOUT_S = 10.0  # as a balance refresh asks


def open_named_account(
    uow: UnitOfWork,
    balances: BalanceProvider | None,
    customer_code: str,
    sale_group_code: str,
    scope: frozenset[str] | None,
    *,
    timeout_s: float = FETCH_TIMEOUT_S,
) -> None:
    """Make sure the account exists if the provider names it; call before the unit of work that uses it.

    Raises UnknownCustomer outside `scope` (nothing asked), UnknownAccount for an unknown customer or a
    group the provider does not name (nothing written but the answer kept), UpstreamUnavailable when the
    provider had to be asked and could not answer. Idempotent and safe when concurrent callers open the
    same account (one row). Without `balances` only a kept answer is looked at."""
    if scope is not None and customer_code not in scope:
        raise UnknownCustomer(customer_code)
    with uow:
        if uow.accounts.get(customer_code, sale_group_code) is not None:
            return  # the common case: one statement
        report = uow.balance_reports.latest(customer_code)
        registered = uow.customers.exists(customer_code)
        rules = uow.rule_sets.for_account(customer_code, sale_group_code).rule_set.rules
        now = uow.now()
    if not registered and not _provider_names(uow, balances, customer_code, now):
        raise UnknownAccount(customer_code, sale_group_code)
    named = report is not None and report.for_sale_group(sale_group_code) is not None
    if not named and not young_report(report, rule_params(rules), now) and balances is not None:
        report = _ask(uow, balances, customer_code, sale_group_code, timeout_s)  # nothing kept tells
    if report is None or report.for_sale_group(sale_group_code) is None:
        raise UnknownAccount(customer_code, sale_group_code)
    _open(uow, report, sale_group_code)


def _provider_names(
    uow: UnitOfWork, balances: BalanceProvider | None, customer_code: str, now: datetime
) -> bool:
    """A customer the provider names is known on first use, here as on its first order."""
    # Imported here: customers -> account_state -> credit_profile, whose services call this module.
    from creditctl.services.customers import ensure_known

    return balances is not None and ensure_known(customer_code, uow=uow, balances=balances, now=now)


def _ask(
    uow: UnitOfWork, balances: BalanceProvider, customer_code: str, sale_group_code: str, timeout_s: float
) -> BalanceReport:
    """The provider's answer now, kept; a customer it does not know has no account, any other failure
    leaves the question open (never a 404 that an unanswered question would make final)."""
    fetched = fetch_report(balances, customer_code, timeout_s)
    if fetched.report is None:
        if fetched.error is not None and fetched.error.reason == "UNKNOWN_CUSTOMER":
            raise UnknownAccount(customer_code, sale_group_code)
        why = fetched.error.message if fetched.error else "no answer"
        raise UpstreamUnavailable(f"cannot verify sales group {sale_group_code!r}: {why}")
    keep_report(uow, fetched)
    return fetched.report


def _open(uow: UnitOfWork, report: BalanceReport, sale_group_code: str) -> None:
    """Insert the row (or find the one a concurrent opener inserted) and take the answer's balance."""
    # Imported here: account_state -> credit_profile, whose services call this module.
    from creditctl.services.account_state import refresh_locked_account

    with uow:
        if uow.accounts.lock(report.customer_code, sale_group_code) is not None:
            return  # opened meanwhile, by a decision or another route: nothing to add
        account = uow.accounts.add(
            CreditAccount(id=0, customer_code=report.customer_code, sale_group_code=sale_group_code)
        )
        refresh_locked_account(uow, account, report, account.locked_at or uow.now())
        uow.accounts.save(account)
        uow.commit()
