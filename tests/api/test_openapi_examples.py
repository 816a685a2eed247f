"""Every example in the document is accepted by the server: a client (or a person in /docs) that sends what
the document shows must not meet a 422 for it. For each operation, the examples of its parameters and of
its body's members are sent together; whatever the answer, no field that came from an example may be named
as refused, and nothing is a server error."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.api.conftest import CUSTOMER_A, Api, order

pytestmark = pytest.mark.api

_PLACEHOLDER = re.compile(r"{([^}]+)}")


def example_of(node: dict[str, Any]) -> Any:
    return node.get("example", node.get("schema", {}).get("example"))


def resolved(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rpartition("/")[2]]
    return schema


def request_from_examples(
    spec: dict[str, Any], path: str, operation: dict[str, Any], known: dict[str, str]
) -> tuple[str, dict[str, Any], dict[str, Any] | None, set[str]]:
    """(url, query, body, names of the fields whose value is an example)"""
    parameters = [*spec["paths"][path].get("parameters", []), *operation.get("parameters", [])]
    from_examples: set[str] = set()
    values: dict[str, Any] = {}
    query: dict[str, Any] = {}
    for parameter in parameters:
        example = example_of(parameter)
        if parameter["in"] == "path":
            values[parameter["name"]] = example if example is not None else known.get(parameter["name"], "1")
        elif parameter["in"] == "query" and example is not None:
            query[parameter["name"]] = example
        else:
            continue
        if example is not None:
            from_examples.add(parameter["name"])
    url = _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), path)
    body = None
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is not None:
        schema = resolved(spec, content["schema"])
        body = {name: example_of({"schema": p}) for name, p in schema.get("properties", {}).items()}
        body = {name: value for name, value in body.items() if value is not None}
        from_examples |= set(body)
    return url, query, body, from_examples


def test_the_documents_examples_are_accepted(api: Api, client: Any) -> None:
    spec = client.get("/openapi.json").json
    decided = order("PO/2026/000123")  # the document's example order id, decided first
    assert api.decide(decided).status_code == 201
    known = {"customer_code": CUSTOMER_A, "sale_group_code": "GB20", "order_id": decided["order_id"]}
    sent = 0
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            url, query, body, from_examples = request_from_examples(spec, path, operation, known)
            if not from_examples - set(known):
                continue
            roles = operation.get("x-roles", ["orders"])
            key = "admin" if "admin" in roles else roles[0]
            r = api.client.open(
                url, method=method.upper(), query_string=query, json=body, headers=api.auth(key)
            )
            sent += 1
            where = (method, path, query, body, r.status_code)
            assert r.status_code < 500, where
            if r.status_code in (400, 422) and r.mimetype == "application/problem+json":
                refused = set(r.json["errors"]) & from_examples
                assert not refused, (*where, r.json["errors"])
    assert sent > 10


def test_a_report_period_from_the_examples_is_a_period(api: Api, client: Any) -> None:
    spec = client.get("/openapi.json").json
    for path in ("/v1/reports/decisions", "/v1/reports/upstream"):
        parameters = {p["name"]: example_of(p) for p in spec["paths"][path]["get"]["parameters"]}
        r = api.client.get(
            path,
            query_string={"from": parameters["from"], "to": parameters["to"]},
            headers=api.auth("auditor"),
        )
        assert r.status_code == 200, r.json
