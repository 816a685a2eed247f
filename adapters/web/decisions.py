"""/v1/decisions: decide an order, read it, settle, release or re-check it."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, request

from adapters.web.auth import actor, check_role, current_key, gate, requires, requires_act, scope
from adapters.web.blueprint import ApiBlueprint
from adapters.web.context import ctx
from adapters.web.json_provider import plain_json_body
from adapters.web.metrics import DECIDED_TOGETHER, DECISION_SECONDS, REPLAYS, count_decision
from adapters.web.schemas.decisions import (
    DecisionRequestSchema,
    DecisionSchema,
    EndHoldRequestSchema,
    IdempotencyHeaderSchema,
    OrderRefQuerySchema,
    SettleRequestSchema,
    decision_json,
    fast_decision_request,
)
from creditctl.domain.api_key import ApiKey, Role
from creditctl.domain.audit import key_actor
from creditctl.domain.authority import Act
from creditctl.domain.decision import Decision, Order
from creditctl.domain.errors import InvalidRequest
from creditctl.services.context import AppContext
from creditctl.services.decide_order import decide_order
from creditctl.services.get_decision import get_decision
from creditctl.services.recheck_order import recheck_order
from creditctl.services.resolve_hold import release_order, settle_order

F = TypeVar("F", bound=Callable[..., Any])
_READERS = (Role.ORDERS, Role.AUDITOR, Role.ADMIN)
bp = ApiBlueprint(
    "decisions",
    __name__,
    url_prefix="/v1/decisions",
    description="One decision per purchase order: approve, defer, block or freeze.",
)


def _link(path: str, method: str, description: str) -> dict[str, Any]:
    """An OpenAPI link from a decision to a call on its order (schemathesis' stateful phase follows it)."""
    return {
        "operationRef": "#/paths/" + path.replace("~", "~0").replace("/", "~1") + f"/{method}",
        "parameters": {
            "order_id": "$response.body#/order_id",
            "customer_code": "$response.body#/customer_code",
        },
        "description": description,
    }


_ORDER_LINKS = {
    "links": {
        "read": _link("/v1/decisions/{order_id}", "get", "Read this decision"),
        "settle": _link("/v1/decisions/{order_id}/settle", "post", "Settle this order's hold"),
        "release": _link("/v1/decisions/{order_id}/release", "post", "Release this order's hold"),
    }
}


@requires_act(Act.DECIDE_ORDER)
@bp.arguments(DecisionRequestSchema())  # an instance: webargs would build one per request
@bp.response(201, DecisionSchema, description="A new decision")
@bp.alt_response(
    200, schema=DecisionSchema, description="A replay: the decision already made for this order id and body"
)
@bp.alt_response(409, description="The order id was already used with another body")
@bp.doc(responses={201: _ORDER_LINKS, 200: _ORDER_LINKS})
def _decide_stack(body: dict[str, Any]) -> tuple[Decision, int]:
    """Decide one order. Idempotent by order id; approval reserves the amount (a hold)."""
    return _decided(body, current_key(), ctx(), g.get("request_id"))


# Direct views: the route's common case answered here, everything else handed untouched to the decorator
# stack above, which documents the route (its _apidoc, docstring and roles are the view's, so /openapi.json
# is the stack's) and keeps every refusal in webargs' and marshmallow's words. The stack's wrappers
# (webargs' parse, flask-smorest's response and its pass-throughs, the gates asking for the key four times)
# cost ~30 µs of every decision; tests/api/test_direct_views.py compares the two answers byte for byte.
def documented_by(stack: Callable[..., Any]) -> Callable[[F], F]:
    """functools.wraps without the name: the view keeps its own, the route's endpoint (decisions.decide)."""
    return wraps(stack, assigned=("__module__", "__doc__"))  # type: ignore[return-value]


@bp.route("", methods=["POST"])
@documented_by(_decide_stack)
def decide() -> Any:
    key = gate(Act.DECIDE_ORDER)
    body = fast_decision_request(plain_json_body())
    if body is None:  # not plainly valid, or not valid at all: the schema decides, in its own words
        return _decide_stack()
    decision, status = _decided(body, key, ctx(), g.get("request_id"))
    return current_app.json.answer(decision_json(decision), status)  # type: ignore[attr-defined]


def _decided(
    body: dict[str, Any], key: ApiKey, c: AppContext, request_id: str | None
) -> tuple[Decision, int]:
    """The decision and its status (201 new, 200 a replay), its metrics counted; no Flask context needed
    (adapters/web/fast_lane.py calls it too)."""
    started = time.perf_counter()
    result = decide_order(
        Order(**body),
        scope=key.customers,
        uow=c.uow(),
        balances=c.balances,
        deadline_s=c.decision_deadline_s,
        actor=key_actor(key, request_id),
        turns=c.turns,
    )
    DECISION_SECONDS.observe(time.perf_counter() - started)
    if result.created:
        count_decision(result.decision.outcome.value, [r.reason for r in result.decision.reasons])
        if result.together:
            DECIDED_TOGETHER.inc()
        return result.decision, 201
    REPLAYS.inc()
    return result.decision, 200


# Order ids are the order systems' own and may hold "/" (PO/2026/0001): every route takes them whole.
@requires(*_READERS)
@bp.arguments(OrderRefQuerySchema(), location="query", as_kwargs=True)
@bp.response(200, DecisionSchema)
@bp.alt_response(409, description="The order id is used by several customers the key may see: name one")
def _read_stack(order_id: str, customer_code: str | None = None) -> Decision:
    """The decision for an order (a deferral past its deadline shows as blocked)."""
    return get_decision(order_id, customer_code=customer_code, scope=scope(), uow=ctx().uow())


@bp.route("/<path:order_id>", methods=["GET"])
@documented_by(_read_stack)
def read(order_id: str) -> Any:
    if request.args:  # a query: webargs reads and checks it
        return _read_stack(order_id=order_id)
    key = check_role(*_READERS)
    decision = get_decision(order_id, customer_code=None, scope=key.customers, uow=ctx().uow())
    return current_app.json.answer(decision_json(decision), 200)  # type: ignore[attr-defined]


@bp.route("/<path:order_id>/settle", methods=["POST"])
@requires_act(Act.END_HOLD)
@bp.arguments(OrderRefQuerySchema(), location="query", as_kwargs=True)
@bp.arguments(IdempotencyHeaderSchema(), location="headers", as_kwargs=True)
@bp.arguments(SettleRequestSchema(), location="json", as_kwargs=True)
@bp.response(200, DecisionSchema)
@bp.alt_response(
    409,
    description="More than is left (errors.remaining names it), a settlement id reused with another "
    "amount, or the hold is not open (released, expired, or there is none)",
)
def settle(
    order_id: str,
    customer_code: str | None = None,
    amount: Decimal | None = None,
    settlement_id: str | None = None,
    idempotency_key: str | None = None,
) -> Decision:
    """Haier debited the order, in full or a part of it (`amount`, with a `settlement_id`).

    Each settled part counts until a balance as of a moment after it arrives; the rest stays held.
    A retry with the same settlement id (or, without an amount, of a settled hold) answers 200 unchanged."""
    c = ctx()
    if idempotency_key is not None and settlement_id not in (None, idempotency_key):
        get_decision(order_id, customer_code=customer_code, scope=scope(), uow=c.uow())  # 404 first
        raise InvalidRequest("differs from the Idempotency-Key header", field="settlement_id")
    return settle_order(
        order_id,
        amount=amount,
        settlement_id=settlement_id or idempotency_key,
        customer_code=customer_code,
        scope=scope(),
        uow=c.uow(),
        actor=actor(),
    )


@bp.route("/<path:order_id>/release", methods=["POST"])
@requires_act(Act.END_HOLD)
@bp.arguments(OrderRefQuerySchema(), location="query", as_kwargs=True)
@bp.arguments(EndHoldRequestSchema(), location="json", as_kwargs=True)
@bp.response(200, DecisionSchema)
@bp.alt_response(409, description="The hold is not open (settled, expired, or there is none)")
def release(order_id: str, customer_code: str | None = None) -> Decision:
    """The order was cancelled: what is still held stops counting at once, or its deferral ends.

    Parts already settled keep counting until a balance includes them. A retry answers 200 unchanged."""
    c = ctx()
    return release_order(order_id, customer_code=customer_code, scope=scope(), uow=c.uow(), actor=actor())


@bp.route("/<path:order_id>/recheck", methods=["POST"])
@requires(Role.ORDERS)
@bp.arguments(OrderRefQuerySchema(), location="query", as_kwargs=True)
@bp.arguments(EndHoldRequestSchema(), location="json", as_kwargs=True)
@bp.response(200, DecisionSchema)
def recheck(order_id: str, customer_code: str | None = None) -> Decision:
    """Evaluate a deferred order again on the newest balance; other decisions come back unchanged."""
    c = ctx()
    return recheck_order(
        order_id,
        customer_code=customer_code,
        scope=scope(),
        uow=c.uow(),
        balances=c.balances,
        deadline_s=c.decision_deadline_s,
        actor=actor(),
    )
