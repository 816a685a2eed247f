"""Constraints the server enforces are stated in the document, so that a client that follows the document
gets no 422: for each, the document's statement refuses the value the server refuses (and the server does
refuse it), and a value the document allows is accepted."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from adapters.haier import config as haier_config
from adapters.web.schemas import upstream_configs
from tests.api.conftest import CUSTOMER_A, Api, assert_problem

pytestmark = pytest.mark.api

ACCOUNT = f"/v1/accounts/{CUSTOMER_A}/GB20"


@pytest.fixture
def schemas(client: Any) -> dict[str, Any]:
    return client.get("/openapi.json").json["components"]["schemas"]  # type: ignore[no-any-return]


def allows(prop: dict[str, Any], value: str) -> bool:
    """What the document allows of a string: its pattern (ECMA: found anywhere, unless anchored)."""
    return "pattern" not in prop or re.search(prop["pattern"], value) is not None


class TestReasons:
    @pytest.mark.parametrize(
        ("schema", "call"),
        [
            ("FreezeRequest", ("POST", f"{ACCOUNT}/freeze", {})),
            ("BaseLimit", ("PUT", f"{ACCOUNT}/credit-profile", {"base_limit": "1.00"})),
            ("LimitRequestBody", ("POST", f"{ACCOUNT}/credit-limit-requests", {"amount": "1.00"})),
        ],
    )
    def test_a_blank_reason_is_refused_as_documented(
        self, api: Api, clock: Any, schemas: dict[str, Any], schema: str, call: tuple[str, str, Any]
    ) -> None:
        method, url, body = call
        if schema == "LimitRequestBody":
            body = {**body, "until": (clock.now() + timedelta(hours=1)).isoformat()}
        prop = schemas[schema]["properties"]["reason"]
        assert not allows(prop, "   ") and allows(prop, "a reason")
        r = api.client.open(url, method=method, json={**body, "reason": "   "}, headers=api.auth("admin"))
        assert_problem(r, 422, "reason")


class TestTimes:
    def test_a_limit_request_ends_in_the_future_as_documented(
        self, api: Api, clock: Any, schemas: dict[str, Any]
    ) -> None:
        assert "in the future" in schemas["LimitRequestBody"]["properties"]["until"]["description"]
        past = (clock.now() - timedelta(hours=1)).isoformat()
        body = {"amount": "1.00", "until": past, "reason": "x"}
        r = api.client.post(f"{ACCOUNT}/credit-limit-requests", json=body, headers=api.auth("admin"))
        assert_problem(r, 422, "until")

    def test_a_report_period_ends_after_it_starts_as_documented(self, api: Api, client: Any) -> None:
        to = next(
            p
            for p in client.get("/openapi.json").json["paths"]["/v1/reports/decisions"]["get"]["parameters"]
            if p["name"] == "to"
        )
        assert "after `from`" in to["description"]
        r = api.client.get(
            "/v1/reports/decisions",
            query_string={"from": "2026-11-02", "to": "2026-11-01"},
            headers=api.auth("auditor"),
        )
        assert_problem(r, 422, "to")


class TestWebhooks:
    def test_a_webhook_url_is_https_as_documented(self, api: Api, schemas: dict[str, Any]) -> None:
        prop = schemas["SubscriptionRequest"]["properties"]["url"]
        plain = "http://hooks.example.com/creditctl"
        assert not allows(prop, plain) and allows(prop, "https://hooks.example.com/creditctl")
        r = api.client.post(
            "/v1/webhooks", json={"url": plain, "events": ["balance.low"]}, headers=api.auth("admin")
        )
        assert_problem(r, 422, "url")


class TestHaierConfig:
    def test_auth_scheme_and_is_active_are_required_as_documented(
        self, api: Api, schemas: dict[str, Any]
    ) -> None:
        assert {"auth_scheme", "is_active"} <= set(schemas["HaierConfig"]["required"])
        body = {
            "base_url": "https://openplat-test.haier.net",
            "auth": "client_credentials",
            "client_id": "c",
            "client_secret": "s",
        }
        r = api.client.put("/v1/admin/haier/configs/main", json=body, headers=api.auth("admin"))
        assert_problem(r, 422, "auth_scheme", "is_active")
        complete = {**body, "auth_scheme": "Bearer", "is_active": False}
        r = api.client.put("/v1/admin/haier/configs/main", json=complete, headers=api.auth("admin"))
        assert r.status_code == 200, r.json["errors"]

    def test_the_documented_bounds_are_the_adapters(self, api: Api, schemas: dict[str, Any]) -> None:
        rate = schemas["HaierConfig"]["properties"]["rate_limit_per_s"]
        assert rate["maximum"] == upstream_configs.MAX_RATE_PER_S == haier_config.MAX_RATE_PER_S
        assert rate["minimum"] == 0 and rate["exclusiveMinimum"] is True
        refresh = schemas["HaierConfig"]["properties"]["token_refresh_before_s"]
        assert (refresh["minimum"], refresh["maximum"]) == (0, 3599)
        body = {
            "base_url": "https://openplat-test.haier.net",
            "auth": "client_credentials",
            "client_id": "c",
            "client_secret": "s",
            "auth_scheme": "Bearer",
            "is_active": False,
        }
        for name, value in (
            ("rate_limit_per_s", 101),
            ("rate_limit_per_s", 0),
            ("token_refresh_before_s", 3600),
        ):
            r = api.client.put(
                "/v1/admin/haier/configs/main", json={**body, name: value}, headers=api.auth("admin")
            )
            assert_problem(r, 422, name)


class TestCursors:
    def test_a_holds_cursor_outside_the_documented_alphabet_is_refused(
        self, api: Api, schemas: dict[str, Any], client: Any
    ) -> None:
        holds = client.get("/openapi.json").json["paths"][
            "/v1/accounts/{customer_code}/{sale_group_code}/holds"
        ]
        cursor = next(p for p in holds["get"]["parameters"] if p["name"] == "cursor")
        assert not allows(cursor["schema"], "not a cursor!")
        r = api.client.get(
            f"{ACCOUNT}/holds", query_string={"cursor": "not a cursor!"}, headers=api.auth("orders")
        )
        assert_problem(r, 422, "cursor")
