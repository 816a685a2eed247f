"""Calls on state shared by every customer (today the Haier configs) refuse a key limited to customers,
whatever its role: such a key neither reads every customer's config nor repoints it."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from adapters.web.app import create_app
from adapters.web.auth import requires, requires_global_admin
from creditctl.domain.api_key import Role
from creditctl.services.api_keys import create_api_key
from creditctl.services.context import AppContext
from tests.api.conftest import CUSTOMER_A, assert_problem
from tests.api.test_haier_configs_api import body

pytestmark = pytest.mark.api

URL = "/v1/admin/haier/configs/main"


@pytest.fixture
def limited_admin(context: AppContext) -> str:
    return create_api_key(
        name="admin-of-a", role="admin", customers=[CUSTOMER_A], uow=context.uow(), clock=context.clock
    ).secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


class TestHaierConfigs:
    def test_a_limited_admin_key_cannot_read_a_config(
        self, client: FlaskClient, keys: dict[str, str], limited_admin: str
    ) -> None:
        assert client.put(URL, json=body(), headers=bearer(keys["admin"])).status_code == 200
        r = client.get(URL, headers=bearer(limited_admin))
        problem = assert_problem(r, 403)
        assert "limited to some customers" in problem["detail"]
        assert "openplat" not in r.get_data(as_text=True)

    def test_a_limited_admin_key_cannot_repoint_a_config(
        self, client: FlaskClient, keys: dict[str, str], limited_admin: str
    ) -> None:
        assert client.put(URL, json=body(), headers=bearer(keys["admin"])).status_code == 200
        evil = body(base_url="https://attacker.example.com", client_secret="set")
        assert_problem(client.put(URL, json=evil, headers=bearer(limited_admin)), 403)
        shown = client.get(URL, headers=bearer(keys["admin"])).json
        assert shown["base_url"] == "https://openplat-test.haier.net"

    def test_a_limited_admin_key_cannot_create_one(self, client: FlaskClient, limited_admin: str) -> None:
        assert_problem(client.put(URL, json=body(), headers=bearer(limited_admin)), 403)
        assert_problem(client.get(URL, headers=bearer(limited_admin)), 403)

    def test_every_admin_route_is_marked_global(self, app: Flask) -> None:
        """A new /v1/admin route has to say so with requires(..., global_scope=True)."""
        admin_views = {
            rule.endpoint: app.view_functions[rule.endpoint]
            for rule in app.url_map.iter_rules()
            if rule.rule.startswith("/v1/admin/")
        }
        assert admin_views
        for endpoint, view in admin_views.items():
            assert getattr(view, "_global_scope", False), endpoint


class TestTheDecorator:
    """On a bare app: the flag is what refuses, for any role it allows."""

    @pytest.fixture
    def guarded(self, context: AppContext) -> FlaskClient:
        app = create_app(context, {"TESTING": True})

        @app.get("/probe/global")
        @requires_global_admin
        def global_view() -> Any:
            return {"ok": True}

        @app.get("/probe/global-auditor")
        @requires(Role.ADMIN, Role.AUDITOR, global_scope=True)
        def global_read() -> Any:
            return {"ok": True}

        @app.get("/probe/scoped")
        @requires(Role.ADMIN)
        def scoped_view() -> Any:
            return {"ok": True}

        return app.test_client()

    def key(self, context: AppContext, role: str, customers: list[str] | None) -> dict[str, str]:
        new = create_api_key(name="k", role=role, customers=customers, uow=context.uow(), clock=context.clock)
        return bearer(new.secret)

    def test_an_unlimited_admin_passes(self, guarded: FlaskClient, context: AppContext) -> None:
        assert guarded.get("/probe/global", headers=self.key(context, "admin", None)).status_code == 200

    @pytest.mark.parametrize("role", ["admin", "auditor"])
    def test_a_limited_key_is_403_on_a_global_call(
        self, guarded: FlaskClient, context: AppContext, role: str
    ) -> None:
        headers = self.key(context, role, [CUSTOMER_A])
        assert_problem(guarded.get("/probe/global-auditor", headers=headers), 403)

    def test_a_limited_admin_still_passes_a_call_that_is_not_global(
        self, guarded: FlaskClient, context: AppContext
    ) -> None:
        headers = self.key(context, "admin", [CUSTOMER_A])
        assert guarded.get("/probe/scoped", headers=headers).status_code == 200
        assert_problem(guarded.get("/probe/global", headers=headers), 403)

    def test_the_role_is_checked_as_before(self, guarded: FlaskClient, context: AppContext) -> None:
        assert_problem(guarded.get("/probe/global", headers=self.key(context, "orders", None)), 403)
        assert_problem(guarded.get("/probe/global"), 401)
