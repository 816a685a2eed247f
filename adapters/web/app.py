"""The Flask application factory: reads like a table of contents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from adapters.web import (
    accounts,
    audit,
    backtests,
    balances,
    compat,
    console,
    cors,
    credit,
    customers,
    decisions,
    docs,
    fast_lane,
    health,
    keys,
    metrics,
    reports,
    request_context,
    reviews,
    rule_sets,
    upstream_configs,
    webhooks,
)
from adapters.web.auth import KeyCache
from adapters.web.errors import register_error_handlers
from adapters.web.flask_app import CreditctlFlask
from adapters.web.json_provider import ExactJSONProvider
from adapters.web.openapi import (
    EITHER_KEY,
    ErrorResponsesPlugin,
    NulFreeTextPlugin,
    ProblemApi,
    RequiredResponseFieldsPlugin,
    document_security,
)
from adapters.web.rate_limit import RateLimitPolicy, SharedTokenBuckets, TokenBuckets
from adapters.web.schemas.problem import ProblemSchema
from creditctl.services.context import AppContext


class CreditctlApi(ProblemApi):
    ERROR_SCHEMA = ProblemSchema


def create_app(context: AppContext, config: Mapping[str, Any] | None = None) -> Flask:
    """Create and configure the WSGI application around an already wired AppContext."""
    app = CreditctlFlask("creditctl")
    app.json_provider_class = ExactJSONProvider
    app.json = ExactJSONProvider(app)
    app.config.update(_openapi_config())
    app.config.update(config or {})
    app.extensions["creditctl"] = context
    trust_proxies(app, int(app.config.get("CREDITCTL_TRUSTED_PROXIES", 0)))
    app.extensions["creditctl.keys"] = KeyCache()
    # Off unless configured (create_wsgi_app passes the setting, on by default in production, and the
    # instance's shared table).
    policy = app.config.get("CREDITCTL_RATE_LIMIT") or RateLimitPolicy(0.0, 0.0)
    table = app.config.get("CREDITCTL_RATE_LIMIT_TABLE")
    shared = policy.enabled and table
    buckets = SharedTokenBuckets(policy, table) if shared else TokenBuckets(policy)
    app.extensions["creditctl.rate_limit"] = buckets
    request_context.init_app(app)
    cors.init_app(app)
    # The seed-compatible view answers every error in the seed's own shape, never problem+json.
    errors_plugin = ErrorResponsesPlugin(
        app, {compat.compat.name: {"$ref": "#/components/schemas/SeedError"}}
    )
    plugins = [errors_plugin, RequiredResponseFieldsPlugin(), NulFreeTextPlugin()]  # in this order
    api = CreditctlApi(app, spec_kwargs={"extra_plugins": plugins})
    document_security(api)
    for bp in (
        decisions.bp,
        accounts.bp,
        credit.bp,
        balances.bp,
        compat.compat,
        customers.bp,
        rule_sets.bp,
        upstream_configs.bp,
    ):
        api.register_blueprint(bp)
    api.register_blueprint(backtests.bp)
    api.register_blueprint(reports.bp)
    api.register_blueprint(webhooks.bp)
    api.register_blueprint(audit.bp)
    api.register_blueprint(reviews.bp)
    api.register_blueprint(keys.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(docs.bp)
    console.init_app(app)
    register_error_handlers(app)
    fast_lane.init_app(app)  # last: it checks the hooks above are the ones it repeats
    return app


def trust_proxies(app: Flask, proxies: int) -> None:
    """Behind `proxies` reverse proxies, take the client's address and scheme from the X-Forwarded-For
    and X-Forwarded-Proto they append (the console's cookie is Secure when the browser used https); with
    none (the default) those headers are anyone's to send, and are ignored."""
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]


def _openapi_config() -> dict[str, Any]:
    return {
        "API_TITLE": "creditctl",
        "API_VERSION": "1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "docs",
        "OPENAPI_SWAGGER_UI_URL": docs.ASSETS_URL,
        "API_SPEC_OPTIONS": {
            "security": EITHER_KEY,
            "info": {
                "description": "Credit control for purchase orders placed with Haier. "
                "Money is a decimal string (CNY, two places); times are UTC ISO 8601. No text of a request "
                "holds U+0000 (NUL): a body or query parameter with one is refused (422 naming it)."
            },
        },
    }
