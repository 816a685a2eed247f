"""A payer account the provider names is an account on every route from the start, before any order.

Each account route is called, with an admin key, on an account of its own that the provider named but
that no order has touched: once where the provider's answer is kept (an order in another of the
customer's groups brought it), once where nothing is kept yet (a customer the provider names, never seen).
A sales group the provider does not name stays 404 and nothing is written."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from werkzeug.test import TestResponse

from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.fake.clock import FakeClock
from creditctl.services.customers import register_customer
from tests.api.conftest import Api, assert_problem, order
from tests.api.test_console import Console, signed_in
from tests.random_refs import random_customer_code

pytestmark = pytest.mark.api

ORDERED, NAMED = "GA10", "GB20"  # the provider names both; an order goes to ORDERED at most
ACCOUNT_ARGS = {"customer_code", "sale_group_code"}


def _until(clock: FakeClock) -> str:
    return (clock.now() + timedelta(hours=2)).isoformat()


# (endpoint, method) -> (body or form, the status that proves the route worked on the account)
def route_calls(clock: FakeClock) -> dict[tuple[str, str], tuple[dict[str, Any] | None, int]]:
    payments = {"payments": [{"invoice_id": "INV-1", "amount": "100.00", "due_date": "2026-01-10"}]}
    return {
        ("accounts.read", "GET"): (None, 200),
        ("accounts.holds", "GET"): (None, 200),
        ("accounts.freeze", "POST"): ({"reason": "sweep"}, 200),
        ("accounts.unfreeze", "POST"): ({"reason": "sweep"}, 200),
        ("accounts.assign", "PUT"): ({"rule_set_id": 1, "reason": "sweep"}, 200),
        ("accounts.unassign", "DELETE"): (None, 204),
        ("accounts.put_params", "PUT"): ({"params": {"max_overdue_days": 30}}, 200),
        ("accounts.freezes", "GET"): (None, 200),
        ("credit.post", "POST"): (payments, 200),
        ("credit.list_", "GET"): (None, 200),
        ("credit.profile", "GET"): (None, 200),
        ("credit.set_base", "PUT"): ({"base_limit": "1000.00", "reason": "sweep"}, 200),
        ("credit.ask", "POST"): ({"amount": "500.00", "until": _until(clock), "reason": "sweep"}, 201),
        ("credit.account_requests", "GET"): (None, 200),
        ("console.account", "GET"): (None, 200),
        ("console.freeze", "POST"): ({"reason": "sweep"}, 302),
        ("console.unfreeze", "POST"): ({"reason": "sweep"}, 302),
    }


def account_routes(app: Any) -> list[tuple[str, str, str]]:
    """(endpoint, method, URL rule) of every route that takes a customer and a sales group."""
    found = []
    for rule in app.url_map.iter_rules():
        if set(rule.arguments) >= ACCOUNT_ARGS:
            found += [(rule.endpoint, m, rule.rule) for m in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return sorted(found)


def call(
    api: Api, console: Console, method: str, rule: str, customer: str, group: str, body: dict[str, Any] | None
) -> TestResponse:
    url = re.sub(
        r"<(?:\w+:)?(\w+)>", lambda m: {"customer_code": customer, "sale_group_code": group}[m[1]], rule
    )
    if rule.startswith("/console/"):
        return console.get(url) if method == "GET" else console.post(url, body)
    role = "finance" if method == "POST" and url.endswith("/payments") else "admin"  # finance's facts
    return api.client.open(url, method=method, json=body, headers=api.auth(role))


@pytest.fixture
def console(app: Any, keys: dict[str, str]) -> Console:
    c = signed_in(app, keys, "admin")
    c.get("/console/accounts")  # a page with the form token
    return c


@pytest.fixture
def kept_answer(api: Api, balances: FakeBalanceProvider) -> Callable[[], str]:
    """A registered customer whose first order (in ORDERED) brought the provider's answer naming NAMED."""

    def make() -> str:
        customer = random_customer_code()
        balances.set_balance(customer, ORDERED, "5000.00")
        balances.set_balance(customer, NAMED, "5000.00")
        r = api.decide(order(customer=customer, group=ORDERED))
        assert r.status_code == 201, r.json
        return customer

    return make


@pytest.fixture
def nothing_kept(balances: FakeBalanceProvider) -> Callable[[], str]:
    """A customer the provider names and this service has never seen (not even registered)."""

    def make() -> str:
        customer = random_customer_code()
        balances.set_balance(customer, NAMED, "5000.00")
        return customer

    return make


class TestDecisions:
    def test_an_order_in_a_second_named_group_right_after_the_first_is_decided_not_404(
        self, api: Api, kept_answer: Callable[[], str], balances: FakeBalanceProvider
    ) -> None:
        customer = kept_answer()
        calls = len(balances.calls)
        r = api.decide(order(customer=customer, group=NAMED))
        assert r.status_code == 201, r.json
        assert r.json["outcome"] == "approve"
        assert len(balances.calls) == calls  # decided on the answer the first order brought


class TestEveryAccountRoute:
    def test_the_sweep_knows_every_account_route(self, app: Any, clock: FakeClock) -> None:
        found = {(endpoint, method) for endpoint, method, _ in account_routes(app)}
        assert found == set(route_calls(clock)), "a new account route: add it to route_calls"

    @pytest.mark.parametrize("situation", ["kept_answer", "nothing_kept"])
    def test_every_route_works_on_a_named_account_no_order_has_touched(
        self,
        app: Any,
        api: Api,
        console: Console,
        clock: FakeClock,
        balances: FakeBalanceProvider,
        request: pytest.FixtureRequest,
        situation: str,
    ) -> None:
        make_customer: Callable[[], str] = request.getfixturevalue(situation)
        calls = route_calls(clock)
        failed = []
        for endpoint, method, rule in account_routes(app):
            customer = make_customer()  # an account of its own for every route
            body, expected = calls[(endpoint, method)]
            r = call(api, console, method, rule, customer, NAMED, body)
            if r.status_code != expected:
                failed.append(f"{method} {rule}: {r.status_code} {r.get_data(as_text=True)[:200]}")
        assert not failed, "\n".join(failed)

    def test_payment_history_is_loaded_before_the_first_order_and_the_order_then_sees_it(
        self, api: Api, kept_answer: Callable[[], str], clock: FakeClock
    ) -> None:
        customer = kept_answer()
        account = f"/v1/accounts/{customer}/{NAMED}"
        due = (clock.now() - timedelta(days=40)).date().isoformat()
        body = {"payments": [{"invoice_id": "INV-7", "amount": "100.00", "due_date": due}]}
        posted = api.client.post(f"{account}/payments", json=body, headers=api.auth("finance"))
        assert (posted.status_code, posted.json["created"]) == (200, 1), posted.json
        listed = api.client.get(f"{account}/payments", headers=api.auth("auditor"))
        assert [p["invoice_id"] for p in listed.json["items"]] == ["INV-7"]
        decided = api.decide(order(customer=customer, group=NAMED, amount="10.00"))
        assert decided.status_code == 201, decided.json
        assert "PAYMENT_OVERDUE" not in [r["reason"] for r in decided.json["reasons"]]  # 40 <= 90 days
        profile = api.client.get(f"{account}/credit-profile", headers=api.auth("auditor")).json
        assert profile["payment"]["max_overdue_days"] == 40

    @pytest.mark.parametrize("situation", ["kept_answer", "nothing_kept"])
    def test_a_group_the_provider_does_not_name_stays_404_on_every_route_and_nothing_is_written(
        self,
        app: Any,
        api: Api,
        console: Console,
        clock: FakeClock,
        context: Any,
        db_state: Callable[[], Any],
        request: pytest.FixtureRequest,
        situation: str,
    ) -> None:
        make_customer: Callable[[], str] = request.getfixturevalue(situation)
        customer = make_customer()
        register_customer(customer, uow=context.uow(), clock=context.clock)  # known either way
        before = db_state()
        calls = route_calls(clock)
        for endpoint, method, rule in account_routes(app):
            r = call(api, console, method, rule, customer, "ZZ99", calls[(endpoint, method)][0])
            assert r.status_code == 404, (method, rule, r.status_code, r.get_data(as_text=True)[:200])
        assert db_state() == before

    def test_an_unknown_customer_stays_404(self, api: Api, db_state: Callable[[], Any]) -> None:
        before = db_state()
        r = api.client.get(f"/v1/accounts/{random_customer_code()}/{NAMED}", headers=api.auth("admin"))
        assert_problem(r, 404, "sale_group_code")
        assert db_state() == before

    def test_a_key_limited_to_another_customer_still_gets_404_and_the_upstream_is_not_asked(
        self, api: Api, nothing_kept: Callable[[], str], balances: FakeBalanceProvider
    ) -> None:
        customer = nothing_kept()
        calls = len(balances.calls)
        r = api.client.get(f"/v1/accounts/{customer}/{NAMED}", headers=api.auth("orders_a"))
        assert_problem(r, 404)
        assert len(balances.calls) == calls

    def test_without_a_kept_answer_an_upstream_failure_is_503_not_404(
        self, api: Api, nothing_kept: Callable[[], str], balances: FakeBalanceProvider
    ) -> None:
        customer = nothing_kept()
        balances.fail_with("SERVICE_UNAVAILABLE")
        r = api.client.get(f"/v1/accounts/{customer}/{NAMED}/payments", headers=api.auth("admin"))
        assert_problem(r, 503)
        balances.fail_with(None)
        assert (
            api.client.get(f"/v1/accounts/{customer}/{NAMED}/payments", headers=api.auth("admin")).status_code
            == 200
        )


def test_the_openapi_document_names_503_on_every_account_route(app: Any, client: Any) -> None:
    paths = client.get("/openapi.json").json["paths"]
    account_paths = {p: ops for p, ops in paths.items() if "{customer_code}/{sale_group_code}" in p}
    assert len(account_paths) >= 6
    for path, operations in account_paths.items():
        for method, operation in operations.items():
            if isinstance(operation, dict) and "responses" in operation:
                assert "503" in operation["responses"], (method, path)
