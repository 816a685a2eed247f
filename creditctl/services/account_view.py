"""The account as an order system or auditor sees it: balance, exposure, available, limit, holds."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from creditctl.domain.account import CreditAccount
from creditctl.domain.assessment import effective_params
from creditctl.domain.credit import credit_terms
from creditctl.domain.errors import UnknownAccount, UnknownCustomer
from creditctl.domain.hold import Hold
from creditctl.domain.rule_set import AssignedBy, RuleSetVersion
from creditctl.ports.balance_provider import BalanceProvider
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.named_accounts import open_named_account


@dataclass(frozen=True, slots=True)
class AccountView:
    account: CreditAccount
    exposure: Decimal
    available: Decimal | None
    credit_limit: Decimal
    credit_grade: str
    open_holds: tuple[Hold, ...]
    settled_holds_counting: tuple[Hold, ...]
    balance_age_s: int | None
    balance_usable: bool
    rule_set: RuleSetVersion
    rule_set_why: AssignedBy
    overrides: dict[str, Any]


def view_account(
    customer_code: str,
    sale_group_code: str,
    *,
    scope: frozenset[str] | None,
    uow: UnitOfWork,
    balances: BalanceProvider | None = None,
) -> AccountView:
    """Holds past their expiry are left out of exposure even before the sweeper ends them. Writes only to
    open a payer account the provider names that no order has opened yet (with `balances`)."""
    if scope is not None and customer_code not in scope:
        raise UnknownCustomer(customer_code)
    open_named_account(uow, balances, customer_code, sale_group_code, scope)
    with uow:
        account = uow.accounts.get(customer_code, sale_group_code)
        if account is None:
            raise UnknownAccount(customer_code, sale_group_code)
        holds = uow.holds.counting(account.id)
        applicable = uow.rule_sets.for_account(customer_code, sale_group_code)
        rule_set = applicable.rule_set
        now = uow.now()
    # A hold past its expiry holds nothing any more, even before the sweeper ends it; its settled parts
    # count until a balance includes them.
    held = {h.id: h.remaining if h.expires_at > now else Decimal("0.00") for h in holds}
    counting = tuple(h for h in holds if held[h.id] or h.counting_settled)
    exposure = sum((held[h.id] + h.counting_settled for h in counting), Decimal("0.00"))
    params = effective_params(rule_set.rules, account)
    snap = account.snapshot
    age = snap.age_s(now) if snap else None
    usable = age is not None and age <= int(params["max_balance_age_s"])
    margin = Decimal(params.get("safety_margin", 0))
    terms = credit_terms(account, params, now)
    return AccountView(
        account=account,
        exposure=exposure,
        available=(snap.amount - exposure - margin) if (snap and usable) else None,
        credit_limit=terms.limit,
        credit_grade=terms.grade,
        open_holds=tuple(h for h in counting if held[h.id]),
        settled_holds_counting=tuple(h for h in counting if h.counting_settled),
        balance_age_s=age,
        balance_usable=usable,
        rule_set=rule_set,
        rule_set_why=applicable.why,
        overrides=dict(account.params),
    )
