"""/v1/customers: the customers creditctl knows (stored, or named by the balance provider)."""

from __future__ import annotations

from typing import Any

from adapters.web.auth import actor, current_key, requires, requires_act, scope
from adapters.web.blueprint import ApiBlueprint
from adapters.web.context import ctx
from adapters.web.schemas.customers import CustomerListSchema
from adapters.web.schemas.rule_sets import AssignmentSchema, AssignSchema
from creditctl.domain.api_key import Role
from creditctl.domain.authority import Act
from creditctl.domain.rule_set import Assignment
from creditctl.services.customers import list_customers
from creditctl.services.rule_set_assignments import WHOLE_CUSTOMER, assign_rule_set, unassign_rule_set

bp = ApiBlueprint(
    "customers",
    __name__,
    url_prefix="/v1/customers",
    description="Known customers, their payer accounts and where their balances come from.",
)


@bp.route("", methods=["GET"])
@requires(Role.ADMIN, Role.AUDITOR)
@bp.response(200, CustomerListSchema)
def index() -> dict[str, Any]:
    """Every known customer with its payer accounts; a key limited to customers sees only its own."""
    c = ctx()
    listed = list_customers(scope=scope(), uow=c.uow(), balances=c.balances, source=c.source_of_balances())
    return {"customers": listed}


@bp.route("/<string:customer_code>/rule-set", methods=["PUT"])
@requires_act(Act.CHANGE_RULE_SETS)
@bp.arguments(AssignSchema)
@bp.response(200, AssignmentSchema)
@bp.alt_response(404, description="No such customer or rule set")
@bp.alt_response(409, description="The rule set is a draft: only published versions are assigned")
def assign(body: dict[str, Any], customer_code: str) -> Assignment:
    """Decide every account of this customer with a published version (unless an account has its own)."""
    return assign_rule_set(
        customer_code,
        WHOLE_CUSTOMER,
        body["rule_set_id"],
        reason=body["reason"],
        by=current_key().name,
        uow=ctx().uow(),
        actor=actor(),
    )


@bp.route("/<string:customer_code>/rule-set", methods=["DELETE"])
@requires_act(Act.CHANGE_RULE_SETS)
@bp.response(204)
@bp.alt_response(404, description="No such customer")
def unassign(customer_code: str) -> None:
    """Remove the customer's assignment: the global default applies again."""
    unassign_rule_set(customer_code, WHOLE_CUSTOMER, uow=ctx().uow(), actor=actor())
