"""Read one decision, as the caller may see it."""

from __future__ import annotations

from creditctl.domain.decision import Decision
from creditctl.domain.errors import AmbiguousOrder, UnknownOrder
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.expiry import deferral_due, expire_deferral


def visible_decision(
    uow: UnitOfWork, order_id: str, scope: frozenset[str] | None, customer_code: str | None = None
) -> Decision:
    """The decision for `order_id` among the customers the caller may see (or the one it names).

    UnknownOrder when there is none the caller may see (another customer's order with the same id is
    another order, and nothing about it shows); AmbiguousOrder when several of its customers used the id.
    """
    if customer_code is not None:
        if scope is not None and customer_code not in scope:
            raise UnknownOrder(order_id)
        decision = uow.decisions.get(customer_code, order_id)
        if decision is None:
            raise UnknownOrder(order_id)
        return decision
    found = uow.decisions.find(order_id, scope)
    if not found:
        raise UnknownOrder(order_id)
    if len(found) > 1:
        raise AmbiguousOrder(order_id)
    return found[0]


def get_decision(
    order_id: str,
    *,
    customer_code: str | None = None,
    scope: frozenset[str] | None,
    uow: UnitOfWork,
) -> Decision:
    """The decision; a deferral whose time ran out is ended (blocked) on the way."""
    with uow:
        decision = visible_decision(uow, order_id, scope, customer_code)
        due = deferral_due(decision, uow.now())
    if due:
        return expire_deferral(decision.order.customer_code, order_id, uow=uow)
    return decision
