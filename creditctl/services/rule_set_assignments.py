"""Which rule set decides for whom: a published version pinned to a customer or one of its accounts,
and parameter overrides per account."""

from __future__ import annotations

from typing import Any

from creditctl.domain.audit import SYSTEM, Actor
from creditctl.domain.credit import credit_terms
from creditctl.domain.errors import (
    RuleSetIsDraft,
    RuleSetRefused,
    UnknownAccount,
    UnknownCustomer,
    UnknownRuleSet,
)
from creditctl.domain.rule_set import Assignment
from creditctl.ports.balance_provider import BalanceProvider
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.credit_profile import account_params, recompute_profile
from creditctl.services.named_accounts import open_named_account
from rules.params import check_overrides

WHOLE_CUSTOMER = ""  # the sale_group_code of a customer-wide assignment


def assign_rule_set(
    customer_code: str,
    sale_group_code: str,
    rule_set_id: int,
    *,
    reason: str,
    by: str,
    uow: UnitOfWork,
    actor: Actor = SYSTEM,
    balances: BalanceProvider | None = None,
) -> Assignment:
    """Pin a published version to an account (or, with sale_group_code "", to the whole customer)."""
    _open_if_account(uow, balances, customer_code, sale_group_code)
    with uow:
        _must_exist(uow, customer_code, sale_group_code)
        record = uow.rule_sets.record(rule_set_id)
        if record is None:
            raise UnknownRuleSet(f"with id {rule_set_id}")
        if record.version is None:
            raise RuleSetIsDraft(rule_set_id)
        assignment = Assignment(customer_code, sale_group_code, rule_set_id, by, uow.now(), reason)
        uow.rule_sets.assign(assignment)
        uow.audit.append(
            "rule_set.assigned",
            at=assignment.assigned_at,
            actor=actor,
            subject=_subject(customer_code, sale_group_code),
            after={"rule_set_id": rule_set_id, "version": record.version, "reason": reason},
        )
        uow.commit()
    return assignment


def unassign_rule_set(
    customer_code: str,
    sale_group_code: str,
    *,
    uow: UnitOfWork,
    actor: Actor = SYSTEM,
    balances: BalanceProvider | None = None,
) -> bool:
    """Remove an assignment (the next one out applies again); False when there was none."""
    _open_if_account(uow, balances, customer_code, sale_group_code)
    with uow:
        _must_exist(uow, customer_code, sale_group_code)
        removed = uow.rule_sets.unassign(customer_code, sale_group_code)
        if removed:
            uow.audit.append(
                "rule_set.unassigned",
                at=uow.now(),
                actor=actor,
                subject=_subject(customer_code, sale_group_code),
            )
        uow.commit()
    return removed


def pins_by_rule_set(*, scope: frozenset[str] | None, uow: UnitOfWork) -> dict[int, list[Assignment]]:
    """Where each version is pinned, by rule set id: the customers and accounts it decides for even once
    it is no longer the default (retired). A key limited to some customers sees their pins only."""
    with uow:
        pins = uow.rule_sets.pins(scope)
    out: dict[int, list[Assignment]] = {}
    for pin in pins:
        out.setdefault(pin.rule_set_id, []).append(pin)
    return out


def set_account_params(
    customer_code: str,
    sale_group_code: str,
    params: Any,
    *,
    uow: UnitOfWork,
    actor: Actor = SYSTEM,
    balances: BalanceProvider | None = None,
) -> dict[str, int | str]:
    """Replace the account's parameter overrides (known params only, each of its type); {} clears them."""
    overrides, problems = check_overrides(params, "/params")
    if problems:
        raise RuleSetRefused(problems)
    open_named_account(uow, balances, customer_code, sale_group_code, None)
    with uow:
        account = uow.accounts.lock(customer_code, sale_group_code)
        if account is None:
            raise UnknownAccount(customer_code, sale_group_code)
        before = dict(account.params)
        now = uow.now()
        limit_before = credit_terms(account, account_params(uow, account), now).limit
        account.params = dict(overrides)
        # the limit may move with the params (base_credit_limit, multipliers, bands): the credit history and
        # credit.limit_changed say so, as for every other input of the limit
        recompute_profile(
            uow,
            account,
            account_params(uow, account),
            now,
            trigger="params",
            by=actor.name,
            reason="account parameters changed",
            limit_before=limit_before,
            actor=actor,
        )
        uow.accounts.save(account)
        uow.audit.append(
            "account.params_changed",
            at=uow.now(),
            actor=actor,
            subject=_subject(customer_code, sale_group_code),
            before={"params": before},
            after={"params": account.params},
        )
        uow.commit()
    return overrides


def _subject(customer_code: str, sale_group_code: str) -> dict[str, str]:
    subject = {"customer_code": customer_code}
    if sale_group_code != WHOLE_CUSTOMER:
        subject["sale_group_code"] = sale_group_code
    return subject


def _open_if_account(
    uow: UnitOfWork, balances: BalanceProvider | None, customer_code: str, sale_group_code: str
) -> None:
    if sale_group_code != WHOLE_CUSTOMER:
        open_named_account(uow, balances, customer_code, sale_group_code, None)


def _must_exist(uow: UnitOfWork, customer_code: str, sale_group_code: str) -> None:
    if sale_group_code == WHOLE_CUSTOMER:
        if not uow.customers.exists(customer_code):
            raise UnknownCustomer(customer_code)
    elif uow.accounts.get(customer_code, sale_group_code) is None:
        raise UnknownAccount(customer_code, sale_group_code)
