"""Constraints the server enforces are stated in the document, so that a client that follows the document
gets no 422: for each, the document's statement refuses the value the server refuses (and the server does
refuse it), and a value the document allows is accepted."""

from __future__ import annotations

import re
import socket
import sys
import unicodedata
from datetime import timedelta
from typing import Any

import pytest
from marshmallow import ValidationError

from adapters.haier import config as haier_config
from adapters.web.app import create_app
from adapters.web.schemas import text, upstream_configs
from creditctl.domain.report_period import zone
from creditctl.services.api_keys import create_api_key
from rules import default_rule_set_document
from tests.api.conftest import CUSTOMER_A, Api, assert_problem, order

pytestmark = pytest.mark.api

ACCOUNT = f"/v1/accounts/{CUSTOMER_A}/GB20"
HAIER = {
    "base_url": "https://openplat-test.haier.net",
    "auth": "client_credentials",
    "client_id": "c",
    "client_secret": "s",
    "auth_scheme": "Bearer",
    "is_active": False,
}


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


def prop_of(schemas: dict[str, Any], schema: str, member: str) -> dict[str, Any]:
    return schemas[schema]["properties"][member]  # type: ignore[no-any-return]


def fullmatches(prop: dict[str, Any], value: str) -> bool:
    """The document's pattern (anchored, as every pattern here is) and length bounds, as a validator reads
    them."""
    return re.search(prop["pattern"], value) is not None and prop.get("minLength", 0) <= len(
        value
    ) <= prop.get("maxLength", len(value))


@pytest.fixture
def decided(api: Api) -> str:
    body = order(amount="100.00")
    assert api.decide(body).status_code == 201
    return str(body["order_id"])


@pytest.fixture
def deferred(api: Api) -> str:
    r = api.client.put(
        f"{ACCOUNT}/params",
        json={"params": {"single_order_review_amount": "10.00"}},
        headers=api.auth("admin"),
    )
    assert r.status_code == 200, r.json
    body = order(amount="100.00")
    assert api.decide(body).json["outcome"] == "defer"
    return str(body["order_id"])


class TestPlainText:
    def test_the_patterns_are_the_servers_rules_at_every_code_point(self) -> None:
        """CONTROL is Unicode's Cc, Cf, Zl and Zp, WHITESPACE is str.isspace(): over every code point."""
        every = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
        control = {c for c in every if unicodedata.category(c) in text.CONTROL_CATEGORIES}
        assert set(re.findall(f"[{text.CONTROL}]", every)) == control
        assert set(re.findall(f"[{text.CC}]", every)) == {c for c in every if unicodedata.category(c) == "Cc"}
        assert set(re.findall(f"[{text.WHITESPACE}]", every)) == {c for c in every if c.isspace()}
        assert set(re.findall(text.NOT_BLANK_CHAR, every)) == {c for c in every if not c.isspace()} - {"\x00"}
        not_blank = re.compile(text.NOT_BLANK)
        for value, blank in (
            ("a", False),
            (" a ", False),
            ("\u3000x\n", False),
            ("  ", True),
            ("a\x00", True),
        ):
            assert (not_blank.search(value) is None) == blank, repr(value)
        plain = re.compile(text.PLAIN_TEXT)
        for value in ("a", "a b", "Ordre № 1 ✓", "发票", "a\u00adb", " a", "a ", "a\u0085", "", "a\nb"):
            try:
                text.no_control_chars(value)
                accepted = value != ""
            except ValidationError:
                accepted = False
            assert (plain.fullmatch(value) is not None) == accepted, repr(value)

    @pytest.mark.parametrize(
        ("schema", "member"),
        [
            ("DecisionRequest", "order_id"),
            ("DecisionRequest", "channel"),
            ("SettleRequest", "settlement_id"),
            ("ReviewAction", "reason"),
            ("BatchRecheck", "reason"),
        ],
    )
    def test_control_characters_and_surrounding_whitespace_are_refused_as_documented(
        self, api: Api, schemas: dict[str, Any], decided: str, deferred: str, schema: str, member: str
    ) -> None:
        prop = prop_of(schemas, schema, member)
        assert fullmatches(prop, "Ordre № 1 ✓")
        calls = {
            "DecisionRequest": lambda v: api.decide(order(**{member: v})),
            "SettleRequest": lambda v: api.client.post(
                f"/v1/decisions/{decided}/settle",
                json={"amount": "1.00", member: v},
                headers=api.auth("orders"),
            ),
            "ReviewAction": lambda v: api.client.post(
                f"/v1/reviews/{deferred}/reject", json={member: v}, headers=api.auth("admin")
            ),
            "BatchRecheck": lambda v: api.client.post(
                "/v1/reviews/recheck", json={member: v}, headers=api.auth("admin")
            ),
        }
        for bad in ("a\u200bb", " a", "a\u0085", "a\u2028b", "a\x7f"):
            assert not fullmatches(prop, bad), repr(bad)
            assert_problem(calls[schema](bad), 422, member)

    def test_an_order_id_without_an_empty_or_dot_part_is_documented(
        self, api: Api, schemas: dict[str, Any]
    ) -> None:
        prop = prop_of(schemas, "DecisionRequest", "order_id")
        for bad in ("a//b", "/a", "a/", "./a", "a/../b", "..", "a/."):
            assert not fullmatches(prop, bad), bad
            assert_problem(api.decide(order(order_id=bad)), 422, "order_id")
        for good in ("PO/2026/000123", "a/.b/...", ".a"):
            assert fullmatches(prop, good), good
            assert api.decide(order(order_id=good)).status_code == 201


class TestDecisionMetadata:
    def test_the_documented_bounds_are_the_servers(self, api: Api, schemas: dict[str, Any]) -> None:
        prop = prop_of(schemas, "DecisionRequest", "metadata")
        assert prop["maxProperties"] == 32
        kinds = {branch.get("type") for branch in prop["additionalProperties"]["anyOf"]}
        assert kinds == {"string", "number", "boolean", "object"}  # object: null only
        assert {"array"}.isdisjoint(kinds)
        for metadata in ({str(i): i for i in range(33)}, {"a": {"b": 1}}, {"a": [1]}, {"a": "x" * 513}):
            assert_problem(api.decide(order(metadata=metadata)), 422, "metadata")
        fine = {"a": "x" * 512, "b": 1.5, "c": True, "d": None}
        assert api.decide(order(metadata=fine)).status_code == 201


class TestMoneyFromZero:
    def test_payment_records_are_refused_as_documented(self, api: Api, schemas: dict[str, Any]) -> None:
        record = {"invoice_id": "INV-1", "amount": "100.00", "due_date": "2026-01-31"}
        for member, bad in (
            ("invoice_id", " INV-1"),
            ("invoice_id", "INV-1\u3000"),
            ("due_date", "1999-12-31"),
            ("due_date", "2101-01-01"),
            ("paid_amount", "-1.00"),
        ):
            assert not fullmatches({"pattern": prop_of(schemas, "Payment", member)["pattern"]}, bad), bad
            r = api.client.post(
                f"{ACCOUNT}/payments",
                json={"payments": [{**record, member: bad}]},
                headers=api.auth("finance"),
            )
            assert_problem(r, 422, f"payments.0.{member}")

    def test_a_base_limit_below_zero_is_refused_as_documented(
        self, api: Api, schemas: dict[str, Any]
    ) -> None:
        prop = prop_of(schemas, "BaseLimit", "base_limit")
        assert not fullmatches(prop, "-1.00") and fullmatches(prop, "0.00")
        body = {"base_limit": "-1.00", "reason": "review"}
        r = api.client.put(f"{ACCOUNT}/credit-profile", json=body, headers=api.auth("admin"))
        assert_problem(r, 422, "base_limit")


class TestMoments:
    def test_a_limit_request_lasts_at_most_366_days_as_documented(
        self, api: Api, clock: Any, schemas: dict[str, Any]
    ) -> None:
        assert "at most 366 days ahead" in prop_of(schemas, "LimitRequestBody", "until")["description"]
        body = {"amount": "1.00", "until": (clock.now() + timedelta(days=367)).isoformat(), "reason": "x"}
        r = api.client.post(f"{ACCOUNT}/credit-limit-requests", json=body, headers=api.auth("admin"))
        assert_problem(r, 422, "until")

    @pytest.mark.parametrize(
        "moment", ["0001-01-01T00:00:00+14:00", "2026-11-30T08:00:60Z", "2026-11-30t08:00:00z", "2026-11-30"]
    )
    def test_a_moment_the_server_does_not_read_is_outside_the_documented_pattern(
        self, api: Api, schemas: dict[str, Any], moment: str
    ) -> None:
        prop = prop_of(schemas, "LimitRequestBody", "until")
        assert prop["format"] == "date-time" and not fullmatches(prop, moment)
        body = {"amount": "1.00", "until": moment, "reason": "x"}
        r = api.client.post(f"{ACCOUNT}/credit-limit-requests", json=body, headers=api.auth("admin"))
        assert_problem(r, 422, "until")

    @pytest.mark.parametrize(
        "query",
        [
            {"from": "0001-01-01"},
            {"to": "0001-01-03"},
            {"from": "0001-01-01T00:00:00+14:00", "to": "0001-01-02"},
        ],
    )
    def test_a_report_period_outside_the_documented_years_is_a_422_not_a_500(
        self, api: Api, client: Any, query: dict[str, str]
    ) -> None:
        parameters = client.get("/openapi.json").json["paths"]["/v1/reports/decisions"]["get"]["parameters"]
        schema = next(p for p in parameters if p["name"] == "from")["schema"]
        for value in query.values():
            assert not any(re.search(branch["pattern"], value) for branch in schema["anyOf"]), value
        r = api.client.get("/v1/reports/decisions", query_string=query, headers=api.auth("auditor"))
        assert r.status_code == 422, r.get_data(as_text=True)
        assert_problem(r, 422, *query)

    def test_a_report_zone_is_one_the_document_lists(self, api: Api, client: Any) -> None:
        parameters = client.get("/openapi.json").json["paths"]["/v1/reports/decisions"]["get"]["parameters"]
        zones = next(p for p in parameters if p["name"] == "tz")["schema"]["enum"]
        assert "Asia/Shanghai" in zones and "Mars/Olympus" not in zones
        assert all(zone(name).key == name for name in zones)  # each listed zone is one the server reads
        r = api.client.get("/v1/reports/decisions?tz=Mars/Olympus", headers=api.auth("auditor"))
        assert_problem(r, 422, "tz")


class TestUrls:
    @pytest.mark.parametrize(
        "url",
        [
            "https://localhost/x",
            "https://a.localhost/x",
            "https://10.0.0.1/x",
            "https://2130706433/x",
            "https://user@hooks.example.com/x",
            "https://hooks.example.com/a b",
            "https://hooks.example.com\\x",
            "https://hooks.example.com:99999/x",
            "https://",
        ],
    )
    def test_a_url_the_server_refuses_is_outside_the_documented_pattern(
        self, api: Api, schemas: dict[str, Any], no_name_resolves: None, url: str
    ) -> None:
        assert not allows(schemas["SubscriptionRequest"]["properties"]["url"], url)
        assert not allows(schemas["HaierConfig"]["properties"]["base_url"], url)
        body = {"url": url, "events": ["balance.low"]}
        assert_problem(api.client.post("/v1/webhooks", json=body, headers=api.auth("admin")), 422, "url")

    def test_a_url_of_the_documented_pattern_is_taken(
        self, api: Api, schemas: dict[str, Any], no_name_resolves: None
    ) -> None:
        url = "https://Hooks-1.example.com:8443/creditctl?a=1#x"
        assert allows(schemas["SubscriptionRequest"]["properties"]["url"], url)
        body = {"url": url, "events": ["balance.low"]}
        assert api.client.post("/v1/webhooks", json=body, headers=api.auth("admin")).status_code == 201


@pytest.fixture
def no_name_resolves(monkeypatch: pytest.MonkeyPatch) -> None:
    """No host name resolves (no network in these tests): the server takes an https one that does not."""

    def unresolved(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "not resolved in this test")

    monkeypatch.setattr(socket, "getaddrinfo", unresolved)


class TestHaierConfigMembers:
    def test_the_documented_statements_are_the_adapters(
        self, api: Api, client: Any, schemas: dict[str, Any]
    ) -> None:
        props = schemas["HaierConfig"]["properties"]
        assert props["timeouts"]["properties"]["connect_s"]["maximum"] == haier_config.MAX_CONNECT_S
        assert props["timeouts"]["properties"]["read_s"]["maximum"] == haier_config.MAX_READ_S
        assert props["client_id"]["maxLength"] == haier_config.MAX_TEXT
        assert not allows(props["client_id"], " \u3000")
        for member, bad in (
            ("timeouts", {"connect_s": 121}),
            ("timeouts", {"connect_s": 5, "write_s": 1}),
            ("client_id", " "),
            ("customers", {"8800000001": ""}),
        ):
            r = api.client.put(
                "/v1/admin/haier/configs/main", json={**HAIER, member: bad}, headers=api.auth("admin")
            )
            assert r.status_code == 422 and any(k.startswith(member) for k in r.json["errors"]), r.json
        path = client.get("/openapi.json").json["paths"]["/v1/admin/haier/configs/{name}"]
        name = next(p for p in path["parameters"] if p["name"] == "name")
        assert not allows(name["schema"], "a b") and allows(name["schema"], "main-2")
        r = api.client.put("/v1/admin/haier/configs/a b", json=HAIER, headers=api.auth("admin"))
        assert_problem(r, 422, "name")

    def test_a_rate_that_is_not_whole_is_kept_and_read_back(self, api: Api) -> None:
        """A non-integer number was stored as a string, and the config no longer validated (422)."""
        body = {**HAIER, "rate_limit_per_s": 48.5, "timeouts": {"connect_s": 2.5, "read_s": 30}}
        r = api.client.put("/v1/admin/haier/configs/main", json=body, headers=api.auth("admin"))
        assert r.status_code == 200, r.json
        r = api.client.get("/v1/admin/haier/configs/main", headers=api.auth("admin"))
        assert r.status_code == 200, r.json
        assert (r.json["rate_limit_per_s"], r.json["timeouts"]["connect_s"]) == (48.5, 2.5)


class TestRuleDocuments:
    @pytest.mark.parametrize(
        ("member", "bad"),
        [("id", "Bad-Id"), ("reason", "x"), ("outcome", "maybe"), ("message", "{"), ("actions", ["mail:x"])],
    )
    def test_a_rule_member_is_refused_as_documented(
        self, api: Api, schemas: dict[str, Any], member: str, bad: Any
    ) -> None:
        rule_schema = schemas["BacktestRequest"]["properties"]["rule_set"]["properties"]["rules"]["items"]
        prop = rule_schema["properties"][member]
        if "enum" in prop:
            assert bad not in prop["enum"]
        elif prop["type"] == "array":
            assert not all(allows(prop["items"], item) for item in bad)
        else:
            assert not allows(prop, bad)
        document = default_rule_set_document()
        document["rules"][0][member] = bad
        body = {"rule_set": document, "from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}
        r = api.client.post("/v1/backtests", json=body, headers=api.auth("admin"))
        assert r.status_code == 422 and any(k.startswith("rule_set/rules/0") for k in r.json["errors"]), (
            r.json
        )

    def test_a_draft_is_replaced_with_a_document_as_documented(
        self, api: Api, schemas: dict[str, Any]
    ) -> None:
        """PUT without one stored an empty document, which no publication takes."""
        assert "document" in schemas["DraftReplacement"]["required"]
        draft = api.client.post("/v1/rule-sets", json={"name": "d"}, headers=api.auth("admin")).json
        r = api.client.put(f"/v1/rule-sets/{draft['id']}", json={"name": "e"}, headers=api.auth("admin"))
        assert_problem(r, 422, "document")
        stored = api.client.get(f"/v1/rule-sets/{draft['id']}", headers=api.auth("admin")).json
        assert stored["document"] == draft["document"] and stored["name"] == "d"

    def test_a_simulated_on_time_ratio_is_bounded_as_documented(
        self, api: Api, schemas: dict[str, Any]
    ) -> None:
        prop = prop_of(schemas, "HypotheticalPayment", "on_time_ratio")
        assert (prop["minimum"], prop["maximum"]) == (0, 1)
        account = {"balance": "100.00", "payment": {"on_time_ratio": 1.5}}
        body = {"amount": "1.00", "sale_group_code": "GB20", "account": account}
        r = api.client.post("/v1/rule-sets/1/simulate", json=body, headers=api.auth("auditor"))
        assert_problem(r, 422, "account.payment.on_time_ratio")


class TestAuditFilters:
    @pytest.mark.parametrize("member", ["customer_code", "sale_group_code", "order_id", "type", "actor"])
    def test_a_filter_with_a_control_character_is_refused_as_documented(
        self, api: Api, client: Any, member: str
    ) -> None:
        parameters = client.get("/openapi.json").json["paths"]["/v1/audit/events"]["get"]["parameters"]
        schema = next(p for p in parameters if p["name"] == member)["schema"]
        assert not allows(schema, "a\x00b") and allows(schema, "decision.made")
        r = api.client.get("/v1/audit/events", query_string={member: "a\x00b"}, headers=api.auth("auditor"))
        assert_problem(r, 422, member)


def test_on_postgresql_a_filter_or_cursor_with_u0000_is_no_500(pg_context: Any) -> None:
    """PostgreSQL's text cannot hold U+0000: an audit filter holding one was a 500, as was a payment cursor
    that decodes to one (any cursor of the pattern is a position: U+0000 reads as U+FFFD)."""
    app = create_app(pg_context, {"TESTING": True})
    secret = create_api_key(
        name="auditor", role="auditor", customers=None, uow=pg_context.uow(), clock=pg_context.clock
    ).secret
    headers = {"Authorization": f"Bearer {secret}"}
    client = app.test_client()
    assert_problem(client.get("/v1/audit/events?order_id=%00", headers=headers), 422, "order_id")
    r = client.get(f"{ACCOUNT}/payments?cursor=AA", headers=headers)
    assert r.status_code == 200, r.get_data(as_text=True)
