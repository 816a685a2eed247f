"""/v1/customers: the customers creditctl knows (stored, or named by the balance provider)."""

from __future__ import annotations

from typing import Any

from adapters.web.auth import requires, scope
from adapters.web.blueprint import ApiBlueprint
from adapters.web.context import ctx
from adapters.web.schemas.customers import CustomerListSchema
from creditctl.domain.api_key import Role
from creditctl.services.customers import list_customers

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
