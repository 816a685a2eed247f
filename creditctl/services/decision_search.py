"""Finding decisions (recent first) and reading one with its rule trace, recomputed read-only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from creditctl.domain.assessment import effective_params
from creditctl.domain.backtest import DECIMAL_FACTS
from creditctl.domain.decision import Decision
from creditctl.domain.errors import InvalidRequest, UnknownCustomer
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.get_decision import visible_decision
from rules import Evaluation

MAX_PAGE = 200
# Overrides are not recorded per decision: the trace uses the version's parameters with the account's
# current overrides, as a backtest does (creditctl.domain.backtest.PARAMS_SOURCE).
TRACE_PARAMS = "the decision's rule set version's parameters with the account's current overrides"


@dataclass(frozen=True, slots=True)
class DecisionsPage:
    decisions: list[Decision]
    next_cursor: str | None  # "<decided_at ISO>|<decision id>" of the last row when more may follow


@dataclass(frozen=True, slots=True)
class DecisionTrace:
    decision: Decision
    evaluation: Evaluation | None  # None when the version is not stored (should not happen)
    params: dict[str, Decimal]


def search_decisions(
    *,
    order_id: str = "",
    customer_code: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
    scope: frozenset[str] | None,
    uow: UnitOfWork,
) -> DecisionsPage:
    """Decisions the caller may see whose order id starts with `order_id`, newest first, a page at a time."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be 1 to {MAX_PAGE}", field="limit")
    if customer_code is not None and scope is not None and customer_code not in scope:
        raise UnknownCustomer(customer_code)
    with uow:
        found = uow.decisions.search(
            scope,
            customer_code=customer_code,
            order_id_prefix=order_id,
            before=_position(cursor),
            limit=limit + 1,
        )
    page = found[:limit]
    more = len(found) > limit
    return DecisionsPage(page, f"{page[-1].decided_at.isoformat()}|{page[-1].id}" if more else None)


def _position(cursor: str | None) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    try:
        at, _, decision_id = cursor.partition("|")
        return datetime.fromisoformat(at), decision_id
    except ValueError:
        raise InvalidRequest("not a cursor this service gave", field="cursor") from None


def decision_trace(
    order_id: str, *, customer_code: str | None, scope: frozenset[str] | None, uow: UnitOfWork
) -> DecisionTrace:
    """The stored decision and every rule's trace, evaluated again on its stored facts with the
    compiled rules of the version that decided it. Nothing is written."""
    with uow:
        decision = visible_decision(uow, order_id, scope, customer_code)
        version = uow.rule_sets.published(decision.rule_set_id)
        account = uow.accounts.get(decision.order.customer_code, decision.order.sale_group_code)
    if version is None or account is None:
        return DecisionTrace(decision, None, {})
    params = effective_params(version.rules, account)
    evaluation = version.rules.evaluate(_evaluable(decision.facts), params)
    return DecisionTrace(decision, evaluation, dict(params))


def _evaluable(facts: dict[str, Any]) -> dict[str, Any]:
    out = dict(facts)
    for name in DECIMAL_FACTS:
        if isinstance(out.get(name), str):
            out[name] = Decimal(out[name])
    return out
