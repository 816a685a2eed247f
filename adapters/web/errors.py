"""The one place errors become HTTP: domain errors, request parsing errors, the database away, and the
unexpected."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from adapters.web.problems import problem
from adapters.web.rate_limit import RateLimited
from creditctl.domain.errors import (
    Conflict,
    CreditctlError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    ReadReplicaNotReady,
    Unauthenticated,
    UpstreamUnavailable,
)
from creditctl.ports.balance_provider import BalanceUnavailable
from creditctl.ports.secret_box import SecretUnreadable

log = logging.getLogger("creditctl.web")

_STATUS: list[tuple[type[CreditctlError], int, str]] = [
    (NotFound, 404, "Not found"),
    (InvalidRequest, 422, "Invalid request"),
    (Conflict, 409, "Conflict"),
    (Unauthenticated, 401, "Unauthenticated"),
    (Forbidden, 403, "Forbidden"),
    (PreconditionFailed, 412, "Precondition failed"),
    (UpstreamUnavailable, 503, "Balance source unavailable"),
    (ReadReplicaNotReady, 503, "Read replica not ready"),
    (SecretUnreadable, 500, "Stored secret unreadable"),  # our keys or our data, not the request
]
_UPSTREAM_STATUS = {
    "AUTH_FAILED": 502,
    "TOKEN_EXPIRED": 502,
    "INVALID_CREDENTIALS": 502,
    "BALANCE_QUERY_FAILED": 502,
    "UPSTREAM_MALFORMED": 502,
    "UPSTREAM_TIMEOUT": 504,
    "RATE_LIMITED": 503,
    "SERVICE_UNAVAILABLE": 503,
    "CIRCUIT_OPEN": 503,
    "UNKNOWN_CUSTOMER": 404,
}


DATABASE_RETRY_AFTER_S = 2
DATABASE_DETAIL = (
    "The service's database does not answer; try again in a few seconds (a decision sent again with the "
    "same order id is decided once)"
)
# SQLSTATEs of a server that is going or gone: connection exceptions (class 08), shut down by an
# administrator or a crash, not accepting connections yet (starting, stopping), too many connections.
_AWAY_SQLSTATES = {"57P01", "57P02", "57P03", "53300"}
_SQLITE_CANTOPEN = 14


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(RateLimited, _rate_limited)
    app.register_error_handler(BalanceUnavailable, _upstream)
    app.register_error_handler(CreditctlError, _domain)
    app.register_error_handler(HTTPException, _http)
    app.register_error_handler(SQLAlchemyError, _database)
    app.register_error_handler(Exception, _unexpected)


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database could not be reached (refused, dropped, shutting down, no pooled
    connection in time), rather than that it refused a statement: a constraint, a bad query or a
    serialisation failure is not an outage and stays what it is."""
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:  # the connection died under it
        return True
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    orig = exc.orig
    if hasattr(orig, "sqlstate"):  # psycopg: the server's errors carry a SQLSTATE, the client's own none
        state = orig.sqlstate
        return state is None or state.startswith("08") or state in _AWAY_SQLSTATES
    return getattr(orig, "sqlite_errorcode", None) == _SQLITE_CANTOPEN  # the file cannot be opened


def status_of(exc: CreditctlError) -> tuple[int, str]:
    """The HTTP status and title of a domain error (the console's pages answer with the same)."""
    return next(((s, t) for cls, s, t in _STATUS if isinstance(exc, cls)), (400, "Bad request"))


def _domain(exc: CreditctlError) -> Response:
    status, title = status_of(exc)
    errors = exc.errors
    headers = dict(getattr(exc, "headers", None) or {})  # ETag of a 412, Retry-After of a key in use
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="creditctl"'
    if status == 503:
        headers["Retry-After"] = "5"
    if status == 500:
        log.error("%s: %s", exc.code, exc.message)
    return problem(status, title, exc.message, code=exc.code, errors=errors, headers=headers)


def _rate_limited(exc: RateLimited) -> Response:
    return problem(
        429,
        "Too many requests",
        f"This API key sent more requests than its rate allows; try again in {exc.retry_after_s} s "
        "(nothing was done)",
        code="rate_limited",
        headers={"Retry-After": str(exc.retry_after_s)},
    )


def _upstream(exc: BalanceUnavailable) -> Response:
    status = _UPSTREAM_STATUS.get(exc.code, 502)
    headers = {"Retry-After": str(int(exc.retry_after_s or 5))} if status in (503, 504) else {}
    return problem(
        status,
        "Balance source unavailable",
        exc.message,
        code=f"upstream.{exc.code.lower()}",
        errors={"upstream": [exc.code]},
        headers=headers,
    )


def _http(exc: HTTPException) -> Response:
    status = exc.code or 500
    errors = _field_errors(getattr(exc, "data", None))
    detail = exc.description or exc.name
    if status == 422 or (status == 400 and errors):
        status = 422 if status == 422 else 400
        detail = _what_is_not_valid(getattr(exc, "data", None))
        if "json" in errors and any("Invalid JSON" in m for m in errors["json"]):
            detail = "The request body is not valid JSON"
        data = getattr(exc, "data", None)
        if isinstance(data, dict) and data.get("detail"):
            detail = data["detail"]  # the JSON parser says what it refused (too deep, a duplicate key)
    if status == 413:
        detail = "The request body is larger than the 64 KiB this service accepts"
    headers = dict(exc.get_headers()) if status == 405 else {}
    headers.pop("Content-Type", None)
    return problem(status, exc.name, detail, code=f"http.{status}", errors=errors, headers=headers)


_PARTS = {"json": "The request body", "query": "A query parameter", "headers": "A header"}


def _what_is_not_valid(data: Any) -> str:
    """Name the part of the request that was refused: the body, a query parameter or a header."""
    messages = data.get("messages") if isinstance(data, dict) else None
    parts = {_PARTS.get(location, "The request") for location in messages or {"json": None}}
    part = parts.pop() if len(parts) == 1 else "The request"
    return f"{part} is not valid: see errors for each field"


def _database(exc: SQLAlchemyError) -> Response:
    if not database_unavailable(exc):
        return _unexpected(exc)
    log.warning("database unavailable: %s", _first_line(exc))
    return problem(
        503,
        "Database unavailable",
        DATABASE_DETAIL,
        code="unavailable.database",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0] if text else ''}"


def _unexpected(exc: Exception) -> Response:
    log.exception("unexpected error: %s", type(exc).__name__)
    return problem(
        500,
        "Internal server error",
        "Something went wrong on our side; the request id helps us find it",
        code="internal",
    )


def _field_errors(data: Any) -> dict[str, list[str]]:
    """Flatten webargs/marshmallow messages {"json": {"amount": ["..."]}} to {"amount": ["..."]}."""
    if not isinstance(data, dict) or "messages" not in data:
        return {}
    out: dict[str, list[str]] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, list) and all(isinstance(x, str) for x in value):
            out.setdefault(prefix or "body", []).extend(value)
        else:
            out.setdefault(prefix or "body", []).append(str(value))

    for location, messages in data["messages"].items():
        if location in ("json", "query", "view_args", "form") and isinstance(messages, dict):
            walk("", messages)
        else:
            walk(location, messages)
    return out
