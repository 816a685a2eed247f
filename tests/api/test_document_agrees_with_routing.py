"""What the document says about a call's body and parameters is what the server does with it: whether a
body may be left out, and which part of a request an error names."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.api.conftest import Api, assert_problem, order

pytestmark = pytest.mark.api

_PLACEHOLDER = re.compile(r"{[^}]+}")


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method != "parameters" and "requestBody" in operation
    ]


class TestBodies:
    def test_a_body_is_documented_required_exactly_when_leaving_it_out_is_refused(
        self, client: Any, keys: dict[str, str]
    ) -> None:
        spec = client.get("/openapi.json").json
        checked = 0
        for method, path, operation in operations(spec):
            key = keys["admin" if "admin" in operation["x-roles"] else operation["x-roles"][0]]
            integers = {
                p["name"]
                for p in spec["paths"][path].get("parameters", [])
                if p["schema"]["type"] == "integer"
            }
            url = _PLACEHOLDER.sub(lambda m, ints=integers: "1" if m.group()[1:-1] in ints else "x", path)
            r = client.open(url, method=method.upper(), headers={"Authorization": f"Bearer {key}"})
            refused = r.status_code in (400, 422) and r.json["detail"].startswith("The request body")
            assert refused == operation["requestBody"]["required"], (method, path, r.status_code, r.json)
            checked += 1
        assert checked > 20

    def test_an_empty_batch_recheck_is_documented_as_the_whole_queue(self, api: Api, client: Any) -> None:
        body = client.get("/openapi.json").json["paths"]["/v1/reviews/recheck"]["post"]["requestBody"]
        assert body["required"] is False
        r = api.client.post("/v1/reviews/recheck", headers=api.auth("admin"))
        assert r.status_code == 200 and r.json["rechecked"] == 0


class TestWhatAnErrorNames:
    def test_a_bad_query_parameter_is_called_one(self, api: Api) -> None:
        r = api.client.get("/v1/audit/events", query_string={"limit": "0"}, headers=api.auth("auditor"))
        body = assert_problem(r, 422, "limit")
        assert body["detail"] == "A query parameter is not valid: see errors for each field"

    def test_a_bad_body_is_still_called_the_body(self, api: Api) -> None:
        body = assert_problem(api.decide(order(amount="1.001")), 422, "amount")
        assert body["detail"] == "The request body is not valid: see errors for each field"

    def test_a_bad_header_is_called_a_header(self, api: Api) -> None:
        api.decide(body := order())
        r = api.client.post(
            f"/v1/decisions/{body['order_id']}/settle",
            json={"amount": "1.00"},
            headers={**api.auth("orders"), "Idempotency-Key": "x" * 65},
        )
        assert assert_problem(r, 422)["detail"] == "A header is not valid: see errors for each field"
