"""Re-check a deferred order: evaluate it again on the newest balance, approving it if it now fits."""

from __future__ import annotations

from creditctl.domain.api_key import ApiKey
from creditctl.domain.assessment import effective_params
from creditctl.domain.audit import SYSTEM, Actor
from creditctl.domain.decision import Decision, DecisionState
from creditctl.domain.review import review_entry
from creditctl.ports.balance_provider import BalanceProvider
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.account_state import refresh_locked_account
from creditctl.services.balances import Fetched, fetch_report, keep_report, needs_refresh
from creditctl.services.expiry import deferral_due, end_deferral_if_due, expire_deferral
from creditctl.services.get_decision import visible_decision
from creditctl.services.outcome import reassess_locked


def recheck_order(
    order_id: str,
    *,
    customer_code: str | None = None,
    scope: frozenset[str] | None,
    uow: UnitOfWork,
    balances: BalanceProvider,
    deadline_s: float = 2.0,
    reviewer: tuple[ApiKey, str | None] | None = None,
    actor: Actor = SYSTEM,
) -> Decision:
    """A deferred order is evaluated again; any other decision is returned unchanged.

    With `reviewer` (the key and its reason) the recheck is recorded on the decision as a review, with
    the facts it was evaluated on, in the same transaction."""
    with uow:
        decision = visible_decision(uow, order_id, scope, customer_code)
        customer_code = decision.order.customer_code
        account = uow.accounts.get(decision.order.customer_code, decision.order.sale_group_code)
        rule_set = uow.rule_sets.for_account(
            decision.order.customer_code, decision.order.sale_group_code
        ).rule_set
        now = uow.now()
    if decision.state is not DecisionState.DEFERRED:
        return decision
    if deferral_due(decision, now):
        return expire_deferral(customer_code, order_id, uow=uow)
    params = effective_params(rule_set.rules, account)
    fetched = Fetched(None, None)
    if needs_refresh(account, params, now):
        fetched = fetch_report(balances, decision.order.customer_code, deadline_s)
        keep_report(uow, fetched)  # what the provider named most recently, for the customer's other groups
    with uow:
        locked = uow.accounts.lock(decision.order.customer_code, decision.order.sale_group_code)
        decision = visible_decision(uow, order_id, scope, customer_code)
        if locked is None or decision.state is not DecisionState.DEFERRED:
            return decision
        now = uow.now()  # again, under the lock: the deadline may have passed while the upstream answered
        if end_deferral_if_due(uow, decision, now):
            uow.commit()
            return decision
        before, outcome_before = decision.rechecks, decision.outcome.value
        refresh_locked_account(
            uow, locked, fetched.report, now, params=effective_params(rule_set.rules, locked), actor=actor
        )
        # A newer balance re-evaluates the account's queue, this order likely included: read it again.
        decision = visible_decision(uow, order_id, scope, customer_code)
        if decision.state is DecisionState.DEFERRED and decision.rechecks == before:
            reassess_locked(uow, decision, locked, rule_set, now, upstream_error=fetched.error, actor=actor)
        if reviewer is not None:
            key, reason = reviewer
            decision.reviews.append(
                review_entry(
                    "recheck",
                    key=key,
                    reason=reason,
                    at=now,
                    outcome_before=outcome_before,
                    after=decision,
                    facts=decision.facts,
                )
            )
            uow.decisions.update(decision)
        uow.accounts.save(locked)
        uow.commit()
    return decision
