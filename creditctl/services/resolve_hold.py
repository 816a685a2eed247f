"""Ending a hold: settled (Haier debited it) or released (the order was cancelled). Each hold ends once.

A retry of the same step (the order system's first call timed out) answers as the first one did and
changes nothing; the other step on an ended hold is a conflict."""

from __future__ import annotations

from datetime import datetime

from creditctl.domain.account import CreditAccount
from creditctl.domain.audit import SYSTEM, Actor
from creditctl.domain.audit_records import decision_subject
from creditctl.domain.decision import Decision, DecisionState
from creditctl.domain.errors import HoldNotOpen
from creditctl.domain.hold import HoldStatus
from creditctl.ports.clock import Clock
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.get_decision import visible_decision
from creditctl.services.hold_expiry import expire_due_holds


def settle_order(
    order_id: str,
    *,
    customer_code: str | None = None,
    scope: frozenset[str] | None,
    uow: UnitOfWork,
    clock: Clock,
    actor: Actor = SYSTEM,
) -> Decision:
    """Mark the hold settled. It keeps counting until a balance as of a later moment arrives."""
    return _end_hold(order_id, customer_code, HoldStatus.SETTLED, scope=scope, uow=uow, actor=actor)


def release_order(
    order_id: str,
    *,
    customer_code: str | None = None,
    scope: frozenset[str] | None,
    uow: UnitOfWork,
    clock: Clock,
    actor: Actor = SYSTEM,
) -> Decision:
    """Cancel the order: its hold stops counting at once, or its deferral ends."""
    return _end_hold(order_id, customer_code, HoldStatus.RELEASED, scope=scope, uow=uow, actor=actor)


def _end_hold(
    order_id: str,
    customer_code: str | None,
    target: HoldStatus,
    *,
    scope: frozenset[str] | None,
    uow: UnitOfWork,
    actor: Actor,
) -> Decision:
    with uow:
        first = visible_decision(uow, order_id, scope, customer_code)
        account = uow.accounts.lock(first.order.customer_code, first.order.sale_group_code)
        assert account is not None
        now = uow.now()  # the database's time: a snapshot as of a later moment includes this settlement
        expire_due_holds(uow, account, now)
        decision = visible_decision(uow, order_id, scope, first.order.customer_code)
        hold = decision.hold
        if hold is not None and hold.status is target:
            return decision  # a retry: the same answer, nothing changed (the expiry above is kept)
        if hold is None or not hold.is_open:
            return _refuse_or_cancel(uow, decision, account, target, actor, now)
        hold.status = target
        hold.ended_at = now
        if target is HoldStatus.RELEASED:
            hold.counting = False
            account.exposure -= hold.amount
        uow.holds.save(hold)
        uow.accounts.save(account)
        uow.audit.append(
            f"hold.{target.value}",
            at=now,
            actor=actor,
            subject={**decision_subject(decision), "hold_id": hold.id},
            before={"status": HoldStatus.OPEN.value, "amount": hold.amount},
            after={"status": target.value, "counting": hold.counting, "account_exposure": account.exposure},
        )
        uow.commit()
    return decision


def _refuse_or_cancel(
    uow: UnitOfWork,
    decision: Decision,
    account: CreditAccount,
    target: HoldStatus,
    actor: Actor,
    now: datetime,
) -> Decision:
    """No open hold: a release cancels a deferral; anything else is a conflict naming the state."""
    hold = decision.hold
    if hold is None and target is HoldStatus.RELEASED and decision.state is DecisionState.DEFERRED:
        decision.state = DecisionState.CANCELLED
        uow.decisions.update(decision)
        uow.accounts.save(account)
        uow.audit.append(
            "deferral.cancelled",
            at=now,
            actor=actor,
            subject=decision_subject(decision),
            before={"state": DecisionState.DEFERRED.value},
            after={"state": DecisionState.CANCELLED.value},
        )
        uow.commit()
        return decision
    uow.accounts.save(account)  # holds that expired on the way stay expired
    uow.commit()
    if hold is not None:
        raise HoldNotOpen(decision.order_id, hold.status.value)
    state = decision.state
    raise HoldNotOpen(
        decision.order_id,
        state.value if state is not DecisionState.DECIDED else f"{decision.outcome.value}, without a hold",
    )
