"""What operators and client developers rely on: the OpenAPI document and /docs, health and readiness,
Prometheus metrics, request ids on every answer and in the JSON logs."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from adapters.web.logs import configure_logging
from adapters.web.schemas.decisions import DecisionRequestSchema
from adapters.web.schemas.money import POSITIVE_MONEY_PATTERN
from tests.api.conftest import CUSTOMER_A, assert_problem, order

pytestmark = pytest.mark.api

_PLACEHOLDER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


def metric(text: str, name: str, labels: str = "") -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    pattern = re.compile(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$", re.M)
    m = pattern.search(text)
    return float(m.group(1)) if m else 0.0


class TestOpenApi:
    def test_the_document_is_openapi_3_with_every_v1_route(self, app, client):
        r = client.get("/openapi.json")
        assert r.status_code == 200
        spec = r.json
        assert spec["openapi"].startswith("3.")
        for rule in app.url_map.iter_rules():
            if not rule.rule.startswith("/v1/"):
                continue
            path = _PLACEHOLDER.sub(r"{\1}", rule.rule)
            assert path in spec["paths"], path
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert method.lower() in spec["paths"][path], (method, path)

    def test_money_is_documented_as_a_string_with_a_pattern(self, client):
        schemas = client.get("/openapi.json").json["components"]["schemas"]
        request = schemas["DecisionRequest"]
        assert set(request["required"]) >= {"order_id", "customer_code", "sale_group_code", "amount"}
        assert request.get("additionalProperties") is False
        amount = request["properties"]["amount"]
        assert amount["type"] == "string"
        assert amount["pattern"] == POSITIVE_MONEY_PATTERN
        assert re.match(amount["pattern"], "1999.98") and not re.match(amount["pattern"], "1.001")
        for name in ("amount", "exposure", "available", "credit_limit", "shortfall"):
            prop = schemas["Decision"]["properties"][name]
            assert prop["type"] == "string" and "pattern" in prop, name

    def test_the_amount_pattern_accepts_exactly_what_the_server_accepts(self, client):
        pattern = client.get("/openapi.json").json["components"]["schemas"]["DecisionRequest"]
        pattern = pattern["properties"]["amount"]["pattern"]
        assert not re.search(r"\\[AZz]|\(\?P|\(\?<", pattern), "not an ECMA regex"
        field = DecisionRequestSchema().fields["amount"]
        near_money = st.from_regex(r"\A[-+ 0]?[0-9]{0,16}(\.[0-9]{0,3})?[\n ]?\Z")
        edges = st.sampled_from(["1000000000000.00", "1000000000000.01", "0.01", "0.0", "100.00\n", "-0"])

        @settings(max_examples=400, derandomize=True, deadline=None)
        @given(st.one_of(near_money, edges, st.from_regex(pattern, fullmatch=True), st.text(max_size=8)))
        def agree(text: str) -> None:
            try:
                field.deserialize(text)
                accepted = True
            except ValidationError:
                accepted = False
            # ECMA "^...$" without the m flag is Python's fullmatch: "$" matches only at the very end
            assert accepted == (re.fullmatch(pattern, text) is not None), text

        agree()

    def test_every_error_answer_is_documented_as_problem_json(self, client):
        spec = client.get("/openapi.json").json
        components = spec["components"]["responses"]
        for path, item in spec["paths"].items():
            for method, operation in _operations(item):
                for status, response in operation["responses"].items():
                    if status != "default" and int(status) < 400:
                        continue
                    if "$ref" in response:
                        response = components[response["$ref"].rsplit("/", 1)[1]]
                    content = response["content"]
                    if path.startswith("/v1/"):  # the seed-compatible answer has a failure shape of its own
                        assert set(content) == {"application/problem+json"}, (method, path, status)
                    if "application/problem+json" in content:
                        schema = content["application/problem+json"]["schema"]
                        assert schema == {"$ref": "#/components/schemas/Problem"}, (method, path, status)

    def test_a_bearer_token_or_an_x_api_key_header_is_documented_and_either_suffices(self, client):
        spec = client.get("/openapi.json").json
        schemes = spec["components"]["securitySchemes"]
        by_kind = {(s["type"], s.get("scheme") or s.get("name")): name for name, s in schemes.items()}
        bearer, header = by_kind[("http", "bearer")], by_kind[("apiKey", "X-API-Key")]
        assert schemes[header]["in"] == "header"
        # A list of requirement objects: meeting any one of them is enough.
        assert {frozenset(r) for r in spec["security"]} == {frozenset([bearer]), frozenset([header])}
        for _path, item in spec["paths"].items():
            for _method, operation in _operations(item):
                assert operation.get("security", spec["security"]) == spec["security"]

    def test_every_route_documents_each_status_it_is_seen_to_answer(self, app, client, keys):
        """Probes every API route with no key, each role's key and bad bodies; each status seen must
        have an entry of its own (not only "default") in the document."""
        spec = client.get("/openapi.json").json
        for rule in app.url_map.iter_rules():
            path = _PLACEHOLDER.sub(r"{\1}", rule.rule)
            if path not in spec["paths"]:
                continue
            url = _PLACEHOLDER.sub("x", rule.rule)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                documented = set(spec["paths"][path][method.lower()]["responses"])
                for probe, r in _probes(client, method, url, keys):
                    assert str(r.status_code) in documented, (method, path, probe, r.status_code, documented)

    def test_errors_are_documented_as_problems(self, client):
        spec = client.get("/openapi.json").json
        problem = spec["components"]["schemas"]["Problem"]["properties"]
        assert {"type", "title", "status", "detail", "errors", "request_id"} <= set(problem)

    def test_the_document_validates(self, client):
        validator = pytest.importorskip("openapi_spec_validator")
        validator.validate(client.get("/openapi.json").json)


def _operations(path_item):
    return [(m, op) for m, op in path_item.items() if m in ("get", "put", "post", "patch", "delete")]


def _probes(client, method, url, keys):
    """(what was sent, answer) for the requests any route can meet: no key, each role, bad bodies."""
    json_type = {"Content-Type": "application/json"}
    yield "no key", client.open(url, method=method)
    for role in ("orders", "admin", "auditor"):
        auth = {"Authorization": f"Bearer {keys[role]}"}
        yield role, client.open(url, method=method, headers=auth)
        if method in ("POST", "PUT", "PATCH"):
            for name, data, headers in [
                ("empty object", b"{}", json_type),
                ("text/plain", b"{}", {"Content-Type": "text/plain"}),
                ("not json", b"{", json_type),
                ("duplicate key", b'{"a": 1, "a": 2}', json_type),
                ("too deep", b"[" * 100 + b"]" * 100, json_type),
                ("65 KiB", b'{"a": "' + b"x" * 65 * 1024 + b'"}', json_type),
            ]:
                answer = client.open(url, method=method, data=data, headers={**auth, **headers})
                yield f"{role}: {name}", answer


class TestDocs:
    def test_docs_are_html_using_only_assets_the_app_serves(self, client):
        r = client.get("/docs")
        assert r.status_code == 200 and r.mimetype == "text/html"
        page = r.get_data(as_text=True)
        assert not re.search(r"(?:https?:)?//[A-Za-z0-9]", page.replace("/openapi.json", "")), (
            "remote URL in /docs"
        )
        assets = _ASSET.findall(page)
        assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
        for asset in assets:
            assert asset.startswith("/"), asset
            with client.get(asset) as served:  # a file response: close it, or it leaks the file
                assert served.status_code == 200, asset
                assert served.data
        assert "/openapi.json" in page


class TestHealth:
    def test_healthz_says_the_process_runs(self, client):
        r = client.get("/healthz")
        assert (r.status_code, r.json["status"]) == (200, "ok")

    def test_readyz_is_200_with_the_database_ok(self, client):
        r = client.get("/readyz")
        assert r.status_code == 200
        assert r.json["checks"]["database"] == "ok"

    def test_readyz_is_503_when_the_database_check_fails(self, client, context):
        def broken() -> None:
            raise ConnectionError("database is down")

        context.checks["database"] = broken
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.json["checks"]["database"] == "failing"
        assert "database is down" not in r.get_data(as_text=True)
        assert client.get("/healthz").status_code == 200


class TestMetrics:
    def test_a_decision_is_counted_and_timed(self, api):
        before = api.client.get("/metrics").get_data(as_text=True)
        assert api.decide(order()).status_code == 201
        r = api.client.get("/metrics")
        assert r.status_code == 200 and r.mimetype.startswith("text/plain")
        assert r.headers["Content-Type"].count("charset") == 1, r.headers["Content-Type"]
        after = r.get_data(as_text=True)
        assert "creditctl_decisions_total" in after and "creditctl_decision_seconds" in after
        outcome = '{outcome="approve"}'
        assert (
            metric(after, "creditctl_decisions_total", outcome)
            == metric(before, "creditctl_decisions_total", outcome) + 1
        )
        count = "creditctl_decision_seconds_count"
        assert metric(after, count) == metric(before, count) + 1

    def test_a_replay_is_not_counted_as_a_decision(self, api):
        body = order()
        api.decide(body)
        before = api.client.get("/metrics").get_data(as_text=True)
        assert api.decide(body).status_code == 200
        after = api.client.get("/metrics").get_data(as_text=True)
        outcome = '{outcome="approve"}'
        assert metric(after, "creditctl_decisions_total", outcome) == metric(
            before, "creditctl_decisions_total", outcome
        )
        replays = "creditctl_decision_replays_total"
        assert metric(after, replays) == metric(before, replays) + 1

    def test_a_decision_made_together_with_others_is_counted_as_such(self, api, monkeypatch):
        """Orders decided in one transaction by the holder of their account's turn (no test client makes
        two wait at once: the service's answer stands in for it here)."""
        import adapters.web.decisions as web_decisions

        real = web_decisions.decide_order
        monkeypatch.setattr(
            web_decisions, "decide_order", lambda *a, **kw: dataclasses.replace(real(*a, **kw), together=True)
        )
        before = api.client.get("/metrics").get_data(as_text=True)
        assert api.decide(order()).status_code == 201
        after = api.client.get("/metrics").get_data(as_text=True)
        together = "creditctl_decisions_together_total"
        assert metric(after, together) == metric(before, together) + 1
        outcome = '{outcome="approve"}'
        decisions = "creditctl_decisions_total"
        assert metric(after, decisions, outcome) == metric(before, decisions, outcome) + 1


class TestRequestIds:
    @pytest.mark.parametrize(
        "call",
        [
            lambda api: api.client.get("/healthz"),
            lambda api: api.client.get("/metrics"),
            lambda api: api.client.get("/openapi.json"),
            lambda api: api.decide(order()),
            lambda api: api.decide(order(amount="0")),
            lambda api: api.decide(order(), key=None),
            lambda api: api.client.post("/v1/decisions", data="x", headers=api.auth("orders")),
            lambda api: api.client.get("/nowhere"),
        ],
        ids=["healthz", "metrics", "openapi", "decide", "422", "401", "415", "404"],
    )
    def test_every_answer_carries_a_request_id(self, api, call):
        r = call(api)
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["X-Request-ID"])
        if r.mimetype == "application/problem+json":
            assert r.json["request_id"] == r.headers["X-Request-ID"]

    def test_a_valid_incoming_request_id_is_echoed(self, api):
        headers = {**api.auth("orders"), "X-Request-ID": "erp-2026.11.27_0001"}
        r = api.client.post("/v1/decisions", json=order(amount="0"), headers=headers)
        assert r.headers["X-Request-ID"] == "erp-2026.11.27_0001"
        assert_problem(r, 422)
        assert r.json["request_id"] == "erp-2026.11.27_0001"

    @pytest.mark.parametrize("incoming", ["", "has space", "x" * 65, "inject\u202ename", "a;b"])
    def test_an_invalid_incoming_request_id_is_replaced(self, client, incoming):
        r = client.get("/healthz", headers={"X-Request-ID": incoming})
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["X-Request-ID"])

    def test_the_json_access_log_carries_the_request_id(self, api):
        root = logging.getLogger()
        level, handlers = root.level, list(root.handlers)
        configure_logging("INFO")
        ours = [h for h in root.handlers if getattr(h, "_creditctl", False)]
        stream = io.StringIO()
        try:
            for handler in ours:
                handler.setStream(stream)
            headers = {**api.auth("orders"), "X-Request-ID": "trace-me-42"}
            assert api.client.get(f"/v1/accounts/{CUSTOMER_A}/GA10", headers=headers).status_code == 200
        finally:
            for handler in ours:
                if handler not in handlers:
                    root.removeHandler(handler)
            root.setLevel(level)
        lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
        access = [x for x in lines if x.get("logger") == "creditctl.access"]
        assert access, lines
        entry = access[-1]
        assert entry["request_id"] == "trace-me-42"
        assert entry["status"] == 200 and entry["path"] == f"/v1/accounts/{CUSTOMER_A}/GA10"
        assert entry["key"] == "test-orders"
        assert api.keys["orders"] not in stream.getvalue()
