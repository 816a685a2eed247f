"""Decisions: search by order id (prefix) and customer, newest first; one decision with its rule trace."""

from __future__ import annotations

from typing import Any

from flask import request

from adapters.web.auth import scope
from adapters.web.console.blueprint import NavItem, bp
from adapters.web.console.pages import page
from adapters.web.context import ctx
from creditctl.services.decision_search import TRACE_PARAMS, decision_trace, search_decisions

NAV_ITEMS = [NavItem("Decisions", "console.decisions")]


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
    return page("decision.html", t=trace, d=trace.decision, params_source=TRACE_PARAMS)
