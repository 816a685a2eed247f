"""Evaluate an order without deciding it: no hold, no decision row, the full rule trace."""

from __future__ import annotations

from dataclasses import dataclass

from creditctl.domain.assessment import Assessment, assess, effective_params
from creditctl.domain.decision import Order
from creditctl.domain.errors import UnknownAccount, UnknownCustomer
from creditctl.ports.clock import Clock
from creditctl.ports.unit_of_work import UnitOfWork
from rules import Evaluation


@dataclass(frozen=True, slots=True)
class Simulation:
    assessment: Assessment
    evaluation: Evaluation
    rule_set_version: int


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
