"""Settings that stopped order intake or leaked money, through the Flask client: parameters outside their
bounds, ids beyond what the database holds, and a pinned rule set version scheduled for later."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.fake.clock import FakeClock
from adapters.web.schemas.pages import CLAMPED_MAXIMUM
from tests.api.conftest import CUSTOMER_A, Api, assert_problem, order
from tests.api.test_console import signed_in

pytestmark = pytest.mark.api

PARAMS_URL = f"/v1/accounts/{CUSTOMER_A}/GA10/params"  # GA10 of customer A holds 1,000.00
BEYOND_64_BITS = 2**64


def default_document(api: Api) -> dict[str, Any]:
    r = api.client.get("/v1/rule-sets/1", headers=api.auth("admin"))
    return copy.deepcopy(r.json["document"])


def draft(api: Api, document: dict[str, Any]) -> int:
    r = api.client.post("/v1/rule-sets", json={"name": "x", "document": document}, headers=api.auth("admin"))
    assert r.status_code == 201, r.json
    return int(r.json["id"])


def publish(api: Api, rule_set_id: int, **extra: Any) -> Any:
    body = {"reason": "test", **extra}
    return api.client.post(f"/v1/rule-sets/{rule_set_id}/publish", json=body, headers=api.auth("admin"))


def put_params(api: Api, params: dict[str, Any]) -> Any:
    return api.client.put(PARAMS_URL, json={"params": params}, headers=api.auth("admin"))


def three_orders_of_900(api: Api) -> list[str]:
    outcomes = []
    for _ in range(3):
        r = api.decide(order(amount="900.00", group="GA10"))
        assert r.status_code == 201, r.json
        outcomes.append(r.json["outcome"])
    return outcomes


class TestAHoldLivesAtLeastAnHour:
    def test_hold_ttl_s_0_on_an_account_is_refused_and_the_money_is_approved_once(
        self, api: Api, db_state: Callable[[], Any]
    ) -> None:
        api.decide(order(amount="1.00", group="GA10"))  # the account exists
        before = db_state()
        body = assert_problem(put_params(api, {"hold_ttl_s": 0}), 422, "/params/hold_ttl_s")
        assert body["errors"]["/params/hold_ttl_s"] == [
            "'hold_ttl_s' must be between 3600 and 7776000 (seconds), got 0"
        ]
        assert db_state() == before
        assert three_orders_of_900(api).count("approve") == 1

    def test_hold_ttl_s_0_in_a_rule_set_is_refused_with_its_pointer(self, api: Api) -> None:
        document = default_document(api)
        document["params"]["hold_ttl_s"] = 0
        rule_set_id = draft(api, document)
        r = api.client.post(f"/v1/rule-sets/{rule_set_id}/validate", headers=api.auth("admin"))
        assert r.json["errors"] == [
            {
                "pointer": "/params/hold_ttl_s",
                "message": "'hold_ttl_s' must be between 3600 and 7776000 (seconds), got 0",
            }
        ]
        assert_problem(publish(api, rule_set_id), 422, "/params/hold_ttl_s")
        assert three_orders_of_900(api).count("approve") == 1

    def test_the_smallest_hold_ttl_s_keeps_the_money_held_for_an_hour(
        self, api: Api, clock: FakeClock
    ) -> None:
        api.decide(order(amount="1.00", group="GA10"))
        assert put_params(api, {"hold_ttl_s": 3600}).status_code == 200
        first = api.decide(order(amount="900.00", group="GA10")).json
        assert first["outcome"] == "approve"
        clock.advance(3599)
        assert api.decide(order(amount="900.00", group="GA10")).json["outcome"] != "approve"
        assert api.decision(first["order_id"]).json["hold"]["status"] == "open"


class TestNoSettingStopsOrderIntake:
    @pytest.mark.parametrize(
        ("name", "value", "bounds"),
        [
            ("base_credit_limit", "99999999999999999.00", "between 0.00 and 1000000000000.00 (CNY)"),
            ("hold_ttl_s", 9223372036854775807, "between 3600 and 7776000 (seconds)"),
        ],
    )
    def test_a_value_past_its_bound_is_422_on_an_account_and_orders_are_still_decided(
        self, api: Api, name: str, value: Any, bounds: str
    ) -> None:
        api.decide(order(amount="1.00", group="GA10"))
        body = assert_problem(put_params(api, {name: value}), 422, f"/params/{name}")
        assert bounds in body["errors"][f"/params/{name}"][0]
        assert api.decide(order(amount="1.00", group="GA10")).status_code == 201

    @pytest.mark.parametrize(
        ("name", "value"), [("base_credit_limit", "99999999999999999.00"), ("hold_ttl_s", 2**63 - 1)]
    )
    def test_a_value_past_its_bound_is_not_published_globally(self, api: Api, name: str, value: Any) -> None:
        document = default_document(api)
        document["params"][name] = value
        assert_problem(publish(api, draft(api, document)), 422, f"/params/{name}")
        r = api.decide(order(amount="1.00"))
        assert (r.status_code, r.json["rule_set"]["version"]) == (201, 1)


class TestIdsBeyondWhatTheDatabaseHolds:
    @pytest.mark.parametrize("rule_set_id", [BEYOND_64_BITS, 2**31, 0, -1])
    @pytest.mark.parametrize(
        "url", [f"/v1/accounts/{CUSTOMER_A}/GA10/rule-set", f"/v1/customers/{CUSTOMER_A}/rule-set"]
    )
    def test_an_assignment_to_an_id_out_of_range_is_422_naming_the_field(
        self, api: Api, url: str, rule_set_id: int
    ) -> None:
        api.decide(order(amount="1.00", group="GA10"))
        r = api.client.put(url, json={"rule_set_id": rule_set_id, "reason": "x"}, headers=api.auth("admin"))
        body = assert_problem(r, 422, "rule_set_id")
        assert "2147483647" in body["errors"]["rule_set_id"][0]

    @pytest.mark.parametrize(("query", "field"), [("from={n}&to=1", "from"), ("from=1&to={n}", "to")])
    def test_a_diff_of_an_id_out_of_range_is_422_naming_the_parameter(
        self, api: Api, query: str, field: str
    ) -> None:
        url = "/v1/rule-sets/diff?" + query.format(n=BEYOND_64_BITS)
        assert_problem(api.client.get(url, headers=api.auth("auditor")), 422, field)

    @pytest.mark.parametrize(
        ("account", "field"),
        [
            ({"balance_age_s": 10**20}, "account.balance_age_s"),
            ({"age_days": 10**12}, "account.age_days"),
            ({"payment": {"max_overdue_days": BEYOND_64_BITS}}, "account.payment.max_overdue_days"),
        ],
    )
    def test_a_simulation_with_a_count_out_of_range_is_422_naming_it(
        self, api: Api, account: dict[str, Any], field: str
    ) -> None:
        body = {"amount": "1.00", "sale_group_code": "GA10", "account": {"balance": "5.00", **account}}
        r = api.client.post("/v1/rule-sets/1/simulate", json=body, headers=api.auth("admin"))
        assert_problem(r, 422, field)

    @pytest.mark.parametrize("path", ["", "/validate"])
    def test_a_rule_set_path_id_beyond_64_bits_is_404(self, api: Api, path: str) -> None:
        method = api.client.post if path else api.client.get
        assert method(f"/v1/rule-sets/{BEYOND_64_BITS}{path}", headers=api.auth("admin")).status_code == 404

    def test_the_console_page_of_a_rule_set_id_beyond_64_bits_is_404(self, app: Any, keys: Any) -> None:
        console = signed_in(app, keys, "admin")
        assert console.get(f"/console/rule-sets/{BEYOND_64_BITS}").status_code == 404


FUTURE = "2099-01-01T00:00:00+00:00"


class TestAPinnedVersionDecidesFromItsEffectiveAt:
    def _scheduled_blocking_version(self, api: Api) -> int:
        """Version 2, in effect from 2099: every order above 1.00 goes to manual review."""
        document = default_document(api)
        document["params"]["single_order_review_amount"] = "1.00"
        rule_set_id = draft(api, document)
        assert publish(api, rule_set_id, effective_at=FUTURE).status_code == 200
        return rule_set_id

    @pytest.mark.parametrize(
        ("url", "why"),
        [
            (f"/v1/accounts/{CUSTOMER_A}/GB20/rule-set", "assigned to the account"),
            (f"/v1/customers/{CUSTOMER_A}/rule-set", "assigned to the customer"),
        ],
    )
    def test_before_its_effective_at_what_applies_without_the_pin_decides(
        self, api: Api, clock: FakeClock, url: str, why: str
    ) -> None:
        api.decide(order(amount="1.00"))
        version_2 = self._scheduled_blocking_version(api)
        r = api.client.put(url, json={"rule_set_id": version_2, "reason": "x"}, headers=api.auth("admin"))
        assert r.status_code == 200, r.json

        decided = api.decide(order(amount="50.00")).json
        assert (decided["outcome"], decided["rule_set"]["version"]) == ("approve", 1)
        view = api.account(CUSTOMER_A, "GB20").json["rule_set"]
        assert (view["version"], view["why"]) == (1, "the global default")

        clock.set(datetime(2099, 1, 1, tzinfo=UTC))
        decided = api.decide(order(amount="50.00")).json
        assert (decided["outcome"], decided["rule_set"]["version"]) == ("defer", 2)
        view = api.account(CUSTOMER_A, "GB20").json["rule_set"]
        assert (view["version"], view["why"]) == (2, why)

    def test_an_account_pin_scheduled_for_later_leaves_the_customer_s_pin_deciding(self, api: Api) -> None:
        api.decide(order(amount="1.00"))
        version_2 = self._scheduled_blocking_version(api)
        now = draft(api, default_document(api))
        assert publish(api, now).status_code == 200  # version 3, the default from now on
        for url, rule_set_id in (
            (f"/v1/accounts/{CUSTOMER_A}/GB20/rule-set", version_2),
            (f"/v1/customers/{CUSTOMER_A}/rule-set", 1),
        ):
            r = api.client.put(
                url, json={"rule_set_id": rule_set_id, "reason": "x"}, headers=api.auth("admin")
            )
            assert r.status_code == 200, r.json
        view = api.account(CUSTOMER_A, "GB20").json["rule_set"]
        assert (view["version"], view["why"]) == (1, "assigned to the customer")
        assert api.decide(order(amount="50.00")).json["rule_set"]["version"] == 1


def _integers_without_a_maximum(schema: dict[str, Any], spec: dict[str, Any], where: str) -> list[str]:
    """Every integer (however nested) that a request may carry without a documented maximum: a `maximum`,
    or for a page size the `x-clamped-maximum` a larger one is taken as."""
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    bounded = "maximum" in schema or CLAMPED_MAXIMUM in schema
    found = [where] if schema.get("type") == "integer" and not bounded else []
    for name, inner in (schema.get("properties") or {}).items():
        found += _integers_without_a_maximum(inner, spec, f"{where}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found += _integers_without_a_maximum(schema[key], spec, f"{where}[]")
    for key in ("allOf", "anyOf", "oneOf"):
        for inner in schema.get(key, []):
            found += _integers_without_a_maximum(inner, spec, where)
    return found


def test_every_integer_a_request_can_carry_has_a_maximum(client: Any) -> None:
    spec = client.get("/openapi.json").json
    unbounded = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                where = f"{method.upper()} {path} {parameter['in']} {parameter['name']}"
                unbounded += _integers_without_a_maximum(parameter.get("schema", {}), spec, where)
            for media in operation.get("requestBody", {}).get("content", {}).values():
                unbounded += _integers_without_a_maximum(
                    media["schema"], spec, f"{method.upper()} {path} body"
                )
    assert unbounded == []
