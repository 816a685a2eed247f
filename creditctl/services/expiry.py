"""Ending what ran out of time: holds past their expiry, deferrals past theirs. Each ends exactly once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from creditctl.domain.audit import SYSTEM, Actor
from creditctl.domain.audit_records import decision_state, decision_subject
from creditctl.domain.decision import Decision, DecisionState, Reason
from creditctl.domain.errors import UnknownOrder
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.events import decision_event
from creditctl.services.hold_expiry import expire_due_holds
from rules import Outcome

DEFERRAL_EXPIRED = Reason(
    rule="deferral", reason="DEFERRAL_EXPIRED", message="The order stayed deferred past its deadline"
)


@dataclass(frozen=True, slots=True)
class SweepResult:
    holds_expired_on: int
    deferrals_expired: int


def expire_deferral(customer_code: str, order_id: str, *, uow: UnitOfWork, actor: Actor = SYSTEM) -> Decision:
    """Block a deferred order whose deferral has run out (under the account lock, so once)."""
    with uow:
        decision = uow.decisions.get(customer_code, order_id)
        if decision is None:
            raise UnknownOrder(order_id)
        uow.accounts.lock(decision.order.customer_code, decision.order.sale_group_code)
        decision = uow.decisions.get(customer_code, order_id)
        assert decision is not None
        if end_deferral_if_due(uow, decision, uow.now(), actor):
            uow.commit()
    return decision


def deferral_due(decision: Decision, now: datetime) -> bool:
    """Deferred and past its deadline, by the database's `now`."""
    expires = decision.deferral_expires_at
    return decision.state is DecisionState.DEFERRED and expires is not None and expires <= now


def end_deferral_if_due(uow: UnitOfWork, decision: Decision, now: datetime, actor: Actor = SYSTEM) -> bool:
    """Under the account lock: block a deferral whose deadline has passed (DEFERRAL_EXPIRED)."""
    if not deferral_due(decision, now):
        return False
    decision.outcome = Outcome.BLOCK
    decision.reasons = (*decision.reasons, DEFERRAL_EXPIRED)
    decision.state = DecisionState.EXPIRED
    decision.shortfall = None
    uow.decisions.update(decision)
    uow.audit.append(
        "deferral.expired",
        at=now,
        actor=actor,
        subject=decision_subject(decision),
        before={"state": DecisionState.DEFERRED.value},
        after=decision_state(decision),
    )
    decision_event(uow, "decision.expired", decision, now)
    return True


def expire_holds(*, uow: UnitOfWork) -> int:
    """End every open hold past its expiry; returns how many accounts were touched."""
    with uow:
        due = uow.holds.accounts_with_due_holds(uow.now())
    for customer_code, sale_group_code in due:
        with uow:
            account = uow.accounts.lock(customer_code, sale_group_code)
            if account is None:
                continue
            expire_due_holds(uow, account, uow.now())
            uow.accounts.save(account)
            uow.commit()
    return len(due)


def sweep(*, uow: UnitOfWork) -> SweepResult:
    """One pass of the sweeper: holds first, then deferrals. Safe to run on several instances at once."""
    accounts = expire_holds(uow=uow)
    with uow:
        due = uow.decisions.deferred(due_before=uow.now())
    for customer_code, order_id in due:
        expire_deferral(customer_code, order_id, uow=uow)
    return SweepResult(holds_expired_on=accounts, deferrals_expired=len(due))
