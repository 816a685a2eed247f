"""Reliability item 11, the object-level authorisation sweep.

Every route of the app's URL map that takes a customer or an order (in its path, its query or its body,
as the OpenAPI document says) is called with keys limited to customer A, on customer B's identifiers and
on random ones. The answer is always 404 (403 where the key's role may not call the route at all), never
any of B's data, and nothing changes. A new route is swept the day it is added; one whose required
inputs the sweep cannot fill fails here until VALUES learns them. Every test that decides an order ends
with both invariant checkers (checkers.py), its outside books fed with the approvals its clients saw.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from creditctl.services.api_keys import create_api_key
from tests.api.conftest import CUSTOMER_A, CUSTOMER_B, order
from tests.conftest import TEST_BALANCES
from tests.random_refs import random_customer_code, random_order_id, random_sale_group
from tests.reliability.checkers import assert_checkers, books_for, saw_answer, starting_money

pytestmark = pytest.mark.api

IDENTIFIERS = {"customer_code", "order_id"}
# Values for inputs a swept route may require, besides the identifiers.
VALUES: dict[str, Any] = {
    "amount": "1.00",
    "reason": "authorisation sweep",
    "channel": "sweep",
    "payments": [{"invoice_id": "SWEEP-1", "amount": "1.00", "due_date": "2026-01-01"}],
    "base_limit": "1.00",
    "until": "2099-01-01T00:00:00+00:00",
    "rule_set_id": 1,
    "params": {},
}
# The console signs in with a session, not a key header: tests/api/test_console.py sweeps its routes
# (TestCustomerLimits.test_every_console_route_on_another_customer_is_not_found).
SESSION_PATHS = ("/console/",)
_PLACEHOLDER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


@dataclass
class Call:
    method: str
    rule: str
    path_args: set[str]
    query: list[dict[str, Any]] = field(default_factory=list)
    body: dict[str, Any] | None = None  # the request body schema, if any

    @property
    def inputs(self) -> set[str]:
        names = set(self.path_args) | {p["name"] for p in self.query}
        if self.body:
            names |= set(self.body.get("properties", {}))
        return names


def swept_calls(app, spec) -> list[tuple[Call, tuple[Any, ...]]]:
    """Every (route, method) that takes a customer or an order, with its view's roles."""
    calls = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(SESSION_PATHS):
            continue
        openapi_path = _PLACEHOLDER.sub(r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            operation = spec["paths"].get(openapi_path, {}).get(method.lower(), {})
            call = Call(
                method,
                rule.rule,
                set(rule.arguments),
                [p for p in operation.get("parameters", []) if p["in"] == "query"],
                _body_schema(spec, operation),
            )
            if call.inputs & IDENTIFIERS:
                view = app.view_functions[rule.endpoint]
                roles = getattr(view, "_roles", None)
                assert roles, f"{method} {rule.rule} takes a customer or an order but requires no key"
                # A call on global state (requires_global_admin): no role of a limited key may make it.
                allowed = () if getattr(view, "_global_scope", False) else tuple(r.value for r in roles)
                calls.append((call, allowed))
    return calls


def _body_schema(spec: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any] | None:
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if schema and "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def request_for(call: Call, values: dict[str, Any]) -> dict[str, Any]:
    """Path, query and body for `call`, identifiers taken from `values`."""

    def value(name: str) -> Any:
        if name in values:
            return values[name]
        if name in VALUES:
            return VALUES[name]
        raise AssertionError(
            f"{call.method} {call.rule}: the sweep has no value for {name!r}; add it to VALUES"
        )

    url = _PLACEHOLDER.sub(lambda m: str(value(m.group(1))), call.rule)
    query = {p["name"]: value(p["name"]) for p in call.query if p.get("required") or p["name"] in values}
    kwargs: dict[str, Any] = {"query_string": query}
    if call.body is not None:
        props, required = call.body.get("properties", {}), set(call.body.get("required", []))
        kwargs["json"] = {n: value(n) for n in props if n in required or n in values}
    return {"method": call.method, "path": url, **kwargs}


@pytest.fixture
def books():
    """What the test's clients were told, against the fake upstream's starting money (checkers.py)."""
    return books_for(starting_money(TEST_BALANCES))


@pytest.fixture
def b_order(api, books):
    """An approved order of customer B (hold open), decided with the unrestricted orders key."""
    body = order(random_order_id("b"), customer=CUSTOMER_B, group="GA10")
    r = api.decide(body)
    assert r.status_code == 201 and r.json["hold"]["status"] == "open", r.json
    assert saw_answer(books, r.json)
    return body, r.json


@pytest.fixture
def limited_keys(context, keys):
    """A key of every role, each limited to customer A."""
    out = {"orders": keys["orders_a"]}
    for role in ("admin", "auditor"):
        out[role] = create_api_key(
            name=f"{role}-a", role=role, customers=[CUSTOMER_A], uow=context.uow(), clock=context.clock
        ).secret
    return out


def b_secrets(b_order, b_account) -> list[str]:
    """Strings only someone who may see B would find in an answer."""
    _, decision = b_order
    return [
        decision["decision_id"],
        decision["hold"]["id"],
        b_account["payer_account_name"],
        b_account["balance"]["amount"],
    ]


class TestObjectLevelAuthorisationSweep:
    def test_the_sweep_covers_the_routes_the_contract_names(self, app, client):
        swept = {(c.method, c.rule) for c, _ in swept_calls(app, client.get("/openapi.json").json)}
        for expected in [
            ("POST", "/v1/decisions"),
            ("GET", "/v1/decisions/<path:order_id>"),
            ("POST", "/v1/decisions/<path:order_id>/settle"),
            ("POST", "/v1/decisions/<path:order_id>/release"),
            ("POST", "/v1/decisions/<path:order_id>/recheck"),
            ("GET", "/v1/accounts/<string:customer_code>/<string:sale_group_code>"),
            ("POST", "/v1/accounts/<string:customer_code>/<string:sale_group_code>/freeze"),
            ("POST", "/v1/accounts/<string:customer_code>/<string:sale_group_code>/unfreeze"),
        ]:
            assert expected in swept

    @pytest.mark.parametrize("role", ["orders", "admin", "auditor"])
    def test_a_limited_key_never_sees_or_touches_another_customer(
        self, app, client, api, db_state, b_order, limited_keys, role, books, sqlite_engine
    ):
        body, decision = b_order
        b_account = api.account(CUSTOMER_B, "GA10", key="auditor").json
        secrets = b_secrets(b_order, b_account)
        b_values = {**body, "order_id": decision["order_id"]}
        headers = {"Authorization": f"Bearer {limited_keys[role]}"}
        calls = swept_calls(app, client.get("/openapi.json").json)
        before = db_state()
        for call, roles in calls:
            expected = 404 if role in roles else 403
            b_answer = client.open(headers=headers, **request_for(call, b_values))
            random_values = {
                "customer_code": random_customer_code(),
                "sale_group_code": random_sale_group(),
                "order_id": random_order_id("sweep"),
            }
            random_answer = client.open(headers=headers, **request_for(call, random_values))
            where = f"{role} key: {call.method} {call.rule}"
            assert b_answer.status_code == expected, (where, b_answer.get_data(as_text=True))
            assert random_answer.status_code == expected, (where, random_answer.get_data(as_text=True))
            text = b_answer.get_data(as_text=True)
            assert not [s for s in secrets if s in text], (where, text)
            if b_answer.mimetype == "application/problem+json":
                assert b_answer.json["type"] == random_answer.json["type"], where
                assert b_answer.json["errors"].keys() == random_answer.json["errors"].keys(), where
        assert db_state() == before
        assert api.decision(decision["order_id"]).json == decision
        assert api.account(CUSTOMER_B, "GA10", key="auditor").json == b_account
        assert_checkers(sqlite_engine, books)

    def test_the_same_calls_with_unrestricted_keys_do_reach_b(
        self, app, client, api, b_order, keys, books, sqlite_engine
    ):
        """The control: B's identifiers are real, so the 404s above are the scope's doing."""
        body, decision = b_order
        b_values = {**body, "order_id": decision["order_id"]}
        for call, roles in swept_calls(app, client.get("/openapi.json").json):
            if call.method != "GET":
                continue
            headers = {"Authorization": f"Bearer {keys[roles[0]]}"}
            r = client.open(headers=headers, **request_for(call, b_values))
            assert r.status_code == 200, (call.rule, r.get_data(as_text=True))
        assert_checkers(sqlite_engine, books)

    def test_a_limited_key_still_works_on_its_own_customer(self, api, limited_keys, books, sqlite_engine):
        oid = random_order_id("own")
        decided = api.decide(order(oid), key=limited_keys["orders"])
        assert decided.status_code == 201
        saw_answer(books, decided.json)
        assert api.decision(oid, key=limited_keys["auditor"]).status_code == 200
        r = api.freeze(CUSTOMER_A, "GA10", {"reason": "own customer"}, key=limited_keys["admin"])
        assert r.status_code == 200 and r.json["status"] == "frozen"
        assert_checkers(sqlite_engine, books)


ROLES = ("orders", "admin", "auditor", "finance")
# Path placeholders of routes that take neither a customer nor an order, filled for the role sweep.
ROLE_SWEEP_VALUES = {
    **VALUES,
    "customer_code": CUSTOMER_A,
    "sale_group_code": "GA10",
    "order_id": "PO-ROLE-SWEEP",
    "name": "sweep",
    "key_id": 1,
    "id": "sweep",
    "subscription_id": "sweep",
    "run_id": 1,
    "version": 1,
}


class TestEveryRouteRefusesTheRolesItDoesNotName:
    def test_a_key_of_another_role_is_403_on_every_route_and_nothing_changes(
        self, app, client, keys, db_state
    ):
        """Every route of the URL map that needs a key, called by each role it does not name: 403 before
        anything is read or written (admin routes refuse orders, auditor and finance keys, and so on)."""
        before = db_state()
        checked = 0
        for rule in app.url_map.iter_rules():
            roles = getattr(app.view_functions[rule.endpoint], "_roles", None)
            if roles is None or rule.rule.startswith(SESSION_PATHS):
                continue
            allowed = {r.value for r in roles}
            path = _PLACEHOLDER.sub(lambda m: str(ROLE_SWEEP_VALUES.get(m.group(1), "x")), rule.rule)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                for role in sorted(set(ROLES) - allowed):
                    r = client.open(
                        path,
                        method=method,
                        headers={"Authorization": f"Bearer {keys[role]}"},
                        json={} if method in ("POST", "PUT", "PATCH") else None,
                    )
                    assert r.status_code == 403, (role, method, rule.rule, r.get_data(as_text=True))
                    checked += 1
        assert checked > 20  # not vacuous: most routes refuse some role
        assert db_state() == before


class TestFieldsAClientMustNotSet:
    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("status", "settled"),
            ("hold", {"status": "open", "amount": "1.00"}),
            ("outcome", "approve"),
            ("expires_at", "2099-01-01T00:00:00+00:00"),
            ("decision_id", "forged"),
            ("state", "decided"),
        ],
    )
    def test_a_decision_request_setting_what_the_service_decides_is_refused(self, api, db_state, name, value):
        before = db_state()
        body = order(random_order_id("forge"), amount="999999999.00", **{name: value})
        r = api.decide(body)
        assert r.status_code == 422, r.get_data(as_text=True)
        assert name in r.json["errors"], r.json
        assert db_state() == before
        assert api.decision(body["order_id"]).status_code == 404  # not remembered either

    @pytest.mark.parametrize("action", ["settle", "release"])
    @pytest.mark.parametrize("name", ["status", "hold", "outcome", "expires_at"])
    def test_settle_and_release_take_none_of_them_either(
        self, api, db_state, action, name, books, sqlite_engine
    ):
        oid = random_order_id("forge")
        decided = api.decide(order(oid))
        assert decided.status_code == 201
        saw_answer(books, decided.json)
        before = db_state()
        r = api.client.post(f"/v1/decisions/{oid}/{action}", json={name: "open"}, headers=api.auth("orders"))
        assert r.status_code == 422, r.get_data(as_text=True)
        assert name in r.json["errors"], r.json
        assert db_state() == before
        assert_checkers(sqlite_engine, books)
