"""What every console page shares: the layout's globals, error pages, money and time formatting."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

from flask import g, render_template
from werkzeug.exceptions import HTTPException

from adapters.web.console.blueprint import NAV, NavItem, bp
from adapters.web.errors import status_of
from creditctl.domain.errors import CreditctlError
from creditctl.domain.money import fmt

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
def _money(value: Decimal | None) -> str:
    if value is None:
        return "—"
    whole, _, cents = fmt(value).partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{int(whole.lstrip('-')):,}.{cents}"


@bp.app_template_filter("when")
def _when(value: datetime | None) -> str:
    """Shown in Asia/Shanghai (stored UTC), with the zone named."""
    if value is None:
        return "—"
    return value.astimezone(DISPLAY_ZONE).strftime("%Y-%m-%d %H:%M:%S CST")


@bp.context_processor
def _layout() -> dict[str, Any]:
    return {"nav": nav_for_key(), "signed_in": g.get("api_key")}


def page(template: str, status: int = 200, **values: Any) -> tuple[str, int]:
    return render_template(f"console/{template}", **values), status


@bp.errorhandler(CreditctlError)
def _domain_error(exc: CreditctlError) -> tuple[str, int]:
    status, title = status_of(exc)
    return page("error.html", status, title=title, message=exc.message, errors=exc.errors)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[str, int]:
    return page("error.html", exc.code or 500, title=exc.name, message=exc.description, errors={})
