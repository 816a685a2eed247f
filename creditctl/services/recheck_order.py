"""Re-check a deferred order: evaluate it again on the newest balance, approving it if it now fits."""

from __future__ import annotations

from creditctl.domain.assessment import assess, effective_params
from creditctl.domain.audit import SYSTEM, Actor
from creditctl.domain.audit_records import decided_state, decision_state, decision_subject
from creditctl.domain.decision import Decision, DecisionState
from creditctl.ports.balance_provider import BalanceProvider
from creditctl.ports.clock import Clock
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.account_state import apply_outcome, queue_notifications, refresh_locked_account
from creditctl.services.balances import Fetched, fetch_report, needs_refresh
from creditctl.services.expiry import deferral_due, end_deferral_if_due, expire_deferral
from creditctl.services.get_decision import visible_decision
from rules import Outcome


def recheck_order(
    order_id: str,
    *,
    customer_code: str | None = None,
    scope: frozenset[str] | None,
    uow: UnitOfWork,
    balances: BalanceProvider,
    clock: Clock,
    deadline_s: float = 2.0,
    actor: Actor = SYSTEM,
) -> Decision:
    """A deferred order is evaluated again; any other decision is returned unchanged."""
    with uow:
        decision = visible_decision(uow, order_id, scope, customer_code)
        customer_code = decision.order.customer_code
        account = uow.accounts.get(decision.order.customer_code, decision.order.sale_group_code)
        order = decision.order
        rule_set = uow.rule_sets.for_account(order.customer_code, order.sale_group_code).rule_set
        now = uow.now()
    if decision.state is not DecisionState.DEFERRED:
        return decision
    if deferral_due(decision, now):
        return expire_deferral(customer_code, order_id, uow=uow, clock=clock, actor=actor)
    params = effective_params(rule_set.rules, account)
    fetched = Fetched(None, None)
    if needs_refresh(account, params, now):
        fetched = fetch_report(balances, decision.order.customer_code, deadline_s)
    with uow:
        locked = uow.accounts.lock(decision.order.customer_code, decision.order.sale_group_code)
        decision = visible_decision(uow, order_id, scope, customer_code)
        if locked is None or decision.state is not DecisionState.DEFERRED:
            return decision
        now = uow.now()  # again, under the lock: the deadline may have passed while the upstream answered
        if end_deferral_if_due(uow, decision, now, actor):
            uow.commit()
            return decision
        refresh_locked_account(
            uow, locked, fetched.report, now, params=effective_params(rule_set.rules, locked)
        )
        before = decision_state(decision)
        assessment = assess(decision.order, locked, rule_set.rules, now, upstream_error=fetched.error)
        decision.outcome = assessment.outcome
        decision.reasons = assessment.reasons
        decision.actions = assessment.actions
        decision.balance = locked.snapshot
        decision.exposure = locked.exposure
        decision.available = assessment.available
        decision.credit_limit = assessment.credit_limit
        decision.credit_grade = assessment.credit_grade
        decision.shortfall = assessment.shortfall
        decision.rule_set_id, decision.rule_set_version = rule_set.id, rule_set.version
        decision.rechecked_at = now  # decided_at stays the order's first decision
        decision.facts = assessment.facts
        decision.rechecks += 1
        if assessment.outcome is not Outcome.DEFER:
            decision.state = DecisionState.DECIDED
        apply_outcome(uow, decision, locked, assessment, effective_params(rule_set.rules, locked), now)
        uow.decisions.update(decision)
        if decision.hold is not None:
            uow.holds.add(decision.hold)
        queue_notifications(uow, decision, locked, now)
        uow.accounts.save(locked)
        after = decided_state(decision, locked)
        uow.audit.append(
            "decision.rechecked",
            at=now,
            actor=actor,
            subject=decision_subject(decision),
            before=before,
            after=after,
        )
        uow.commit()
    return decision
