"""Read one decision, as the caller may see it."""

from __future__ import annotations

from creditctl.domain.decision import Decision
from creditctl.domain.errors import UnknownOrder
from creditctl.ports.clock import Clock
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.expiry import deferral_due, expire_deferral


def visible_decision(uow: UnitOfWork, order_id: str, scope: frozenset[str] | None) -> Decision:
    """The decision, or UnknownOrder when there is none or the caller may not see its customer."""
    decision = uow.decisions.get(order_id)
    if decision is None or (scope is not None and decision.order.customer_code not in scope):
        raise UnknownOrder(order_id)
    return decision


def get_decision(order_id: str, *, scope: frozenset[str] | None, uow: UnitOfWork, clock: Clock) -> Decision:
    """The decision; a deferral whose time ran out is ended (blocked) on the way."""
    with uow:
        decision = visible_decision(uow, order_id, scope)
        due = deferral_due(decision, uow.now())
    return expire_deferral(order_id, uow=uow, clock=clock) if due else decision
