"""What every console page shares: the layout's globals, error pages, money, time and age formatting, and
reading a page's query with the API's own schema."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from types import ModuleType
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from flask import g, render_template, request
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import HTTPException

from adapters.web.console.blueprint import NAV, NavItem, bp
from adapters.web.errors import DATABASE_RETRY_AFTER_S, database_unavailable, status_of
from adapters.web.json_provider import NUL, NUL_MESSAGE
from creditctl.domain.errors import CreditctlError, InvalidRequest
from creditctl.domain.money import fmt, from_fen

log = logging.getLogger("creditctl.web")
DISPLAY_ZONE = ZoneInfo("Asia/Shanghai")


def init_nav(areas: tuple[ModuleType, ...]) -> None:
    """The menu, in the order of `areas`: each module's NAV_ITEMS."""
    NAV.clear()
    for area in areas:
        NAV.extend(getattr(area, "NAV_ITEMS", ()))


def nav_for_key() -> list[NavItem]:
    key = g.get("api_key")
    return [item for item in NAV if key is not None and item.allowed(key)]


@bp.app_template_filter("money")
def money_text(value: Decimal | str | None) -> str:
    """An amount with thousands separators and two places; a decimal string (a history's inputs, a
    review's facts) reads the same; no amount is a dash."""
    if value is None or value == "":
        return "—"
    whole, _, cents = (fmt(Decimal(value)) or "").partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{int(whole.lstrip('-')):,}.{cents}"


@bp.app_template_filter("when")
def _when(value: datetime | str | None) -> str:
    """Shown in Asia/Shanghai (stored UTC), with the zone named; also the audit trail's ISO strings."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(DISPLAY_ZONE).strftime("%Y-%m-%d %H:%M:%S CST")


@bp.app_template_filter("fen")
def _fen(value: int | None) -> str:
    """Integer fen (the reports' unit) as money: never through a float."""
    return "—" if value is None else money_text(from_fen(value))


@bp.app_template_filter("cell")
def _cell(value: Any) -> str:
    """A fact, parameter or recorded value as a reader expects it, never Python's repr: nothing is a
    dash, a boolean yes or no, a Decimal its digits, a moment in Asia/Shanghai, a mapping or list its
    JSON (decimal strings stay strings)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return _when(value)
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=_cell)
    return str(value)


@bp.app_template_filter("age")
def _age(seconds: float | None) -> str:
    """A duration in its two largest units: 45 s, 12 min, 3 h 5 min, 2 d 4 h."""
    if seconds is None:
        return "—"
    s = max(0, int(seconds))
    days, hours, minutes = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{s} s"


def parse_query(schema: Schema, values: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The page's query (or `values`) parsed exactly as the API parses it, with the same schema; empty
    fields are left out (a form sends them) and so is `format` (the console's JSON/CSV switch)."""
    source = request.args if values is None else values
    query = {k: v for k, v in source.items() if v != "" and k != "format"}
    try:
        return schema.load(query)  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise InvalidRequest("the page's parameters are not valid", errors=_flat(exc.messages)) from None


def refuse_nul() -> None:
    """U+0000 in any field of a page's query, form or path is refused (422 naming it), as the API refuses
    it (adapters/web/json_provider.py): PostgreSQL's text cannot hold it. Runs after the session's guard
    (registered in adapters/web/console/__init__.py, after it)."""
    values = request.view_args or {}
    fields = [*request.args.items(multi=True), *request.form.items(multi=True), *values.items()]
    for name, value in fields:
        if NUL in name or (isinstance(value, str) and NUL in value):
            shown = name.replace(NUL, "\\u0000")
            raise InvalidRequest(f"{shown} holds U+0000 (NUL)", errors={shown: [NUL_MESSAGE]})


def _flat(messages: Any) -> dict[str, list[str]]:
    if isinstance(messages, dict):
        return {str(k): [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in messages.items()}
    return {"query": [str(messages)]}


@bp.context_processor
def _layout() -> dict[str, Any]:
    return {"nav": nav_for_key(), "signed_in": g.get("api_key")}


_CONSOLE_PATH = re.compile(r"/console/[^\x00-\x20\x7f\\]*")


def this_page() -> str:
    """This request's path (percent-encoded again: order ids may hold spaces or "/") and raw query, as a
    target to come back to that safe_target accepts."""
    query = request.query_string.decode("latin-1")
    return quote(request.path, safe="/") + (f"?{query}" if query else "")


def safe_target(target: str | None, prefix: str, default: str) -> str:
    """A redirect target from a form or query string: a path under `prefix` with no control character,
    space or backslash (no header injection, no other site), else `default`."""
    if (
        target
        and target.startswith(prefix)
        and not target.startswith("//")
        and _CONSOLE_PATH.fullmatch(target)
    ):
        return target
    return default


def page(template: str, status: int = 200, **values: Any) -> tuple[str, int]:
    return render_template(f"console/{template}", **values), status


@bp.route("/<path:unknown>", methods=["GET", "POST"])
def not_found(unknown: str) -> tuple[str, int]:
    """Any other URL under /console/ (signed in): the console's own 404 page in its layout. Without
    this route such a URL matched no blueprint and got the API's problem+json."""
    message = f"There is no console page at {request.path}."
    return page("error.html", 404, title="Page not found", message=message, errors={})


@bp.errorhandler(CreditctlError)
def _domain_error(exc: CreditctlError) -> tuple[str, int]:
    status, title = status_of(exc)
    return page("error.html", status, title=title, message=exc.message, errors=exc.errors)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[str, int]:
    return page("error.html", exc.code or 500, title=exc.name, message=exc.description, errors={})


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Any:
    """Anything else (the database away, a bug) is a console page too, not the API's problem+json; the
    request id on it finds the logged traceback."""
    if database_unavailable(exc):
        log.warning("console: database unavailable: %s", type(exc).__name__)
        message = f"The database does not answer. Try again in {DATABASE_RETRY_AFTER_S} seconds."
        body, status = page("error.html", 503, title="Database unavailable", message=message, errors={})
        return body, status, {"Retry-After": str(DATABASE_RETRY_AFTER_S)}
    log.exception("console: unexpected error: %s", type(exc).__name__)
    message = f"Something went wrong on our side. The request id {g.get('request_id', '')} helps us find it."
    return page("error.html", 500, title="Internal server error", message=message, errors={})
