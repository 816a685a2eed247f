"""Evaluate an order without deciding it: no hold, no decision row, the full rule trace."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from creditctl.domain.account import AccountStatus, CreditAccount, PaymentProfile
from creditctl.domain.assessment import Assessment, assess, effective_params
from creditctl.domain.balance import BalanceSnapshot
from creditctl.domain.decision import Order
from creditctl.domain.errors import RuleSetRefused, UnknownAccount, UnknownCustomer, UnknownRuleSet
from creditctl.domain.money import ZERO
from creditctl.ports.clock import Clock
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.rule_sets import compile_document
from rules import Evaluation
from rules.params import check_overrides


@dataclass(frozen=True, slots=True)
class Simulation:
    assessment: Assessment
    evaluation: Evaluation
    rule_set_version: int | None  # None: a draft


def simulate_order(
    order: Order, *, scope: frozenset[str] | None, uow: UnitOfWork, clock: Clock
) -> Simulation:
    """What the stored snapshot and the active rules would say now (no upstream call, nothing written)."""
    if scope is not None and order.customer_code not in scope:
        raise UnknownCustomer(order.customer_code)
    with uow:
        account = uow.accounts.get(order.customer_code, order.sale_group_code)
        if account is None:
            raise UnknownAccount(order.customer_code, order.sale_group_code)
        rule_set = uow.rule_sets.for_account(order.customer_code, order.sale_group_code).rule_set
    now = clock.now()
    assessment = assess(order, account, rule_set.rules, now)
    evaluation = rule_set.rules.evaluate(assessment.facts, effective_params(rule_set.rules, account))
    return Simulation(assessment=assessment, evaluation=evaluation, rule_set_version=rule_set.version)


@dataclass(frozen=True, slots=True)
class HypotheticalAccount:
    """An account that does not exist: balance (None: unknown), its age, exposure, overrides, payments."""

    balance: Decimal | None
    balance_age_s: int = 0
    exposure: Decimal = ZERO
    params: dict[str, Any] = field(default_factory=dict)
    payment: PaymentProfile = field(default_factory=PaymentProfile)
    frozen: bool = False
    age_days: int = 365


def hypothetical(spec: HypotheticalAccount, sale_group_code: str, now: datetime) -> CreditAccount:
    """A CreditAccount standing in for `spec` at `now` (never stored)."""
    snapshot = None
    if spec.balance is not None:
        fetched = now - timedelta(seconds=spec.balance_age_s)
        snapshot = BalanceSnapshot(amount=spec.balance, fetched_at=fetched, source="hypothetical")
    return CreditAccount(
        id=0,
        customer_code="hypothetical",
        sale_group_code=sale_group_code,
        status=AccountStatus.FROZEN if spec.frozen else AccountStatus.ACTIVE,
        exposure=spec.exposure,
        snapshot=snapshot,
        params=dict(spec.params),
        payment=spec.payment,
        created_at=now - timedelta(days=spec.age_days),
    )


def simulate_with_rule_set(
    rule_set_id: int,
    order: Order,
    account: HypotheticalAccount | None,
    *,
    scope: frozenset[str] | None,
    uow: UnitOfWork,
) -> Simulation:
    """One order on a real account (its stored snapshot, exposure, overrides) or a hypothetical one,
    under a draft or a published version: the outcome and the full trace. Nothing is written."""
    with uow:
        record = uow.rule_sets.record(rule_set_id)
        if record is None:
            raise UnknownRuleSet(f"with id {rule_set_id}")
        uow.rollback()
    return simulate_with_document(
        record.document, order, account, scope=scope, uow=uow, version=record.version
    )


def simulate_with_document(
    document: Any,
    order: Order,
    account: HypotheticalAccount | None,
    *,
    scope: frozenset[str] | None,
    uow: UnitOfWork,
    version: int | None = None,
) -> Simulation:
    """The same for a rule set document not stored anywhere (a file kept in git). Nothing is written."""
    rules = compile_document(document)
    if account is not None:
        overrides, problems = check_overrides(account.params, "/account/params")
        if problems:
            raise RuleSetRefused(problems)
        account = replace(account, params=overrides)
    with uow:
        now = uow.now()
        found: CreditAccount | None = None
        if account is None:
            if scope is not None and order.customer_code not in scope:
                raise UnknownCustomer(order.customer_code)
            found = uow.accounts.get(order.customer_code, order.sale_group_code)
            if found is None:
                raise UnknownAccount(order.customer_code, order.sale_group_code)
        uow.rollback()
    subject = hypothetical(account, order.sale_group_code, now) if account is not None else found
    assert subject is not None
    assessment = assess(order, subject, rules, now)
    evaluation = rules.evaluate(assessment.facts, effective_params(rules, subject))
    return Simulation(assessment=assessment, evaluation=evaluation, rule_set_version=version)
