"""U+0000 in any string the API takes is refused (4xx problem+json) or kept and given back, never a 500.

PostgreSQL's text cannot hold U+0000: a string that carried one to the database failed there (500) after
the request had been accepted. The sweep takes every string of every operation in /openapi.json (each
parameter, each body member at any depth, each free member name), checks that the document says it holds
no U+0000, puts "a\\x00b" in it in a request that otherwise succeeds (the tour's, the moment before the tour
makes it), and checks the answer, on SQLite and on PostgreSQL: a 4xx problem+json, or a success that gives
the text back (a body member) or merely reads (a parameter); a write that is taken ends the tour, which
then meets a state it did not make."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient

from adapters.web.app import create_app
from creditctl.services.api_keys import create_api_key
from creditctl.services.context import AppContext
from tests.api.conftest import PROBLEM_FIELDS
from tests.api.openapi_tour import SCHEMAS, Call, run_tour
from tests.api.test_console import Console

pytestmark = pytest.mark.api

NUL = "a\x00b"
ITEM, MEMBER, NAME = "[]", "*", "<name>"  # an array's item, a free member's value, a free member's name
# The seed-compatible balance answer keeps the seed's own error body (application/json), as documented.
OWN_ERRORS = {"/api/haier/balance/"}


@dataclass(frozen=True)
class Where:
    """A string in a request: a parameter (`part` query, path or header) or a body member (`steps`), and
    whether the document says it holds no U+0000 (a pattern or enum that refuses it, or for member names
    the object's description)."""

    part: str
    name: str = ""
    steps: tuple[str, ...] = ()
    documented: bool = False

    def __str__(self) -> str:
        return f"{self.part}:{self.name}" if self.part != "body" else "body." + ".".join(self.steps)


def strings_of(spec: dict[str, Any], operation: dict[str, Any]) -> list[Where]:
    """Every place of an operation that takes a string: parameters, body members, free member names."""
    found = [
        Where(p["in"], p["name"], documented=refuses_nul(spec, p["schema"]))
        for p in operation.get("parameters", [])
        if p["in"] != "cookie" and takes_a_string(spec, p.get("schema", {}))
    ]
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if body is not None:
        _walk(spec, body, (), found, frozenset())
    return found


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    return spec["components"]["schemas"][ref.removeprefix(SCHEMAS)] if ref else schema


def _branches(spec: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema and those it is made of (allOf, anyOf, oneOf), references resolved."""
    schema = _resolve(spec, schema)
    out = [schema]
    for key in ("allOf", "anyOf", "oneOf"):
        for branch in schema.get(key, []):
            out += _branches(spec, branch)
    return out


def takes_a_string(spec: dict[str, Any], schema: dict[str, Any]) -> bool:
    return any(b.get("type") == "string" for b in _branches(spec, schema))


def refuses_nul(spec: dict[str, Any], schema: dict[str, Any]) -> bool:
    """Whether every string the schema allows refuses "a\\x00b": by its pattern (ECMA: found anywhere,
    unless anchored) or its enum."""
    strings = [b for b in _branches(spec, schema) if b.get("type") == "string"]
    return all(_refused(b) for b in strings)


def _refused(schema: dict[str, Any]) -> bool:
    if "enum" in schema:
        return NUL not in schema["enum"]
    return "pattern" in schema and re.search(schema["pattern"], NUL) is None


def _walk(
    spec: dict[str, Any], schema: dict[str, Any], steps: tuple[str, ...], out: list[Where], seen: frozenset
) -> None:
    ref = schema.get("$ref")
    if ref in seen:
        return
    seen = seen | {ref} if ref else seen
    branches = _branches(spec, schema)
    if steps and any(b.get("type") == "string" for b in branches):
        out.append(Where("body", steps=steps, documented=refuses_nul(spec, schema)))
    for branch in branches:
        for name, member in branch.get("properties", {}).items():
            _walk(spec, member, (*steps, name), out, seen)
        free = branch.get("additionalProperties")
        if free:
            said = "U+0000" in branch.get("description", "")
            out.append(Where("body", steps=(*steps, NAME), documented=said))
            if isinstance(free, dict):
                _walk(spec, free, (*steps, MEMBER), out, seen)
        if branch.get("type") == "array" and "items" in branch:
            _walk(spec, branch["items"], (*steps, ITEM), out, seen)


def put(node: Any, steps: tuple[str, ...], value: str) -> Any:
    """`node` with `value` at `steps`: members and items made where the request has none."""
    if not steps:
        return value
    step, rest = steps[0], steps[1:]
    if step == ITEM:
        items = list(node) if isinstance(node, list) and node else [None]
        items[0] = put(items[0], rest, value)
        return items
    members = dict(node) if isinstance(node, dict) else {}
    if step == NAME:  # a member named with U+0000, its value one the request already has
        members[value] = next(iter(members.values()), "x")
        return members
    name = next(iter(members), "k") if step == MEMBER else step
    members[name] = put(members.get(name), rest, value)
    return members


@dataclass
class Sweep:
    """Before each call of the tour, the same call once per string of its operation, with U+0000 in it."""

    client: FlaskClient
    spec: dict[str, Any]
    done: set[tuple[str, str]] = field(default_factory=set)
    faults: list[str] = field(default_factory=list)
    sent: int = 0

    def __call__(self, call: Call) -> None:
        method = call.method.lower()
        if (method, call.path) in self.done:
            return
        self.done.add((method, call.path))
        for where in strings_of(self.spec, self.spec["paths"][call.path][method]):
            self.one(call, where)

    def one(self, call: Call, where: Where) -> None:
        if not where.documented:
            self.faults.append(f"{call.method} {call.path} {where}: the document allows U+0000 there")
        url, _, query = call.url.partition("?")
        headers, body = dict(call.headers), copy.deepcopy(call.body)
        params: list[tuple[str, str]] = [tuple(p.split("=", 1)) for p in query.split("&") if p]  # type: ignore[misc]
        if where.part == "query":
            params = [(k, v) for k, v in params if k != where.name] + [(where.name, NUL)]
        elif where.part == "path":
            url = _with_path_parameter(self.client, call.method, url, where.name)
        elif where.part == "header":
            headers[where.name] = NUL
        else:
            body = put(body, where.steps, NUL)
        try:
            r = self.client.open(url, method=call.method, headers=headers, json=body, query_string=params)
        except ValueError:  # werkzeug sends no header holding U+0000, nor does any HTTP client
            assert where.part == "header", where
            return
        self.sent += 1
        self.check(f"{call.method} {call.path} {where}", where, r)

    def check(self, label: str, where: Where, r: Any) -> None:
        text = r.get_data(as_text=True)
        if 400 <= r.status_code < 500:
            own = label.split()[1] in OWN_ERRORS and r.mimetype == "application/json"
            if not own and (r.mimetype != "application/problem+json" or set(r.json) < PROBLEM_FIELDS):
                self.faults.append(f"{label}: {r.status_code} {r.mimetype}, not problem+json")
        elif 200 <= r.status_code < 300:
            kept = where.part != "body" or NUL in json.dumps(
                r.get_json(silent=True), ensure_ascii=False, default=str
            )
            if r.mimetype == "application/json" and not kept:
                self.faults.append(f"{label}: {r.status_code}, taken and not given back: {text[:200]}")
        else:
            self.faults.append(f"{label}: {r.status_code} {text[:200]}")


def _with_path_parameter(client: FlaskClient, method: str, url: str, name: str) -> str:
    adapter = client.application.url_map.bind("localhost")
    endpoint, args = adapter.match(url, method=method)
    args[name] = NUL
    built = adapter.build(endpoint, args, method=method)
    return built.replace(quote(NUL, safe=""), "a%00b")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> AppContext:
    return request.getfixturevalue("context" if request.param == "sqlite" else "pg_context")  # type: ignore[no-any-return]


def test_u0000_in_any_string_of_any_operation_is_refused_or_kept_never_a_500(
    database: AppContext, clock: Any
) -> None:
    client = create_app(database, {"TESTING": True}).test_client()
    keys = {
        role: create_api_key(
            name=f"sweep-{role}", role=role, customers=None, uow=database.uow(), clock=database.clock
        ).secret
        for role in ("orders", "admin", "auditor", "finance")
    }
    spec = client.get("/openapi.json").json
    sweep = Sweep(client, spec)
    try:
        run_tour(client, keys, database, clock, before=sweep)
    except AssertionError as exc:  # a call with U+0000 was taken: the tour's next call meets another state
        pytest.fail("\n".join([*sweep.faults, f"and then the tour failed: {exc}"]))
    documented = {(m, p) for p, item in spec["paths"].items() for m in item if m != "parameters"}
    assert documented - sweep.done == set(), "operations the sweep did not reach"
    assert sweep.sent > 200, sweep.sent
    assert not sweep.faults, "\n".join(sweep.faults)


# A value for each path parameter of the console's pages (a page of something absent is still a page).
CONSOLE_PATH = {
    "customer_code": "8800000001",
    "sale_group_code": "GB20",
    "order_id": "x",
    "rule_set_id": 1,
    "run_id": "x",
    "unknown": "x",
}


def test_u0000_in_any_field_of_any_console_page_is_refused_never_a_500(database: AppContext) -> None:
    """The console's pages and forms read their query, form and path themselves: U+0000 in any of them is
    a 422 page naming the field, on every route (the query's, a form's, a path's), signed in as admin."""
    app = create_app(database, {"TESTING": True})
    admin = create_api_key(
        name="sweep", role="admin", customers=None, uow=database.uow(), clock=database.clock
    )
    console = Console(app.test_client())
    assert console.sign_in(admin.secret).status_code == 302
    adapter = app.url_map.bind("localhost")
    faults, sent = [], 0
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("console.") or rule.endpoint == "console.static":
            continue
        values = {name: CONSOLE_PATH[name] for name in rule.arguments}
        variants = [("query", values, {"q": NUL}, {}), ("form", values, {}, {"reason": NUL})]
        variants += [(f"path {name}", {**values, name: NUL}, {}, {}) for name in rule.arguments]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for what, args, query, form in variants:
                if what == "form" and method != "POST":
                    continue
                if isinstance(args.get("rule_set_id"), str):
                    continue  # an int converter: no such URL (404 before any view)
                url = adapter.build(rule.endpoint, args, method=method)
                if method == "POST":
                    console.get("/console/rule-sets")  # a fresh CSRF token
                    r = console.post(url, form, query_string=query)
                else:
                    r = console.get(url, query_string=query)
                sent += 1
                if r.status_code != 422 or "U+0000" not in r.get_data(as_text=True):
                    faults.append(f"{method} {rule.rule} ({what}): {r.status_code}")
    assert sent > 30, sent
    assert not faults, "\n".join(faults)


def test_a_rule_set_document_holding_an_escaped_u0000_is_not_saved_from_the_console(
    database: AppContext,
) -> None:
    """The console's editor takes the document as JSON text, where U+0000 arrives as the escape \\u0000
    (no form field holds it): refused as the API refuses it, the draft left as it was."""
    app = create_app(database, {"TESTING": True})
    admin = create_api_key(
        name="sweep", role="admin", customers=None, uow=database.uow(), clock=database.clock
    )
    console = Console(app.test_client())
    assert console.sign_in(admin.secret).status_code == 302
    console.get("/console/rule-sets")
    draft = console.post("/console/rule-sets/new", {"name": "draft"}).headers["Location"]
    console.get(draft)
    document = json.dumps({"name": "a\x00b", "rules": []})
    assert "\\u0000" in document
    r = console.post(draft, {"action": "save", "name": "draft", "document": document})
    assert r.status_code == 200 and "U+0000" in r.get_data(as_text=True), r.status_code
    listing = app.test_client().get(
        f"/v1/rule-sets/{draft.rsplit('/', 1)[1]}", headers={"Authorization": f"Bearer {admin.secret}"}
    )
    assert listing.status_code == 200 and "\\u0000" not in listing.get_data(as_text=True)
