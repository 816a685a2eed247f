"""The seed system's balance answer, GET /api/haier/balance/, for existing front ends.

Those front ends read `data.success`, `data.data.payerAccountBalance` and show `data.error` as a message.
So every answer of this endpoint keeps that shape, errors included: `{"success": false, "error":
"<message>", "code": "<CODE>"}` with the HTTP status of the error, never a problem document (a missing
key, a wrong role and a bad query parameter too, which elsewhere in the API are problems)."""

from __future__ import annotations

import http
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Response, current_app
from werkzeug.exceptions import HTTPException

from adapters.web.auth import requires, scope
from adapters.web.blueprint import ApiBlueprint
from adapters.web.context import ctx
from adapters.web.errors import DATABASE_DETAIL, DATABASE_RETRY_AFTER_S, database_unavailable
from adapters.web.rate_limit import RateLimited
from adapters.web.schemas.compat import SeedBalanceSchema, SeedErrorSchema, SeedQuerySchema
from creditctl.domain.account import CreditAccount
from creditctl.domain.api_key import Role
from creditctl.domain.errors import (
    Forbidden,
    InvalidRequest,
    NotFound,
    Unauthenticated,
    UnknownAccount,
    UnknownCustomer,
    UpstreamUnavailable,
)
from creditctl.ports.balance_provider import BalanceUnavailable
from creditctl.services.customers import customer_balances

log = logging.getLogger("creditctl.web")
F = TypeVar("F", bound=Callable[..., Any])

compat = ApiBlueprint(
    "haier_compat",
    __name__,
    url_prefix="/api/haier",
    description="The seed system's balance answer, for existing front ends. Every answer, errors "
    'included, is `{"success": ...}` JSON; errors are `{"success": false, "error": "<message>", '
    '"code": "<CODE>"}` with the status of the error.',
)

# The seed system's statuses for the upstream's error codes.
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
    "UNKNOWN_CUSTOMER": 404,  # Haier does not know the customer creditctl knows
}
INTERNAL_MESSAGE = "Something went wrong on our side; the X-Request-ID header helps us find it"


def seed_shaped_errors(view: F) -> F:
    """Answer every error raised by `view` (or by the decorators below this one: the key check, the
    query parsing) in the seed's shape."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except HTTPException as exc:
            if exc.code is None or exc.code < 400:
                raise
            return _http_failure(exc)
        except Exception as exc:
            return _failure_for(exc)

    return wrapper  # type: ignore[return-value]


@compat.route("/balance/", methods=["GET"])
@compat.response(200, SeedBalanceSchema, description="The payer account asked for, and every other one.")
@compat.alt_response(
    400, schema=SeedErrorSchema, description="BALANCE_QUERY_FAILED: Haier refused the balance query."
)
@compat.alt_response(
    401,
    schema=SeedErrorSchema,
    description="UNAUTHENTICATED: no API key or an invalid one (with WWW-Authenticate); or AUTH_FAILED, "
    "TOKEN_EXPIRED, INVALID_CREDENTIALS: Haier refused creditctl's credentials.",
)
@compat.alt_response(403, schema=SeedErrorSchema, description="FORBIDDEN: the key's role is not orders.")
@compat.alt_response(
    404,
    schema=SeedErrorSchema,
    description="UNKNOWN_CUSTOMER (also for a customer the key may not see) or UNKNOWN_SALE_GROUP.",
)
@compat.alt_response(
    422, schema=SeedErrorSchema, description="INVALID_REQUEST: a missing or bad query parameter."
)
@compat.alt_response(500, schema=SeedErrorSchema, description="INTERNAL_ERROR: a fault of ours.")
@compat.alt_response(
    503,
    schema=SeedErrorSchema,
    description="The balance could not be read from Haier and the stored one is too old: UPSTREAM_TIMEOUT, "
    "UPSTREAM_MALFORMED, RATE_LIMITED, SERVICE_UNAVAILABLE or CIRCUIT_OPEN; or creditctl's database does "
    "not answer: SERVICE_UNAVAILABLE (each with Retry-After).",
)
@seed_shaped_errors
@requires(Role.ORDERS)
@compat.arguments(SeedQuerySchema, location="query")
def seed_balance(query: dict[str, Any]) -> dict[str, Any]:
    """The seed system's balance answer: `data` is the account of `sale_group_code` (or the first one)."""
    c = ctx()
    customer, wanted = query["customer_code"], query["sale_group_code"]
    accounts = customer_balances(
        customer, refresh=None, scope=scope(), uow=c.uow(), balances=c.balances, clock=c.clock
    )
    entries = [_seed_entry(a) for a in accounts if a.snapshot is not None]
    data = next((e for e in entries if wanted is None or e["saleGroupCode"] == wanted), None)
    if data is None:
        raise UnknownAccount(customer, wanted or "(any)")
    return {"success": True, "data": data, "accounts": entries}


def _seed_entry(a: CreditAccount) -> dict[str, Any]:
    assert a.snapshot is not None
    return {
        "payerAccountBalance": a.snapshot.amount,
        "payerAccountName": a.payer_account_name,
        "payerAccountCode": a.payer_account_code,
        "saleGroupCode": a.sale_group_code,
        "saleGroupName": a.sale_group_name,
        "fetchedAt": a.snapshot.fetched_at,
        "source": a.snapshot.source,
    }


def _failure_for(exc: Exception) -> Response:
    if isinstance(exc, BalanceUnavailable):
        status = COMPAT_STATUS.get(exc.code, 503)
        retry = {"Retry-After": str(int(exc.retry_after_s or 5))} if status == 503 else {}
        return seed_failure(status, exc.code, exc.message, retry)
    if isinstance(exc, RateLimited):
        retry = {"Retry-After": str(exc.retry_after_s)}
        return seed_failure(429, "RATE_LIMITED", f"this API key is over its rate; {exc}", retry)
    if isinstance(exc, UnknownAccount):
        return seed_failure(404, "UNKNOWN_SALE_GROUP", exc.message)
    if isinstance(exc, UnknownCustomer):
        return seed_failure(404, "UNKNOWN_CUSTOMER", exc.message)
    if isinstance(exc, NotFound):
        return seed_failure(404, "NOT_FOUND", exc.message)
    if isinstance(exc, Unauthenticated):
        challenge = {"WWW-Authenticate": 'Bearer realm="creditctl"'}
        return seed_failure(401, "UNAUTHENTICATED", exc.message, challenge)
    if isinstance(exc, Forbidden):
        return seed_failure(403, "FORBIDDEN", exc.message)
    if isinstance(exc, InvalidRequest):
        return seed_failure(422, "INVALID_REQUEST", exc.message)
    if isinstance(exc, UpstreamUnavailable):
        return seed_failure(503, "SERVICE_UNAVAILABLE", exc.message, {"Retry-After": "5"})
    if database_unavailable(exc):
        retry = {"Retry-After": str(DATABASE_RETRY_AFTER_S)}
        return seed_failure(503, "SERVICE_UNAVAILABLE", DATABASE_DETAIL, retry)
    log.exception("unexpected error: %s", type(exc).__name__)
    return seed_failure(500, "INTERNAL_ERROR", INTERNAL_MESSAGE)


def _http_failure(exc: HTTPException) -> Response:
    status = int(exc.code or 500)
    if status == 422:
        return seed_failure(422, "INVALID_REQUEST", _parse_errors_message(getattr(exc, "data", None)))
    headers = {k: v for k, v in exc.get_headers() if k.lower() in ("retry-after", "allow")}
    return seed_failure(status, http.HTTPStatus(status).name, exc.description or exc.name, headers)


def _parse_errors_message(data: Any) -> str:
    """webargs' {"messages": {"query": {"customer_code": ["Missing data ..."]}}} as one line of text."""
    parts: list[str] = []
    messages = data.get("messages", {}) if isinstance(data, dict) else {}
    for by_field in messages.values():
        for name, texts in by_field.items() if isinstance(by_field, dict) else [("query", by_field)]:
            listed = texts if isinstance(texts, list) else [texts]
            parts.append(f"{name}: {' '.join(str(t) for t in listed)}")
    return "; ".join(parts) or "the query parameters are not valid"


def seed_failure(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"success": False, "error": message, "code": code}
    response = current_app.response_class(
        current_app.json.dumps(body), status=status, mimetype="application/json"
    )
    response.headers.update(headers or {})
    return response
