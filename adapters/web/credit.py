"""Credit from payment behaviour: payment records, the credit profile, and credit limit requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import request

from adapters.web.auth import actor, current_key, requires, requires_act, scope
from adapters.web.blueprint import ApiBlueprint
from adapters.web.context import ctx
from adapters.web.cursors import decode_key, encode_key
from adapters.web.idempotency import idempotent
from adapters.web.schemas.credit import (
    BaseLimitSchema,
    CreditProfileSchema,
    LimitDecisionBodySchema,
    LimitRequestBodySchema,
    LimitRequestListSchema,
    LimitRequestQuerySchema,
    LimitRequestSchema,
    PaymentBatchResultSchema,
    PaymentBatchSchema,
    PaymentPageQuerySchema,
    PaymentPageSchema,
)
from creditctl.domain.api_key import Role
from creditctl.domain.authority import Act
from creditctl.domain.limit_request import CreditLimitRequest
from creditctl.domain.money import ZERO
from creditctl.domain.payment import PaymentRecord
from creditctl.services.credit_profile import CreditProfileView, set_base_limit, view_credit_profile
from creditctl.services.limit_requests import (
    RequestLimit,
    decide_limit_request,
    list_limit_requests,
    request_limit,
)
from creditctl.services.payments import PostPayments, list_payments, post_payments

bp = ApiBlueprint(
    "credit",
    __name__,
    url_prefix="/v1",
    description="Credit from payment behaviour: payments, credit profiles, temporary credit limits.",
)
ACCOUNT = "/accounts/<string:customer_code>/<string:sale_group_code>"
PAYMENTS_MAX_BYTES = 512 * 1024  # 1,000 records


@bp.before_request
def _larger_bodies_for_payments() -> None:
    if request.method == "POST" and request.path.endswith("/payments"):
        request.max_content_length = PAYMENTS_MAX_BYTES


@bp.route(f"{ACCOUNT}/payments", methods=["POST"])
@requires_act(Act.POST_PAYMENTS)
@idempotent()
@bp.arguments(PaymentBatchSchema())
@bp.response(200, PaymentBatchResultSchema)
@bp.alt_response(403, description="Only a finance key not limited to customers posts payment records")
@bp.alt_response(404, description="Unknown customer or account (or one the key may not see)")
def post(body: dict[str, Any], customer_code: str, sale_group_code: str) -> dict[str, Any]:
    """Store payment records, idempotent by invoice id: the same figures change nothing; other figures
    update the record (kept in its history). All records are stored or none (422 names each bad one).

    Payment records are finance's facts: a `finance` key not limited to customers posts them."""
    records = [
        PaymentRecord(
            invoice_id=p["invoice_id"],
            amount=p["amount"],
            due_date=p["due_date"],
            paid_amount=p["paid_amount"] if p["paid_amount"] is not None else ZERO,
            paid_date=p["paid_date"],
        )
        for p in body["payments"]
    ]
    cmd = PostPayments(customer_code, sale_group_code, records, by=current_key().name)
    c = ctx()
    result = post_payments(cmd, who=current_key(), uow=c.uow(), actor=actor(), balances=c.balances)
    return {
        "created": result.count("created"),
        "updated": result.count("updated"),
        "unchanged": result.count("unchanged"),
        "results": [{"invoice_id": i, "result": r} for i, r in result.results],
    }


@bp.route(f"{ACCOUNT}/payments", methods=["GET"])
@requires(Role.ADMIN, Role.ORDERS, Role.AUDITOR, Role.FINANCE)
@bp.arguments(PaymentPageQuerySchema(), location="query", as_kwargs=True)
@bp.response(200, PaymentPageSchema)
@bp.alt_response(404, description="Unknown customer or account (or one the key may not see)")
def list_(customer_code: str, sale_group_code: str, limit: int, cursor: str | None) -> dict[str, Any]:
    """The account's payment records by invoice id, a page at a time (pass next_cursor as cursor)."""
    c = ctx()
    page = list_payments(
        customer_code,
        sale_group_code,
        after=decode_key(cursor),
        limit=limit,
        scope=scope(),
        uow=c.uow(),
        balances=c.balances,
    )
    return {"items": page.items, "next_cursor": encode_key(page.next_cursor), "limit": limit}


@bp.route(f"{ACCOUNT}/credit-profile", methods=["GET"])
@requires(Role.ADMIN, Role.ORDERS, Role.AUDITOR, Role.FINANCE)
@bp.response(200, CreditProfileSchema)
@bp.alt_response(404, description="Unknown customer or account (or one the key may not see)")
def profile(customer_code: str, sale_group_code: str) -> CreditProfileView:
    """How credit.limit is computed: payment facts, the grade band matched, base, multiplier, cap,
    temporary limit, result, and the history of changes (newest first)."""
    c = ctx()
    return view_credit_profile(
        customer_code, sale_group_code, scope=scope(), uow=c.uow(), balances=c.balances
    )


@bp.route(f"{ACCOUNT}/credit-profile", methods=["PUT"])
@requires_act(Act.LOWER_BASE_LIMIT)
@bp.arguments(BaseLimitSchema())
@bp.response(200, CreditProfileSchema)
@bp.alt_response(
    403,
    description="Raising the base limit needs a key not limited to customers (a limited key asks for "
    "a temporary limit, which another owner approves)",
)
@bp.alt_response(404, description="Unknown customer or account (or one the key may not see)")
def set_base(body: dict[str, Any], customer_code: str, sale_group_code: str) -> CreditProfileView:
    """Set the account's base credit limit with a reason (null: back to the rule parameter).

    Lowering it is any administrator's act; raising it (the base the limit is computed from goes up)
    needs an admin key not limited to customers."""
    c = ctx()
    set_base_limit(
        customer_code,
        sale_group_code,
        base_limit=body["base_limit"],
        reason=body["reason"],
        who=current_key(),
        uow=c.uow(),
        actor=actor(),
        balances=c.balances,
    )
    return view_credit_profile(customer_code, sale_group_code, scope=scope(), uow=c.uow())


@bp.route(f"{ACCOUNT}/credit-limit-requests", methods=["POST"])
@requires_act(Act.REQUEST_TEMPORARY_LIMIT)
@idempotent()
@bp.arguments(LimitRequestBodySchema())
@bp.response(201, LimitRequestSchema)
@bp.alt_response(404, description="Unknown customer or account (or one the key may not see)")
def ask(body: dict[str, Any], customer_code: str, sale_group_code: str) -> dict[str, Any]:
    """Ask for a temporary credit limit until a time; another administrator approves or rejects it."""
    cmd = RequestLimit(customer_code, sale_group_code, body["amount"], body["until"], body["reason"])
    c = ctx()
    return _shown(*request_limit(cmd, key=current_key(), uow=c.uow(), actor=actor(), balances=c.balances))


@bp.route(f"{ACCOUNT}/credit-limit-requests", methods=["GET"])
@requires(Role.ADMIN, Role.ORDERS, Role.AUDITOR)
@bp.arguments(LimitRequestQuerySchema(), location="query", as_kwargs=True)
@bp.response(200, LimitRequestListSchema)
@bp.alt_response(404, description="Unknown customer or account (or one the key may not see)")
def account_requests(customer_code: str, sale_group_code: str, status: str | None) -> dict[str, Any]:
    """The account's credit limit requests, newest first (at most 500)."""
    found, now = list_limit_requests(
        customer_code=customer_code,
        sale_group_code=sale_group_code,
        status=status,
        scope=scope(),
        uow=ctx().uow(),
        balances=ctx().balances,
    )
    return {"items": [_shown(r, now) for r in found]}


@bp.route("/credit-limit-requests", methods=["GET"])
@requires(Role.ADMIN, Role.AUDITOR)
@bp.arguments(LimitRequestQuerySchema(), location="query", as_kwargs=True)
@bp.response(200, LimitRequestListSchema)
def all_requests(status: str | None) -> dict[str, Any]:
    """Credit limit requests of every account the key may see, newest first (at most 500)."""
    found, now = list_limit_requests(
        customer_code=None, sale_group_code=None, status=status, scope=scope(), uow=ctx().uow()
    )
    return {"items": [_shown(r, now) for r in found]}


def _decide(request_id: str, body: dict[str, Any], approve: bool) -> dict[str, Any]:
    return _shown(
        *decide_limit_request(
            request_id, approve=approve, note=body["note"], key=current_key(), uow=ctx().uow(), actor=actor()
        )
    )


@bp.route("/credit-limit-requests/<string:request_id>/approve", methods=["POST"])
@requires_act(Act.DECIDE_TEMPORARY_LIMIT)
@idempotent()
@bp.arguments(LimitDecisionBodySchema())
@bp.response(200, LimitRequestSchema)
@bp.alt_response(403, description="Four eyes: the owner who made the request may not approve it")
@bp.alt_response(404, description="Unknown request (or one the key may not see)")
@bp.alt_response(409, description="The request is not pending")
def approve(body: dict[str, Any], request_id: str) -> dict[str, Any]:
    """Approve as another owner than the requester (not merely another key): the temporary limit counts
    at once, until its end."""
    return _decide(request_id, body, approve=True)


@bp.route("/credit-limit-requests/<string:request_id>/reject", methods=["POST"])
@requires_act(Act.DECIDE_TEMPORARY_LIMIT)
@idempotent()
@bp.arguments(LimitDecisionBodySchema())
@bp.response(200, LimitRequestSchema)
@bp.alt_response(403, description="Four eyes: the owner who made the request may not reject it, with any key")
@bp.alt_response(404, description="Unknown request (or one the key may not see)")
@bp.alt_response(409, description="The request is not pending")
def reject(body: dict[str, Any], request_id: str) -> dict[str, Any]:
    """Reject with another administrator's key."""
    return _decide(request_id, body, approve=False)


def _shown(r: CreditLimitRequest, now: datetime) -> dict[str, Any]:
    return {
        "id": r.id,
        "customer_code": r.customer_code,
        "sale_group_code": r.sale_group_code,
        "amount": r.amount,
        "until": r.until,
        "reason": r.reason,
        "status": r.shown_status(now),
        "requested_by": r.requested_by,
        "requested_at": r.requested_at,
        "decided_by": r.decided_by,
        "decided_at": r.decided_at,
        "note": r.note,
    }
