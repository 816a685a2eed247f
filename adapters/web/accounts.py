"""/v1/accounts: what counts against an account, and freezing it by hand."""

from __future__ import annotations

from typing import Any

from adapters.web.auth import current_key, requires, scope
from adapters.web.blueprint import ApiBlueprint
from adapters.web.context import ctx
from adapters.web.schemas.accounts import AccountSchema, FreezeRequestSchema
from adapters.web.schemas.reviews import FreezeListSchema
from creditctl.domain.api_key import Role
from creditctl.services.account_view import AccountView, view_account
from creditctl.services.freeze_account import freeze_account, unfreeze_account
from creditctl.services.freeze_history import account_freezes

bp = ApiBlueprint(
    "accounts",
    __name__,
    url_prefix="/v1/accounts",
    description="Credit accounts: one payer account of a customer in one sales organisation.",
)


@bp.route("/<string:customer_code>/<string:sale_group_code>", methods=["GET"])
@requires(Role.ORDERS, Role.ADMIN, Role.AUDITOR)
@bp.response(200, AccountSchema)
def read(customer_code: str, sale_group_code: str) -> AccountView:
    """Balance snapshot, exposure, available, credit limit and grade, status, open holds."""
    c = ctx()
    return view_account(customer_code, sale_group_code, scope=scope(), uow=c.uow(), clock=c.clock)


@bp.route("/<string:customer_code>/<string:sale_group_code>/freeze", methods=["POST"])
@requires(Role.ADMIN)
@bp.arguments(FreezeRequestSchema)
@bp.response(200, AccountSchema)
@bp.alt_response(
    409,
    description="Already frozen by an administrator for another reason: errors name that freeze "
    "(frozen_reason, frozen_by, frozen_at); unfreeze first",
)
def freeze(body: dict[str, Any], customer_code: str, sale_group_code: str) -> AccountView:
    """Freeze the account: every order on it is blocked until it is unfrozen.

    Again with the same reason: 200, nothing changes. On a freeze the rules made: the administrator's
    freeze replaces it (the rules no longer lift it). On another administrator's freeze with another
    reason: 409 naming it."""
    c = ctx()
    freeze_account(
        customer_code,
        sale_group_code,
        reason=body["reason"],
        by=current_key().name,
        scope=scope(),
        uow=c.uow(),
        clock=c.clock,
    )
    return view_account(customer_code, sale_group_code, scope=scope(), uow=c.uow(), clock=c.clock)


@bp.route("/<string:customer_code>/<string:sale_group_code>/unfreeze", methods=["POST"])
@requires(Role.ADMIN)
@bp.arguments(FreezeRequestSchema)
@bp.response(200, AccountSchema)
def unfreeze(body: dict[str, Any], customer_code: str, sale_group_code: str) -> AccountView:
    """Lift a freeze, with the reason for the record."""
    c = ctx()
    unfreeze_account(
        customer_code,
        sale_group_code,
        reason=body["reason"],
        by=current_key().name,
        scope=scope(),
        uow=c.uow(),
        clock=c.clock,
    )
    return view_account(customer_code, sale_group_code, scope=scope(), uow=c.uow(), clock=c.clock)


@bp.route("/<string:customer_code>/<string:sale_group_code>/freezes", methods=["GET"])
@requires(Role.ADMIN, Role.AUDITOR)
@bp.response(200, FreezeListSchema)
def freezes(customer_code: str, sale_group_code: str) -> dict[str, Any]:
    """The account's freezes, newest first: who froze it, when and why; how it was lifted, by whom, when
    (manual, rule: the rule set's auto_unfreeze, replaced: an administrator's freeze took over a rule's)."""
    found = account_freezes(customer_code, sale_group_code, scope=scope(), uow=ctx().uow())
    return {"freezes": found}
