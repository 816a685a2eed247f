"""Balances: /v1/balances/{customer_code} (the seed-compatible /api/haier/balance/ is in compat.py)."""

from __future__ import annotations

from typing import Any

from adapters.web.auth import check_role, requires, scope
from adapters.web.blueprint import ApiBlueprint
from adapters.web.context import ctx
from adapters.web.schemas.balances import BalancesQuerySchema, CustomerBalancesSchema
from creditctl.domain.api_key import Role
from creditctl.services.customers import customer_balances

bp = ApiBlueprint(
    "balances",
    __name__,
    url_prefix="/v1/balances",
    description="Payer account balances as last fetched from Haier.",
)


@bp.route("/<string:customer_code>", methods=["GET"])
@requires(Role.ORDERS, Role.ADMIN, Role.AUDITOR)
@bp.arguments(BalancesQuerySchema, location="query")
@bp.response(200, CustomerBalancesSchema)
def read(query: dict[str, Any], customer_code: str) -> dict[str, Any]:
    """Every payer account of the customer with fetched_at and source; ?refresh=true asks Haier first.

    A refresh calls the upstream and stores what it answers: orders or admin keys only."""
    if query["refresh"]:
        check_role(Role.ORDERS, Role.ADMIN)
    c = ctx()
    accounts = customer_balances(
        customer_code,
        refresh=query["refresh"] or False,
        scope=scope(),
        uow=c.uow(),
        balances=c.balances,
        clock=c.clock,
    )
    return {"customer_code": customer_code, "accounts": accounts}
