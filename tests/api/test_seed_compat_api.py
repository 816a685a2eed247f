"""GET /api/haier/balance/ keeps the seed system's shape on every answer, errors included: the seed's front
end shows `data.error` as a message, so it must be a string (never an object, never missing), with the
code beside it and the HTTP status of the error. And the OpenAPI document says so."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.exceptions import TooManyRequests
from werkzeug.test import TestResponse

from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.fake.clock import FakeClock
from adapters.web import compat
from tests.api.conftest import CUSTOMER_A, CUSTOMER_B

pytestmark = pytest.mark.api

URL = "/api/haier/balance/"
PATH = "/api/haier/balance/"


def seed_get(client: FlaskClient, headers: dict[str, str] | None = None, **query: Any) -> TestResponse:
    return client.get(URL, query_string=query, headers=headers or {})


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_seed_error(r: TestResponse, status: int, code: str) -> str:
    """The seed's error shape, exactly: {"success": false, "error": "<message>", "code": "<CODE>"}."""
    assert r.status_code == status, (r.status_code, r.get_data(as_text=True))
    assert r.mimetype == "application/json"
    body = r.get_json()
    assert set(body) == {"success", "error", "code"}, body
    assert body["success"] is False
    assert body["code"] == code, body
    message = body["error"]
    assert isinstance(message, str) and message.strip(), body
    assert message not in ("[object Object]", "undefined", "None")
    assert r.headers["X-Request-ID"]  # still there, for support
    return message  # type: ignore[no-any-return]


class TestEveryErrorKeepsTheSeedShape:
    def test_no_key_is_401_with_a_message_and_a_challenge(self, client: FlaskClient) -> None:
        r = seed_get(client, customer_code=CUSTOMER_A)
        message = assert_seed_error(r, 401, "UNAUTHENTICATED")
        assert "X-API-Key" in message
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="creditctl"'

    @pytest.mark.parametrize(
        "headers", [{"X-API-Key": "cck_not-a-real-key"}, {"Authorization": "Bearer cck_not-a-real-key"}]
    )
    def test_a_bad_key_is_401(self, client: FlaskClient, headers: dict[str, str]) -> None:
        message = assert_seed_error(
            seed_get(client, headers, customer_code=CUSTOMER_A), 401, "UNAUTHENTICATED"
        )
        assert message == "the API key is not valid"

    @pytest.mark.parametrize("role", ["admin", "auditor"])
    def test_a_key_of_another_role_is_403(self, client: FlaskClient, keys: dict[str, str], role: str) -> None:
        r = seed_get(client, bearer(keys[role]), customer_code=CUSTOMER_A)
        assert "role orders" in assert_seed_error(r, 403, "FORBIDDEN")

    def test_an_unknown_customer_is_404_and_looks_like_one_the_key_may_not_see(
        self, client: FlaskClient, keys: dict[str, str]
    ) -> None:
        unknown = seed_get(client, bearer(keys["orders_a"]), customer_code="8800999999")
        hidden = seed_get(client, bearer(keys["orders_a"]), customer_code=CUSTOMER_B)
        assert assert_seed_error(unknown, 404, "UNKNOWN_CUSTOMER") == "unknown customer '8800999999'"
        assert assert_seed_error(hidden, 404, "UNKNOWN_CUSTOMER") == f"unknown customer '{CUSTOMER_B}'"

    def test_an_unknown_sales_group_is_404(self, client: FlaskClient, keys: dict[str, str]) -> None:
        r = seed_get(client, bearer(keys["orders"]), customer_code=CUSTOMER_A, sale_group_code="ZZ99")
        assert "'ZZ99'" in assert_seed_error(r, 404, "UNKNOWN_SALE_GROUP")

    @pytest.mark.parametrize(
        ("query", "named"),
        [
            ({}, "customer_code"),
            ({"customer_code": ""}, "customer_code"),
            ({"customer_code": CUSTOMER_A, "sale_group_code": ""}, "sale_group_code"),
            ({"customer_code": "8" * 65}, "customer_code"),
        ],
        ids=["missing", "empty", "empty-sales-group", "too-long"],
    )
    def test_a_missing_or_bad_query_parameter_is_422_naming_it(
        self, client: FlaskClient, keys: dict[str, str], query: dict[str, str], named: str
    ) -> None:
        message = assert_seed_error(seed_get(client, bearer(keys["orders"]), **query), 422, "INVALID_REQUEST")
        assert message.startswith(f"{named}: "), message

    def test_the_key_is_checked_before_the_query(self, client: FlaskClient) -> None:
        assert_seed_error(seed_get(client), 401, "UNAUTHENTICATED")

    @pytest.mark.parametrize("code", ["SERVICE_UNAVAILABLE", "CIRCUIT_OPEN", "UPSTREAM_TIMEOUT"])
    def test_an_upstream_down_with_a_stale_snapshot_is_503_with_retry_after(
        self,
        client: FlaskClient,
        keys: dict[str, str],
        balances: FakeBalanceProvider,
        clock: FakeClock,
        code: str,
    ) -> None:
        clock.advance(301)  # older than refresh_after_s: the upstream is asked
        balances.fail_with(code)
        r = seed_get(client, bearer(keys["orders"]), customer_code=CUSTOMER_A)
        assert_seed_error(r, 503, code)
        assert int(r.headers["Retry-After"]) > 0

    def test_a_rate_limit_at_the_edge_is_429_in_the_same_shape(
        self, client: FlaskClient, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Nothing in creditctl answers 429 today (Haier's RATE_LIMITED is the seed's 503); a limiter
        added in front of this view would still answer in the seed's shape."""

        def limited(*_: Any, **__: Any) -> Any:
            raise TooManyRequests("slow down", retry_after=7)

        monkeypatch.setattr(compat, "customer_balances", limited)
        r = seed_get(client, bearer(keys["orders"]), customer_code=CUSTOMER_A)
        assert assert_seed_error(r, 429, "TOO_MANY_REQUESTS") == "slow down"
        assert r.headers["Retry-After"] == "7"

    def test_a_fault_of_ours_is_500_in_the_same_shape_and_tells_nothing_inside(
        self, client: FlaskClient, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def broken(*_: Any, **__: Any) -> Any:
            raise RuntimeError("secret internals")

        monkeypatch.setattr(compat, "customer_balances", broken)
        r = seed_get(client, bearer(keys["orders"]), customer_code=CUSTOMER_A)
        message = assert_seed_error(r, 500, "INTERNAL_ERROR")
        assert "secret internals" not in r.get_data(as_text=True) and "X-Request-ID" in message

    def test_the_rest_of_the_api_still_answers_problems(self, client: FlaskClient) -> None:
        r = client.get(f"/v1/balances/{CUSTOMER_A}")
        assert (r.status_code, r.mimetype) == (401, "application/problem+json")


class TestTheAnswerMatchesItsDocument:
    @pytest.fixture
    def spec(self, client: FlaskClient) -> dict[str, Any]:
        return client.get("/openapi.json").json  # type: ignore[no-any-return]

    def test_the_200_body_and_every_error_status_are_documented(self, spec: dict[str, Any]) -> None:
        responses = spec["paths"][PATH]["get"]["responses"]
        assert responses["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/SeedBalance"
        }
        for status in ("400", "401", "403", "404", "422", "500", "503"):
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/SeedError"}, status
        error = spec["components"]["schemas"]["SeedError"]
        assert set(error["properties"]) == set(error["required"]) == {"success", "error", "code"}
        assert error["properties"]["error"]["type"] == "string"

    def test_a_good_answer_has_every_documented_member(
        self, client: FlaskClient, keys: dict[str, str], spec: dict[str, Any]
    ) -> None:
        schemas = spec["components"]["schemas"]
        r = seed_get(client, bearer(keys["orders"]), customer_code=CUSTOMER_A, sale_group_code="GA10")
        assert r.status_code == 200 and r.json["success"] is True
        assert set(r.json) == set(schemas["SeedBalance"]["properties"])
        account = schemas["SeedAccount"]
        assert set(r.json["data"]) == set(account["properties"]) == set(account["required"])
        assert r.json["data"]["payerAccountBalance"] == "1000.00"
        for entry in r.json["accounts"]:
            assert set(entry) == set(account["properties"])
