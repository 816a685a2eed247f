"""/v1/reviews: the queue of deferred orders, worked by administrators, read by auditors."""

from __future__ import annotations

from typing import Any

from adapters.web.auth import actor, current_key, requires, requires_act, scope
from adapters.web.blueprint import ApiBlueprint
from adapters.web.context import ctx
from adapters.web.cursors import decode_position, encode_position
from adapters.web.idempotency import idempotent
from adapters.web.schemas.decisions import DecisionSchema, OrderRefQuerySchema
from adapters.web.schemas.reviews import (
    BatchRecheckResultSchema,
    BatchRecheckSchema,
    QueuePageSchema,
    QueueQuerySchema,
    RecheckActionSchema,
    ReleaseActionSchema,
    ReviewActionSchema,
)
from creditctl.domain.api_key import Role
from creditctl.domain.authority import Act
from creditctl.domain.decision import Decision
from creditctl.services.reviews import (
    BatchRecheck,
    QueueFilter,
    recheck_deferred,
    recheck_queue,
    reject_deferred,
    release_deferred,
    review_queue,
)

bp = ApiBlueprint(
    "reviews",
    __name__,
    url_prefix="/v1/reviews",
    description="The review queue: deferred orders, released within the key's approval authority, "
    "rejected or re-checked by administrators; auditors read it.",
)
_FILTERS = (
    "customer_code",
    "sale_group_code",
    "reason",
    "min_age_s",
    "max_age_s",
    "min_amount",
    "max_amount",
)


@bp.route("", methods=["GET"])
@requires(Role.ADMIN, Role.AUDITOR)
@bp.arguments(QueueQuerySchema(), location="query", as_kwargs=True)
@bp.response(200, QueuePageSchema)
@bp.alt_response(404, description="A customer_code the key may not see")
@bp.alt_response(422, description="A bad filter, or a cursor outside its pattern")
def queue(limit: int, cursor: str | None = None, **filters: Any) -> dict[str, Any]:
    """Deferred orders, oldest first (by when they were first decided), a page at a time."""
    items, next_cursor = queue_page(filters, cursor, limit)
    return {"items": items, "next_cursor": next_cursor, "limit": limit}


def queue_page(filters: dict[str, Any], cursor: str | None, limit: int) -> tuple[list[Decision], str | None]:
    """One page of the queue as the caller's key sees it, and the next page's cursor (None: the last).
    The console's review page pages the queue with this too, so both hand out the same cursors."""
    items = review_queue(
        _filter(filters), after=decode_position(cursor), limit=limit + 1, scope=scope(), uow=ctx().uow()
    )
    more = len(items) > limit
    items = items[:limit]
    return items, _encode(items[-1]) if more else None


@bp.route("/recheck", methods=["POST"])
@requires(Role.ADMIN)
@bp.arguments(BatchRecheckSchema())
@bp.response(200, BatchRecheckResultSchema)
@bp.alt_response(404, description="A filter's customer_code the key may not see")
def recheck_many(body: dict[str, Any]) -> BatchRecheck:
    """Re-check every deferred order matching the filter (the whole queue without one), oldest first;
    answers counts by new outcome."""
    c = ctx()
    return recheck_queue(
        _filter(body["filter"]),
        reason=body["reason"],
        key=current_key(),
        actor=actor(),
        uow=c.uow(),
        balances=c.balances,
        deadline_s=c.decision_deadline_s,
    )


@bp.route("/<path:order_id>/release", methods=["POST"])
@requires_act(Act.RELEASE_DEFERRED)
@idempotent()
@bp.arguments(OrderRefQuerySchema(), location="query", as_kwargs=True)
@bp.arguments(ReleaseActionSchema(), location="json")
@bp.response(200, DecisionSchema)
@bp.alt_response(
    403,
    description="Beyond the key's approval authority (errors name approval_limit and amount), or an "
    "overdraft without override or beyond the key's authority (errors name authority)",
)
@bp.alt_response(
    409,
    description="Not deferred, or not releasable now: no usable balance (never approved on an unknown "
    "balance) or a frozen account",
)
def release(body: dict[str, Any], order_id: str, customer_code: str | None = None) -> Decision:
    """Approve a deferred order by hand, taking its hold even beyond what the rules allowed, within the
    key's approval authority (an amount set when the key was created).

    The account is judged as it is now: a release that would take available + credit limit below zero
    (an overdraft) is refused unless `override` is true, the key is not limited to customers and its
    approval limit covers the overdraft. The answer's last review entry carries available_before,
    available_after, credit_limit, overdraft and override."""
    c = ctx()
    return release_deferred(
        order_id,
        customer_code=customer_code,
        reason=body["reason"],
        key=current_key(),
        actor=actor(),
        uow=c.uow(),
        balances=c.balances,
        deadline_s=c.decision_deadline_s,
        override=body["override"],
    )


@bp.route("/<path:order_id>/reject", methods=["POST"])
@requires_act(Act.REJECT_DEFERRED)
@idempotent()
@bp.arguments(OrderRefQuerySchema(), location="query", as_kwargs=True)
@bp.arguments(ReviewActionSchema(), location="json")
@bp.response(200, DecisionSchema)
@bp.alt_response(409, description="Not deferred")
def reject(body: dict[str, Any], order_id: str, customer_code: str | None = None) -> Decision:
    """Block a deferred order by hand, with a reason."""
    return reject_deferred(
        order_id,
        customer_code=customer_code,
        reason=body["reason"],
        key=current_key(),
        actor=actor(),
        uow=ctx().uow(),
    )


@bp.route("/<path:order_id>/recheck", methods=["POST"])
@requires(Role.ADMIN)
@bp.arguments(OrderRefQuerySchema(), location="query", as_kwargs=True)
@bp.arguments(RecheckActionSchema(), location="json")
@bp.response(200, DecisionSchema)
@bp.alt_response(409, description="Not deferred")
def recheck(body: dict[str, Any], order_id: str, customer_code: str | None = None) -> Decision:
    """Evaluate a deferred order again on the newest balance, recorded as a review."""
    c = ctx()
    return recheck_deferred(
        order_id,
        customer_code=customer_code,
        reason=body["reason"],
        key=current_key(),
        actor=actor(),
        uow=c.uow(),
        balances=c.balances,
        deadline_s=c.decision_deadline_s,
    )


def _filter(values: dict[str, Any]) -> QueueFilter:
    return QueueFilter(**{k: values[k] for k in _FILTERS if values.get(k) is not None})


def _encode(last: Decision) -> str:
    return encode_position(last.decided_at, last.id)
