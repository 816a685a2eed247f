"""Every paged operation says what its cursor is (the next_cursor of the previous page, opaque, and its
pattern); a cursor outside the pattern is a 422 naming `cursor`, and every one inside it is taken (a
position in the listing's order), so that a client that follows the document is never refused its cursor."""

from __future__ import annotations

import re
from typing import Any

import pytest

from adapters.cli.backtest_jobs import run_queued
from tests.api.conftest import CUSTOMER_A, Api, assert_problem, order

pytestmark = pytest.mark.api

ACCOUNT = f"/v1/accounts/{CUSTOMER_A}/GB20"
PERIOD = {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}
# (path template, key), a cursor inside the document's pattern that no page gave, ones outside it
PAGED = {
    "holds": (f"{ACCOUNT}/holds", "orders", "1732694400000000.0a1b2c", ["not a cursor!", "MjAyNnxh", "1."]),
    "payments": (f"{ACCOUNT}/payments", "auditor", "SU5WLTE", ["not a cursor!", "A", "SU5WLTE=="]),
    "reviews": ("/v1/reviews", "auditor", "1732694400000000.0a1b2c", ["bm9wZQ", "-1.a", "1.a b"]),
    "backtest changes": ("/v1/backtests/{run}/changes", "auditor", "7", ["²", "-1", "1.5", "x"]),
    "audit events": ("/v1/audit/events", "auditor", "5", ["-1", "x", str(2**62 + 1)]),
}


@pytest.fixture
def document(client: Any) -> dict[str, Any]:
    return client.get("/openapi.json").json  # type: ignore[no-any-return]


@pytest.fixture
def run(api: Api, context: Any) -> str:
    """A backtest that has ended, whose changes can be paged."""
    assert api.decide(order(amount="100.00")).status_code == 201
    body = {"rule_set": _document(api), **PERIOD}
    r = api.client.post("/v1/backtests", json=body, headers=api.auth("admin"))
    assert r.status_code == 202, r.json
    run_queued(context)
    return str(r.json["id"])


def _document(api: Api) -> Any:
    return api.client.get("/v1/rule-sets/1", headers=api.auth("auditor")).json["document"]


def _paged(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every operation whose answer has a next_cursor: its cursor parameter, by path."""
    schemas = document["components"]["schemas"]
    found = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue  # the path's own (a path parameter described once for its operations)
            answer = operation["responses"].get("200", {}).get("content", {}).get("application/json", {})
            ref = answer.get("schema", {}).get("$ref", "").rpartition("/")[2]
            if "next_cursor" in schemas.get(ref, {}).get("properties", {}):
                found[f"{method.upper()} {path}"] = next(
                    p for p in operation["parameters"] if p["name"] == "cursor"
                )
    return found


def _allows(schema: dict[str, Any], value: str) -> bool:
    if schema.get("type") == "integer":
        return bool(re.fullmatch(r"-?[0-9]+", value)) and schema["minimum"] <= int(value) <= schema["maximum"]
    return re.search(schema["pattern"], value) is not None and len(value) <= schema.get(
        "maxLength", len(value)
    )


def _url(name: str, run: str) -> tuple[str, str]:
    path, key, *_ = PAGED[name]
    return path.format(run=run), key


class TestCursors:
    def test_every_paged_operation_says_what_its_cursor_is(self, document: dict[str, Any]) -> None:
        paged = _paged(document)
        assert len(paged) == len(PAGED), sorted(paged)
        for label, cursor in paged.items():
            assert "next_cursor of the previous page" in cursor["description"], label
            schema = cursor["schema"]
            assert "pattern" in schema or {"minimum", "maximum"} <= set(schema), (label, schema)

    @pytest.mark.parametrize("name", PAGED)
    def test_a_cursor_outside_the_documented_pattern_is_a_422_naming_it(
        self, api: Api, document: dict[str, Any], run: str, name: str
    ) -> None:
        url, key = _url(name, run)
        schema = _schema(document, PAGED[name][0])
        for malformed in PAGED[name][3]:
            assert not _allows(schema, malformed), malformed
            r = api.client.get(url, query_string={"cursor": malformed}, headers=api.auth(key))
            assert_problem(r, 422, "cursor")

    @pytest.mark.parametrize("name", PAGED)
    def test_a_cursor_of_the_documented_pattern_is_taken_as_a_position(
        self, api: Api, document: dict[str, Any], run: str, name: str
    ) -> None:
        url, key = _url(name, run)
        made_up = PAGED[name][2]
        assert _allows(_schema(document, PAGED[name][0]), made_up)
        r = api.client.get(url, query_string={"cursor": made_up}, headers=api.auth(key))
        assert r.status_code == 200, r.get_data(as_text=True)

    def test_a_cursor_after_a_long_invoice_id_is_taken_back(self, api: Api) -> None:
        """64 characters of 3 bytes make a cursor of 256 characters (the parameter took 200)."""
        invoices = [{"invoice_id": f"{c * 64}", "amount": "1.00", "due_date": "2026-01-31"} for c in "发票"]
        r = api.client.post(f"{ACCOUNT}/payments", json={"payments": invoices}, headers=api.auth("finance"))
        assert r.status_code == 200, r.json
        first = api.client.get(f"{ACCOUNT}/payments?limit=1", headers=api.auth("auditor")).json
        assert len(first["next_cursor"]) > 200
        rest = api.client.get(
            f"{ACCOUNT}/payments", query_string={"cursor": first["next_cursor"]}, headers=api.auth("auditor")
        )
        assert rest.status_code == 200, rest.json
        assert [p["invoice_id"] for p in first["items"] + rest.json["items"]] == sorted(
            i["invoice_id"] for i in invoices
        )


def _schema(document: dict[str, Any], path: str) -> dict[str, Any]:
    template = re.sub(r"/v1/accounts/[^/]+/[^/]+", "/v1/accounts/{customer_code}/{sale_group_code}", path)
    template = template.replace("{run}", "{run_id}")
    parameters = document["paths"][template]["get"]["parameters"]
    return next(p for p in parameters if p["name"] == "cursor")["schema"]  # type: ignore[no-any-return]
