"""A tour of the API through the Flask client that keeps every answer with the operation it answers, and
a walk of an answer beside the schema the served document gives it: what a client generated from the
document relies on (every member it names required, null only where it says nullable)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from adapters.cli.backtest_jobs import run_queued
from adapters.fake.clock import FakeClock
from creditctl.services.api_keys import create_api_key
from creditctl.services.context import AppContext
from tests.api.conftest import CUSTOMER_A, CUSTOMER_B, order

_PLACEHOLDER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
SCHEMAS = "#/components/schemas/"


@dataclass
class Answer:
    method: str
    path: str  # the document's path template
    response: TestResponse


@dataclass
class Tour:
    """Calls the API with a role's key; each answer is kept under the operation the document names."""

    client: FlaskClient
    keys: dict[str, str]
    answers: list[Answer] = field(default_factory=list)
    # Called before each call with the call about to be made (tests that vary a successful request).
    before: Callable[[Call], None] | None = None

    def call(self, method: str, url: str, key: str, **kw: Any) -> TestResponse:
        headers = {"Authorization": f"Bearer {self.keys[key]}", **kw.pop("headers", {})}
        path = template(self.client, method, url.split("?")[0])
        if self.before is not None:
            self.before(Call(method, url, path, headers, kw.get("json")))
        r = self.client.open(url.split("?")[0], method=method, headers=headers, **kw, query_string=_qs(url))
        self.answers.append(Answer(method.lower(), path, r))
        assert r.status_code < 300, (method, url, r.status_code, r.get_data(as_text=True))
        return r


@dataclass
class Call:
    """A call of the tour before it is made: its URL, the document's path template, headers and body."""

    method: str
    url: str
    path: str
    headers: dict[str, str]
    body: Any


def template(client: FlaskClient, method: str, url: str) -> str:
    """The document's path template of the route `url` reaches."""
    adapter = client.application.url_map.bind("localhost")
    rule, _ = adapter.match(url, method=method, return_rule=True)
    return _PLACEHOLDER.sub(r"{\1}", rule.rule)


def _qs(url: str) -> str:
    return url.partition("?")[2]


def run_tour(
    client: FlaskClient,
    keys: dict[str, str],
    context: AppContext,
    clock: FakeClock,
    before: Callable[[Call], None] | None = None,
) -> Tour:
    """Every operation of the API, each answering with a success (the README's tour and the rest);
    `before` sees each call before it is made."""
    keys = {
        **keys,
        "admin2": create_api_key(
            name="tour-admin-2",
            role="admin",
            customers=None,
            uow=context.uow(),
            clock=context.clock,
            approval_limit="100000.00",
        ).secret,
    }
    t = Tour(client, keys, before=before)
    account = f"/v1/accounts/{CUSTOMER_A}/GB20"
    # orders above 1,000.00 wait for a review (MANUAL_REVIEW): the queue has something to show
    t.call("PUT", f"{account}/params", "admin", json={"params": {"single_order_review_amount": "1000.00"}})
    approved = order(amount="500.00")
    t.call("POST", "/v1/decisions", "orders", json=approved)
    t.call("POST", "/v1/decisions", "orders", json=approved)  # a replay: 200
    deferred = order(amount="5000.00")
    t.call("POST", "/v1/decisions", "orders", json=deferred)
    t.call("POST", "/v1/decisions", "orders", json=order(amount="900.00", customer=CUSTOMER_B, group="GA10"))
    oid = approved["order_id"]
    t.call("GET", f"/v1/decisions/{oid}", "auditor")
    part = {"amount": "200.00", "settlement_id": "DN-1"}
    t.call("POST", f"/v1/decisions/{oid}/settle", "orders", json=part)
    t.call("GET", account, "orders")
    t.call("POST", f"/v1/decisions/{oid}/release", "orders", json={})
    t.call("POST", f"/v1/decisions/{deferred['order_id']}/recheck", "orders", json={})
    t.call("GET", f"{account}/holds?limit=1", "orders")
    t.call("GET", f"/v1/balances/{CUSTOMER_A}", "orders")
    t.call("GET", f"/api/haier/balance/?customer_code={CUSTOMER_A}&sale_group_code=GB20", "orders")
    t.call("GET", "/v1/customers", "auditor")

    t.call("GET", "/v1/reviews", "auditor")
    t.call("POST", "/v1/reviews/recheck", "admin", json={"filter": {"customer_code": CUSTOMER_A}})
    t.call("POST", f"/v1/reviews/{deferred['order_id']}/recheck", "admin", json={"reason": "look again"})
    t.call("POST", f"/v1/reviews/{deferred['order_id']}/reject", "admin", json={"reason": "too large"})
    second = order(amount="6000.00")
    t.call("POST", "/v1/decisions", "orders", json=second)
    t.call("POST", f"/v1/reviews/{second['order_id']}/release", "admin2", json={"reason": "known customer"})

    t.call("POST", f"{account}/freeze", "admin", json={"reason": "payment dispute"})
    t.call("POST", f"{account}/unfreeze", "admin", json={"reason": "resolved"})
    t.call("GET", f"{account}/freezes", "auditor")
    payment = {"invoice_id": "INV-1", "amount": "100.00", "due_date": "2026-01-31"}
    t.call("POST", f"{account}/payments", "finance", json={"payments": [payment]})
    t.call("GET", f"{account}/payments", "auditor")
    t.call("GET", "/v1/keys/current", "admin")
    t.call("PUT", f"{account}/credit-profile", "admin", json={"base_limit": "1000.00", "reason": "review"})
    t.call("GET", f"{account}/credit-profile", "auditor")
    until = (clock.now() + timedelta(hours=2)).isoformat()
    ask = {"amount": "50000.00", "until": until, "reason": "seasonal stock"}
    asked = t.call("POST", f"{account}/credit-limit-requests", "admin", json=ask).json
    t.call("GET", f"{account}/credit-limit-requests", "auditor")
    t.call("GET", "/v1/credit-limit-requests", "auditor")
    t.call("POST", f"/v1/credit-limit-requests/{asked['id']}/approve", "admin2", json={"note": "ok"})
    asked = t.call("POST", f"{account}/credit-limit-requests", "admin", json=ask).json
    t.call("POST", f"/v1/credit-limit-requests/{asked['id']}/reject", "admin2", json={})

    _rule_sets(t, account, context)
    day = clock.now().date()
    period = f"from={day - timedelta(days=1)}&to={day + timedelta(days=1)}"
    t.call("GET", f"/v1/reports/decisions?{period}", "auditor")
    t.call("GET", "/v1/reports/exposure", "auditor")
    t.call("GET", f"/v1/reports/upstream?{period}", "auditor")
    for report in ("decisions", "exposure", "upstream"):
        t.call("GET", f"/v1/reports/{report}.csv", "auditor")
    hook = {"url": "https://hooks.example.com/creditctl", "events": ["balance.low"]}
    sub = t.call("POST", "/v1/webhooks", "admin", json=hook).json
    t.call("GET", "/v1/webhooks", "admin")
    t.call("GET", f"/v1/webhooks/{sub['id']}", "admin")
    t.call("POST", f"/v1/webhooks/{sub['id']}/rotate-secret", "admin")
    t.call("DELETE", f"/v1/webhooks/{sub['id']}", "admin")
    config = {
        "base_url": "https://openplat-test.haier.net",
        "auth": "client_credentials",
        "client_id": "client-4711",
        "client_secret": "cs-secret",
        "auth_scheme": "Bearer",
        "is_active": False,
    }
    t.call("PUT", "/v1/admin/haier/configs/tour", "admin", json=config)
    t.call("GET", "/v1/admin/haier/configs/tour", "admin")
    t.call("GET", "/v1/audit/events?limit=5", "auditor")
    return t


def _rule_sets(t: Tour, account: str, context: AppContext) -> None:
    t.call("GET", "/v1/rule-sets", "auditor")
    active = t.call("GET", "/v1/rule-sets/1", "auditor").json
    draft = t.call("POST", "/v1/rule-sets", "admin", json={"name": "tour"}).json
    document = active["document"]
    t.call("PUT", f"/v1/rule-sets/{draft['id']}", "admin", json={"name": "tour", "document": document})
    t.call("POST", f"/v1/rule-sets/{draft['id']}/validate", "auditor")
    simulate = {"amount": "100.00", "sale_group_code": "GB20", "customer_code": CUSTOMER_A}
    t.call("POST", f"/v1/rule-sets/{draft['id']}/simulate", "auditor", json=simulate)
    period = {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}
    run = t.call("POST", f"/v1/rule-sets/{draft['id']}/backtest", "admin", json=period).json
    run_queued(context)  # a backtest is a job: the worker runs it
    t.call("GET", f"/v1/backtests/{run['id']}", "auditor")
    t.call("GET", f"/v1/backtests/{run['id']}/changes", "auditor")
    t.call("POST", "/v1/backtests", "admin", json={"rule_set": document, **period})
    t.call("POST", f"/v1/rule-sets/{draft['id']}/publish", "admin", json={"reason": "tour"})
    t.call("GET", f"/v1/rule-sets/diff?from=1&to={draft['id']}", "auditor")
    assign = {"rule_set_id": draft["id"], "reason": "tour"}
    t.call("PUT", f"{account}/rule-set", "admin", json=assign)
    t.call("DELETE", f"{account}/rule-set", "admin")
    t.call("PUT", f"/v1/customers/{CUSTOMER_A}/rule-set", "admin", json=assign)
    t.call("DELETE", f"/v1/customers/{CUSTOMER_A}/rule-set", "admin")
    t.call("PUT", f"{account}/params", "admin", json={"params": {}})
    t.call("POST", f"/v1/rule-sets/{draft['id']}/rollback", "admin", json={"reason": "tour"})


@dataclass
class Walk:
    """What a walk of answers beside their schemas found: the members seen in each named schema's
    instances, and every way an answer differs from its document."""

    spec: dict[str, Any]
    members: dict[str, list[set[str]]] = field(default_factory=lambda: defaultdict(list))
    faults: list[str] = field(default_factory=list)

    def answer(self, answer: Answer) -> None:
        r = answer.response
        operation = self.spec["paths"][answer.path][answer.method]
        documented = operation["responses"].get(str(r.status_code))
        where = f"{answer.method.upper()} {answer.path} {r.status_code}"
        if documented is None:
            self.faults.append(f"{where}: status not documented")
            return
        content = documented.get("content", {})
        if r.mimetype != "application/json" or not r.get_data():
            return
        schema = content.get("application/json", {}).get("schema")
        if schema is None:
            self.faults.append(f"{where}: no application/json answer documented")
            return
        self.value(schema, r.get_json(), where)

    def value(self, schema: dict[str, Any], value: Any, where: str, name: str | None = None) -> None:
        if "$ref" in schema:
            ref = schema["$ref"].removeprefix(SCHEMAS)
            self.value(self.spec["components"]["schemas"][ref], value, f"{where} ({ref})", ref)
            return
        if value is None:
            if not nullable(schema):
                self.faults.append(f"{where}: null, documented not nullable")
            return
        if "anyOf" in schema:
            branches = [b for b in schema["anyOf"] if not null_only(b)]
            if len(branches) == 1:
                self.value(branches[0], value, where)
            else:
                self.faults.append(f"{where}: anyOf {branches}: which one does the answer follow?")
            return
        for part in schema.get("allOf", []):
            self.value(part, value, where)
        if isinstance(value, dict):
            self.object(schema, value, where, name)
        elif isinstance(value, list) and "items" in schema:
            for item in value:
                self.value(schema["items"], item, f"{where}[]")

    def object(self, schema: dict[str, Any], value: dict[str, Any], where: str, name: str | None) -> None:
        properties = schema.get("properties", {})
        missing = set(schema.get("required", [])) - set(value)
        if missing:
            self.faults.append(f"{where}: required {sorted(missing)} missing")
        if name is not None:
            self.members[name].append(set(value))
        extra = schema.get("additionalProperties")
        for key, member in value.items():
            if key in properties:
                self.value(properties[key], member, f"{where}.{key}")
            elif isinstance(extra, dict):
                self.value(extra, member, f"{where}[{key!r}]")
            elif properties and extra is not True:
                self.faults.append(f"{where}: member {key!r} not documented")


def nullable(schema: dict[str, Any]) -> bool:
    """Null is valid: said so, a branch that is null only, or no type at all (any value: `{}`)."""
    if schema.get("nullable") or any(nullable(b) for b in schema.get("anyOf", [])):
        return True
    return not {"type", "anyOf", "allOf", "oneOf", "enum"} & set(schema)


def null_only(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "null" or (schema.get("nullable") is True and schema.get("enum") == [None])
