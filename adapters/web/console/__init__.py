"""The operator console: server-rendered pages under /console/ over the same services as /v1.

Each area is one module that registers its views on the blueprint and its menu entry in NAV; the
templates are in adapters/web/templates/console/, the stylesheet in adapters/web/static/console/."""

from __future__ import annotations

from flask import Flask

from adapters.web.console import (
    accounts,
    audit,
    backtests,
    decisions,
    pages,
    reports,
    reviews,
    rule_sets,
    session,
    upstream,
)
from adapters.web.console.blueprint import bp

# After the session's guard (session.py registered it on import): who may see a page comes first.
bp.before_request(pages.refuse_nul)

# The order of the menu (a backtest's page has no entry: a run is reached from its rule set).
AREAS = (accounts, decisions, reviews, rule_sets, backtests, reports, upstream, audit)


def init_app(app: Flask) -> None:
    session.init_app(app)
    pages.init_nav(AREAS)
    app.register_blueprint(bp)
