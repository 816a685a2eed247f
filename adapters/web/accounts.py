"""/v1/accounts: what counts against an account, and freezing it by hand."""

from __future__ import annotations

from typing import Any

from adapters.web.auth import actor, current_key, requires, requires_act, scope
from adapters.web.blueprint import ApiBlueprint
from adapters.web.context import ctx
from adapters.web.cursors import decode_position, encode_position
from adapters.web.idempotency import idempotent
from adapters.web.schemas.accounts import (
    AccountSchema,
    FreezeRequestSchema,
    HoldPageQuerySchema,
    HoldPageSchema,
)
from adapters.web.schemas.reviews import FreezeListSchema
from adapters.web.schemas.rule_sets import AssignmentSchema, AssignSchema, ParamsSchema
from creditctl.domain.api_key import Role
from creditctl.domain.authority import Act
from creditctl.domain.rule_set import Assignment
from creditctl.services.account_holds import HoldCursor, list_holds
from creditctl.services.account_view import AccountView, view_account
from creditctl.services.freeze_account import freeze_account, unfreeze_account
from creditctl.services.freeze_history import account_freezes
from creditctl.services.rule_set_assignments import assign_rule_set, set_account_params, unassign_rule_set

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
    return view_account(customer_code, sale_group_code, scope=scope(), uow=c.uow(), balances=c.balances)


@bp.route("/<string:customer_code>/<string:sale_group_code>/holds", methods=["GET"])
@requires(Role.ORDERS, Role.ADMIN, Role.AUDITOR)
@bp.arguments(HoldPageQuerySchema(), location="query", as_kwargs=True)
@bp.response(200, HoldPageSchema)
@bp.alt_response(404, description="Unknown customer or account (or one the key may not see)")
def holds(
    customer_code: str, sale_group_code: str, status: list[str] | None, limit: int, cursor: str | None
) -> dict[str, Any]:
    """The account's holds, newest first, each with its life: held, settled in parts, released, expired.

    A page at a time (pass next_cursor as cursor); `status` filters (as things stand now: a hold past
    its expiry is expired even before the sweeper ends it)."""
    page = list_holds(
        customer_code,
        sale_group_code,
        statuses=frozenset(status) if status else None,
        after=decode_position(cursor),
        limit=limit,
        scope=scope(),
        uow=ctx().uow(),
        balances=ctx().balances,
    )
    return {"items": page.items, "next_cursor": _encode(page.next_cursor), "limit": limit}


def _encode(cursor: HoldCursor | None) -> str | None:
    return None if cursor is None else encode_position(*cursor)


@bp.route("/<string:customer_code>/<string:sale_group_code>/freeze", methods=["POST"])
@requires_act(Act.FREEZE)
@idempotent()
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
        who=current_key(),
        uow=c.uow(),
        actor=actor(),
        balances=c.balances,
    )
    return view_account(customer_code, sale_group_code, scope=scope(), uow=c.uow())


@bp.route("/<string:customer_code>/<string:sale_group_code>/unfreeze", methods=["POST"])
@requires_act(Act.LIFT_OWN_FREEZE)
@idempotent()
@bp.arguments(FreezeRequestSchema)
@bp.response(200, AccountSchema)
@bp.alt_response(
    403,
    description="The freeze was set by another owner or by the rules: a key not limited to customers "
    "lifts it",
)
def unfreeze(body: dict[str, Any], customer_code: str, sale_group_code: str) -> AccountView:
    """Lift a freeze, with the reason for the record: the owner who set it with any of their keys;
    another owner's or the rules' freeze needs an admin key not limited to customers."""
    c = ctx()
    unfreeze_account(
        customer_code,
        sale_group_code,
        reason=body["reason"],
        who=current_key(),
        uow=c.uow(),
        actor=actor(),
        balances=c.balances,
    )
    return view_account(customer_code, sale_group_code, scope=scope(), uow=c.uow())


@bp.route("/<string:customer_code>/<string:sale_group_code>/rule-set", methods=["PUT"])
@requires_act(Act.SET_ACCOUNT_PARAMS)
@bp.arguments(AssignSchema)
@bp.response(200, AssignmentSchema)
@bp.alt_response(404, description="No such account or rule set")
@bp.alt_response(409, description="The rule set is a draft: only published versions are assigned")
def assign(body: dict[str, Any], customer_code: str, sale_group_code: str) -> Assignment:
    """Decide this account with a published version (before the customer's and the default)."""
    return assign_rule_set(
        customer_code,
        sale_group_code,
        body["rule_set_id"],
        reason=body["reason"],
        by=current_key().name,
        uow=ctx().uow(),
        actor=actor(),
        balances=ctx().balances,
    )


@bp.route("/<string:customer_code>/<string:sale_group_code>/rule-set", methods=["DELETE"])
@requires_act(Act.SET_ACCOUNT_PARAMS)
@bp.response(204)
@bp.alt_response(404, description="No such account")
def unassign(customer_code: str, sale_group_code: str) -> None:
    """Remove the account's assignment: the customer's (or the default) applies again."""
    c = ctx()
    unassign_rule_set(customer_code, sale_group_code, uow=c.uow(), actor=actor(), balances=c.balances)


@bp.route("/<string:customer_code>/<string:sale_group_code>/params", methods=["PUT"])
@requires_act(Act.SET_ACCOUNT_PARAMS)
@bp.arguments(ParamsSchema)
@bp.response(200, AccountSchema)
@bp.alt_response(404, description="No such account")
@bp.alt_response(
    422, description="An unknown param, a value of the wrong type or outside its bounds: errors name each"
)
def put_params(body: dict[str, Any], customer_code: str, sale_group_code: str) -> AccountView:
    """Replace the account's parameter overrides (on top of whichever rule set applies); {} clears.
    Each param has a minimum and a maximum (the README's Parameter bounds table)."""
    c = ctx()
    set_account_params(
        customer_code, sale_group_code, body["params"], uow=c.uow(), actor=actor(), balances=c.balances
    )
    return view_account(customer_code, sale_group_code, scope=None, uow=c.uow())


@bp.route("/<string:customer_code>/<string:sale_group_code>/freezes", methods=["GET"])
@requires(Role.ADMIN, Role.AUDITOR)
@bp.response(200, FreezeListSchema)
def freezes(customer_code: str, sale_group_code: str) -> dict[str, Any]:
    """The account's freezes, newest first: who froze it, when and why; how it was lifted, by whom, when
    (manual, rule: the rule set's auto_unfreeze, replaced: an administrator's freeze took over a rule's)."""
    c = ctx()
    found = account_freezes(customer_code, sale_group_code, scope=scope(), uow=c.uow(), balances=c.balances)
    return {"freezes": found}
