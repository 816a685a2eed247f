"""Decisions: search by order id (prefix) and customer, newest first; one decision with its current hold,
its review history (each release, reject or re-check: who, when, why and the facts then) and its rule
trace."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from flask import request

from adapters.web.auth import scope
from adapters.web.console.blueprint import NavItem, bp
from adapters.web.console.pages import page
from adapters.web.context import ctx
from creditctl.domain.decision import Decision
from creditctl.services.decision_search import TRACE_PARAMS, decision_trace, search_decisions

NAV_ITEMS = [NavItem("Decisions", "console.decisions")]


@dataclass(frozen=True, slots=True)
class ReviewRow:
    """One entry of a decision's review record as the page shows it: its money read back from the
    decimal strings it was recorded with."""

    action: str
    by: str
    role: str
    approval_limit: Decimal | None
    reason: str | None
    at: datetime
    outcome_before: str
    outcome_after: str
    state_after: str
    balance: Decimal | None
    exposure: Decimal | None
    credit_limit: Decimal | None
    available_before: Decimal | None
    available_after: Decimal | None
    after_recorded: bool  # available_after as the act recorded it; else available - amount, worked out here
    facts: dict[str, Any]


def _money(value: Any) -> Decimal | None:
    return None if value is None or value == "" else Decimal(str(value))


def review_rows(decision: Decision) -> list[ReviewRow]:
    """The review record, oldest first. The available before an act is what it recorded (the
    `available_before` of the entry when it has one, else the `available` fact it was weighed on); after
    an act that approved the order, the hold of its amount came off it."""
    rows = []
    for e in decision.reviews:
        facts = dict(e.get("facts") or {})
        before = _money(e.get("available_before", facts.get("available")))
        recorded = e.get("available_after") is not None
        after = _money(e.get("available_after"))
        if not recorded and before is not None and e.get("outcome_after") == "approve":
            after = before - decision.order.amount
        rows.append(
            ReviewRow(
                action=str(e.get("action", "")),
                by=str(e.get("by", "")),
                role=str(e.get("role", "")),
                approval_limit=_money(e.get("approval_limit")),
                reason=e.get("reason"),
                at=datetime.fromisoformat(str(e["at"])),
                outcome_before=str(e.get("outcome_before", "")),
                outcome_after=str(e.get("outcome_after", "")),
                state_after=str(e.get("state_after", "")),
                balance=_money(facts.get("balance.amount")),
                exposure=_money(facts.get("exposure")),
                credit_limit=_money(facts.get("credit.limit")),
                available_before=before,
                available_after=after,
                after_recorded=recorded,
                facts=facts,
            )
        )
    return rows


@bp.route("/decisions")
def decisions() -> Any:
    order_id = request.args.get("order_id", "").strip()
    customer = request.args.get("customer_code", "").strip() or None
    found = search_decisions(
        order_id=order_id,
        customer_code=customer,
        cursor=request.args.get("cursor") or None,
        limit=50,
        scope=scope(),
        uow=ctx().uow(),
    )
    return page("decisions.html", found=found, order_id=order_id, customer_code=customer or "")


@bp.route("/decisions/<customer_code>/<path:order_id>")
def decision(customer_code: str, order_id: str) -> Any:
    trace = decision_trace(order_id, customer_code=customer_code, scope=scope(), uow=ctx().uow())
    d = trace.decision
    return page(
        "decision.html",
        t=trace,
        d=d,
        params_source=TRACE_PARAMS,
        reviews=review_rows(d),
        now=ctx().clock.now(),
    )
