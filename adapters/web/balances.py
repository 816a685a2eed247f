"""Balances: /v1/balances/{customer_code}, and the seed-compatible /api/haier/balance/."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from adapters.web.auth import check_role, requires, scope
from adapters.web.blueprint import ApiBlueprint
from adapters.web.context import ctx
from adapters.web.schemas.balances import BalancesQuerySchema, CompatQuerySchema, CustomerBalancesSchema
from creditctl.domain.account import CreditAccount
from creditctl.domain.api_key import Role
from creditctl.domain.errors import NotFound
from creditctl.domain.money import fmt
from creditctl.ports.balance_provider import BalanceUnavailable
from creditctl.services.customers import customer_balances

bp = ApiBlueprint(
    "balances",
    __name__,
    url_prefix="/v1/balances",
    description="Payer account balances as last fetched from Haier.",
)
compat = ApiBlueprint(
    "haier_compat",
    __name__,
    url_prefix="/api/haier",
    description="The seed system's balance answer, for existing front ends.",
)

# The seed system's statuses for its error codes.
COMPAT_STATUS = {
    "AUTH_FAILED": 401,
    "TOKEN_EXPIRED": 401,
    "INVALID_CREDENTIALS": 401,
    "BALANCE_QUERY_FAILED": 400,
    "UPSTREAM_TIMEOUT": 503,
    "UPSTREAM_MALFORMED": 503,
    "RATE_LIMITED": 503,
    "SERVICE_UNAVAILABLE": 503,
    "CIRCUIT_OPEN": 503,
    "UNKNOWN_CUSTOMER": 404,
    "UNKNOWN_SALE_GROUP": 404,
}


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


@compat.route("/balance/", methods=["GET"])
@requires(Role.ORDERS)
@compat.arguments(CompatQuerySchema, location="query")
def seed_balance(query: dict[str, Any]) -> Response | tuple[Response, int]:
    """{"success": true, "data": {payerAccountBalance, ...}, "accounts": [...]}, or success false."""
    c = ctx()
    try:
        accounts = customer_balances(
            query["customer_code"],
            refresh=None,
            scope=scope(),
            uow=c.uow(),
            balances=c.balances,
            clock=c.clock,
        )
    except BalanceUnavailable as exc:
        return _failure(exc.code, exc.message)
    except NotFound:
        return _failure("UNKNOWN_CUSTOMER", "unknown customer")
    entries = [_seed_entry(a) for a in accounts if a.snapshot is not None]
    wanted = query["sale_group_code"]
    data = next((e for e in entries if wanted is None or e["saleGroupCode"] == wanted), None)
    if data is None:
        return _failure("UNKNOWN_SALE_GROUP", "no payer account in that sales group")
    return jsonify({"success": True, "data": data, "accounts": entries})


def _seed_entry(a: CreditAccount) -> dict[str, Any]:
    assert a.snapshot is not None
    return {
        "payerAccountBalance": fmt(a.snapshot.amount),
        "payerAccountName": a.payer_account_name,
        "payerAccountCode": a.payer_account_code,
        "saleGroupCode": a.sale_group_code,
        "saleGroupName": a.sale_group_name,
        "fetchedAt": a.snapshot.fetched_at.isoformat(),
        "source": a.snapshot.source,
    }


def _failure(code: str, message: str) -> tuple[Response, int]:
    return jsonify({"success": False, "error": {"code": code, "message": message}}), COMPAT_STATUS.get(
        code, 503
    )
