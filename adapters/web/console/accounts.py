"""Accounts: the list (search, sort, pages) and one account with its holds, decisions, deferrals (the
account's part of the review queue), payments, credit profile, and freeze/unfreeze for administrators."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for

from adapters.web.auth import actor, check_role, current_key, scope
from adapters.web.console.blueprint import NavItem, bp
from adapters.web.console.pages import page
from adapters.web.context import ctx
from adapters.web.reviews import queue_page
from creditctl.domain.api_key import Role
from creditctl.domain.errors import Conflict, Forbidden, InvalidRequest
from creditctl.services.account_list import SORTS, list_accounts
from creditctl.services.account_view import view_account
from creditctl.services.credit_profile import view_credit_profile
from creditctl.services.decision_search import search_decisions
from creditctl.services.freeze_account import freeze_account, unfreeze_account
from creditctl.services.payments import list_payments

NAV_ITEMS = [NavItem("Accounts", "console.accounts")]
PER_PAGE = 50


def _int(name: str, default: int) -> int:
    try:
        return max(0, int(request.args.get(name, default)))
    except ValueError:
        return default


@bp.route("/")
def home() -> Any:
    return redirect(url_for("console.accounts"))


@bp.route("/accounts")
def accounts() -> Any:
    sort = request.args.get("sort", "customer")
    c = ctx()
    assert c.reports is not None, "reports are not wired"
    result = list_accounts(
        search=request.args.get("q", ""),
        sort=sort if sort in SORTS else "customer",
        descending=request.args.get("desc") == "1",
        offset=_int("offset", 0),
        limit=PER_PAGE,
        scope=scope(),
        reports=c.reports_now(),  # the primary's: the list an operator acts on must show their own changes
        uow=c.uow(),
    )
    return page(
        "accounts.html",
        result=result,
        q=request.args.get("q", ""),
        sort=sort,
        desc=request.args.get("desc") == "1",
        sorts=SORTS,
    )


@bp.route("/accounts/<customer_code>/<sale_group_code>")
def account(customer_code: str, sale_group_code: str) -> Any:
    c, limited = ctx(), scope()
    # The first of the page's reads opens a payer account the provider names that no order opened yet.
    view = view_account(customer_code, sale_group_code, scope=limited, uow=c.uow(), balances=c.balances)
    profile = view_credit_profile(customer_code, sale_group_code, scope=limited, uow=c.uow(), history=10)
    payments = list_payments(
        customer_code,
        sale_group_code,
        after=request.args.get("payments_after"),
        limit=20,
        scope=limited,
        uow=c.uow(),
    )
    decisions = search_decisions(customer_code=customer_code, limit=100, scope=limited, uow=c.uow())
    recent = [d for d in decisions.decisions if d.order.sale_group_code == sale_group_code][:20]
    account_filter = {"customer_code": customer_code, "sale_group_code": sale_group_code}
    deferred, more = queue_page(account_filter, None, 20)
    now, role = c.clock.now(), current_key().role
    return page(
        "account.html",
        view=view,
        profile=profile,
        payments=payments,
        decisions=recent,
        deferrals=[(d, (now - d.decided_at).total_seconds()) for d in deferred],
        more_deferrals=more is not None,
        may_review=role in (Role.ADMIN, Role.AUDITOR),
        may_freeze=role is Role.ADMIN,
    )


@bp.route("/accounts/<customer_code>/<sale_group_code>/freeze", methods=["POST"])
def freeze(customer_code: str, sale_group_code: str) -> Any:
    return _freeze_or_unfreeze(customer_code, sale_group_code, undo=False)


@bp.route("/accounts/<customer_code>/<sale_group_code>/unfreeze", methods=["POST"])
def unfreeze(customer_code: str, sale_group_code: str) -> Any:
    return _freeze_or_unfreeze(customer_code, sale_group_code, undo=True)


def _freeze_or_unfreeze(customer_code: str, sale_group_code: str, *, undo: bool) -> Any:
    key = check_role(Role.ADMIN)
    action = unfreeze_account if undo else freeze_account
    c = ctx()
    try:
        action(
            customer_code,
            sale_group_code,
            reason=request.form.get("reason", ""),
            who=key,
            uow=c.uow(),
            actor=actor(),  # the audit event names the signed-in key, as the API's freeze does
            balances=c.balances,
        )
    except (InvalidRequest, Conflict, Forbidden) as exc:
        flash(exc.message, "error")
    else:
        flash("Account unfrozen." if undo else "Account frozen.", "ok")
    return redirect(url_for("console.account", customer_code=customer_code, sale_group_code=sale_group_code))
