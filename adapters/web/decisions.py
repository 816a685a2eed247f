"""/v1/decisions: decide an order, read it, settle, release or re-check it."""

from __future__ import annotations

import time
from typing import Any

from adapters.web.auth import requires, scope
from adapters.web.blueprint import ApiBlueprint
from adapters.web.context import ctx
from adapters.web.metrics import DECISION_SECONDS, REPLAYS, count_decision
from adapters.web.schemas.decisions import DecisionRequestSchema, DecisionSchema
from creditctl.domain.api_key import Role
from creditctl.domain.decision import Decision, Order
from creditctl.services.decide_order import decide_order
from creditctl.services.get_decision import get_decision
from creditctl.services.recheck_order import recheck_order
from creditctl.services.resolve_hold import release_order, settle_order

bp = ApiBlueprint(
    "decisions",
    __name__,
    url_prefix="/v1/decisions",
    description="One decision per purchase order: approve, defer, block or freeze.",
)


@bp.route("", methods=["POST"])
@requires(Role.ORDERS)
@bp.arguments(DecisionRequestSchema())  # an instance: webargs would build one per request
@bp.response(201, DecisionSchema, description="A new decision")
@bp.alt_response(
    200, schema=DecisionSchema, description="A replay: the decision already made for this order id and body"
)
@bp.alt_response(409, description="The order id was already used with another body")
def decide(body: dict[str, Any]) -> tuple[Decision, int]:
    """Decide one order. Idempotent by order id; approval reserves the amount (a hold)."""
    c = ctx()
    started = time.perf_counter()
    result = decide_order(
        Order(**body),
        scope=scope(),
        uow=c.uow(),
        balances=c.balances,
        clock=c.clock,
        deadline_s=c.decision_deadline_s,
    )
    DECISION_SECONDS.observe(time.perf_counter() - started)
    if result.created:
        count_decision(result.decision.outcome.value, [r.reason for r in result.decision.reasons])
        return result.decision, 201
    REPLAYS.inc()
    return result.decision, 200


@bp.route("/<string:order_id>", methods=["GET"])
@requires(Role.ORDERS, Role.AUDITOR, Role.ADMIN)
@bp.response(200, DecisionSchema)
def read(order_id: str) -> Decision:
    """The decision for an order (a deferral past its deadline shows as blocked)."""
    c = ctx()
    return get_decision(order_id, scope=scope(), uow=c.uow(), clock=c.clock)


@bp.route("/<string:order_id>/settle", methods=["POST"])
@requires(Role.ORDERS)
@bp.response(200, DecisionSchema)
def settle(order_id: str) -> Decision:
    """Haier debited the order: the hold is settled (it counts until a newer balance includes it)."""
    c = ctx()
    return settle_order(order_id, scope=scope(), uow=c.uow(), clock=c.clock)


@bp.route("/<string:order_id>/release", methods=["POST"])
@requires(Role.ORDERS)
@bp.response(200, DecisionSchema)
def release(order_id: str) -> Decision:
    """The order was cancelled: its hold stops counting, or its deferral ends."""
    c = ctx()
    return release_order(order_id, scope=scope(), uow=c.uow(), clock=c.clock)


@bp.route("/<string:order_id>/recheck", methods=["POST"])
@requires(Role.ORDERS)
@bp.response(200, DecisionSchema)
def recheck(order_id: str) -> Decision:
    """Evaluate a deferred order again on the newest balance; other decisions come back unchanged."""
    c = ctx()
    return recheck_order(
        order_id,
        scope=scope(),
        uow=c.uow(),
        balances=c.balances,
        clock=c.clock,
        deadline_s=c.decision_deadline_s,
    )
