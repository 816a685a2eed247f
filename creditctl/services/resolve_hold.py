"""Ending a hold: settled (Haier debited it) or released (the order was cancelled). Each hold ends once."""

from __future__ import annotations

from creditctl.domain.decision import Decision, DecisionState
from creditctl.domain.errors import HoldNotOpen
from creditctl.domain.hold import HoldStatus
from creditctl.ports.clock import Clock
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.get_decision import visible_decision


def settle_order(order_id: str, *, scope: frozenset[str] | None, uow: UnitOfWork, clock: Clock) -> Decision:
    """Mark the hold settled. It keeps counting until a balance fetched after now arrives."""
    return _end_hold(order_id, HoldStatus.SETTLED, scope=scope, uow=uow, clock=clock)


def release_order(order_id: str, *, scope: frozenset[str] | None, uow: UnitOfWork, clock: Clock) -> Decision:
    """Cancel the order: its hold stops counting at once, or its deferral ends."""
    return _end_hold(order_id, HoldStatus.RELEASED, scope=scope, uow=uow, clock=clock)


def _end_hold(
    order_id: str, target: HoldStatus, *, scope: frozenset[str] | None, uow: UnitOfWork, clock: Clock
) -> Decision:
    with uow:
        first = visible_decision(uow, order_id, scope)
        account = uow.accounts.lock(first.order.customer_code, first.order.sale_group_code)
        assert account is not None
        now = uow.now()  # the database's time: a snapshot as of a later moment includes this settlement
        account.exposure -= uow.holds.expire_due(account.id, now)
        decision = visible_decision(uow, order_id, scope)
        hold = decision.hold
        if hold is None:
            if target is HoldStatus.RELEASED and decision.state is DecisionState.DEFERRED:
                decision.state = DecisionState.CANCELLED
                uow.decisions.update(decision)
                uow.accounts.save(account)
                uow.commit()
                return decision
            uow.accounts.save(account)
            uow.commit()
            raise HoldNotOpen(
                order_id,
                decision.state.value
                if decision.state is not DecisionState.DECIDED
                else f"{decision.outcome.value}, without a hold",
            )
        if not hold.is_open:
            uow.accounts.save(account)
            uow.commit()
            raise HoldNotOpen(order_id, hold.status.value)
        hold.status = target
        hold.ended_at = now
        if target is HoldStatus.RELEASED:
            hold.counting = False
            account.exposure -= hold.amount
        uow.holds.save(hold)
        uow.accounts.save(account)
        uow.commit()
    return decision
