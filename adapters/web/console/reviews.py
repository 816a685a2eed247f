"""The review queue: deferred orders, oldest first, with their age and reasons. Administrators release
(within their key's approval authority), reject or re-check each one with a reason; auditors read it.
The queue, its cursor and every act are the calls /v1/reviews makes (adapters/web/reviews.py), so a
release here is the same release, with the same checks and audit event, as one through the API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flask import flash, redirect, request, url_for
from marshmallow import ValidationError

from adapters.web.auth import actor, check_role, current_key, scope
from adapters.web.console.blueprint import NavItem, bp
from adapters.web.console.decisions import review_rows
from adapters.web.console.pages import money_text, page, parse_query, safe_target, this_page
from adapters.web.context import ctx
from adapters.web.reviews import queue_page
from adapters.web.schemas.reviews import QueueQuerySchema, ReviewActionSchema
from creditctl.domain.api_key import Role
from creditctl.domain.decision import Decision
from creditctl.domain.errors import Conflict, Forbidden, InvalidRequest
from creditctl.services.account_view import view_account
from creditctl.services.reviews import recheck_deferred, reject_deferred, release_deferred

READERS = (Role.ADMIN, Role.AUDITOR)
NAV_ITEMS = [NavItem("Review queue", "console.reviews", READERS)]
FILTERS = ("customer_code", "sale_group_code", "reason", "min_amount", "max_amount", "min_age_s", "max_age_s")
PER_PAGE = 50


@dataclass(frozen=True, slots=True)
class AccountNow:
    """The order's account as the account view shows it now: what a reviewer weighs a release against.
    `available` is None when the balance is missing or too old (nothing is released on it)."""

    balance: Decimal | None
    available: Decimal | None
    credit_limit: Decimal

    def after_release(self, amount: Decimal) -> Decimal | None:
        """Available once the order's hold is taken: available - amount (negative: into the credit line)."""
        return None if self.available is None else self.available - amount


def accounts_now(items: list[Decision]) -> dict[tuple[str, str], AccountNow]:
    """Each account of the page's orders, read once (a page of 50 orders often holds a few accounts)."""
    c, limited, out = ctx(), scope(), {}
    for d in items:
        key = (d.order.customer_code, d.order.sale_group_code)
        if key not in out:
            view = view_account(*key, scope=limited, uow=c.uow())
            snap = view.account.snapshot
            out[key] = AccountNow(snap.amount if snap else None, view.available, view.credit_limit)
    return out


@bp.route("/reviews")
def reviews() -> Any:
    check_role(*READERS)
    shown = {k: v for k in (*FILTERS, "cursor") if (v := request.args.get(k, "").strip())}
    args = parse_query(QueueQuerySchema(), shown)
    cursor = args.pop("cursor")
    args.pop("limit")
    items, next_cursor = queue_page(args, cursor, PER_PAGE)
    key, now = current_key(), ctx().clock.now()
    limit = key.approval_limit
    figures = accounts_now(items)
    rows = [
        (
            d,
            (now - d.decided_at).total_seconds(),
            limit is not None and d.order.amount <= limit,
            figures[(d.order.customer_code, d.order.sale_group_code)],
        )
        for d in items
    ]
    shown.pop("cursor", None)
    return page(
        "reviews.html",
        rows=rows,
        filters=shown,
        cursor=cursor,
        next_cursor=next_cursor,
        key=key,
        may_act=key.role is Role.ADMIN,
        back=this_page(),
    )


@bp.route("/reviews/<customer_code>/<path:order_id>/release", methods=["POST"])
def review_release(customer_code: str, order_id: str) -> Any:
    key, c = check_role(Role.ADMIN), ctx()
    return _act(
        order_id,
        "released",
        lambda: release_deferred(
            order_id,
            customer_code=customer_code,
            reason=_reason(),
            key=key,
            actor=actor(),
            uow=c.uow(),
            balances=c.balances,
            deadline_s=c.decision_deadline_s,
            override=request.form.get("override") == "on",
        ),
    )


@bp.route("/reviews/<customer_code>/<path:order_id>/reject", methods=["POST"])
def review_reject(customer_code: str, order_id: str) -> Any:
    key = check_role(Role.ADMIN)
    return _act(
        order_id,
        "rejected",
        lambda: reject_deferred(
            order_id, customer_code=customer_code, reason=_reason(), key=key, actor=actor(), uow=ctx().uow()
        ),
    )


@bp.route("/reviews/<customer_code>/<path:order_id>/recheck", methods=["POST"])
def review_recheck(customer_code: str, order_id: str) -> Any:
    key, c = check_role(Role.ADMIN), ctx()
    return _act(
        order_id,
        "re-checked",
        lambda: recheck_deferred(
            order_id,
            customer_code=customer_code,
            reason=_reason(required=False),
            key=key,
            actor=actor(),
            uow=c.uow(),
            balances=c.balances,
            deadline_s=c.decision_deadline_s,
        ),
    )


def _reason(*, required: bool = True) -> str | None:
    """The form's reason, checked as the API checks it (1 to 500 characters, no control characters)."""
    text = request.form.get("reason", "").strip()
    if not text:
        if required:
            raise InvalidRequest("a reason is required", field="reason")
        return None
    try:
        return str(ReviewActionSchema().load({"reason": text})["reason"])
    except ValidationError as exc:
        messages = exc.normalized_messages().get("reason", [])
        raise InvalidRequest(f"the reason is not accepted: {' '.join(messages)}", field="reason") from None


def _figures(decision: Decision, done: str) -> str:
    """After a release: the available before and after that the release recorded on the order."""
    reviews = review_rows(decision) if done == "released" else []
    if not reviews or reviews[-1].action != "release":
        return ""  # approved by the rules on a newer balance: no release was recorded
    last = reviews[-1]
    return f"; available {money_text(last.available_before)} before, {money_text(last.available_after)} after"


def _act(order_id: str, done: str, action: Callable[[], Decision]) -> Any:
    """Run a reviewer's act; what the reviewer can fix or should know is flashed on the queue. An order
    the key may not see is not caught: it is a 404 here as in the API."""
    try:
        decision = action()
    except (InvalidRequest, Conflict, Forbidden) as exc:
        flash(f"{order_id} not {done}: {exc.message}", "error")
    else:
        state = "" if decision.state.value == "decided" else f", {decision.state.value}"
        flash(f"{order_id} {done}: now {decision.outcome.value}{state}{_figures(decision, done)}.", "ok")
    return redirect(safe_target(request.form.get("back"), "/console/reviews", url_for("console.reviews")))
