"""Every console page, rendered with real data, shows no Python object: no `Decimal('…')`,
`datetime.datetime(…)`, dataclass repr, dict or list repr, `<… object at 0x…>` or a bare `None` where a
dash is meant. The sweep walks every GET route of the console blueprint (a new route without URLs here
fails the test) and the POSTs that answer with a page."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from adapters.cli.backtest_jobs import run_queued
from rules import default_rule_set_document
from tests.api.conftest import CUSTOMER_A, CUSTOMER_B, Api, order
from tests.api.test_console import Console, deferred, reviewers, signed_in  # noqa: F401  (fixture)

pytestmark = pytest.mark.api

# What Python prints for its objects, searched in the page with its entities decoded.
REPRS = {
    "Decimal repr": re.compile(r"Decimal\("),
    "datetime repr": re.compile(r"datetime\.(datetime|date|time|timedelta|timezone)\("),
    "dataclass or named tuple repr": re.compile(r"\b[A-Z][A-Za-z]+\((?:[a-z_]+)="),
    "object repr": re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>"),
    "enum repr": re.compile(r"<[A-Z]\w*\.[A-Z_]+: "),
    "dict repr": re.compile(r"\{'[^']*': "),
    "list or tuple repr": re.compile(r"[\[(]'[^']*', "),
    "set repr": re.compile(r"\b(frozenset|set)\(\{?"),
}
# What Python prints for None, True and False, searched in the visible text only.
WORDS = re.compile(r"\b(None|True|False)\b")


def visible_text(page: str) -> str:
    """The text a reader sees: no tags, no textarea (the rule set's JSON), entities decoded."""
    page = re.sub(r"<textarea[^>]*>.*?</textarea>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def python_leaks(page: str) -> list[str]:
    """Each Python repr (or bare None/True/False) found on the page, with its surroundings."""
    decoded = html.unescape(page)
    found = [
        f"{name}: …{decoded[max(0, m.start() - 60) : m.end() + 60]}…"
        for name, pattern in REPRS.items()
        for m in pattern.finditer(decoded)
    ]
    text = visible_text(page)
    found += [
        f"bare {m.group(0)}: …{text[max(0, m.start() - 60) : m.end() + 60]}…" for m in WORDS.finditer(text)
    ]
    return found


class TestTheDetector:
    """The sweep is only as good as what it recognises: each of these must be caught."""

    @pytest.mark.parametrize(
        "leak",
        [
            "<td><code>ProfileChange(at=datetime.datetime(2026, 11, 27, 8, 0))</code></td>",
            "<td>limit=Decimal(&#39;300000.00&#39;)</td>",
            "<td>{&#39;available&#39;: &#39;1.00&#39;}</td>",
            "<td>[&#39;a&#39;, &#39;b&#39;]</td>",
            "<td>&lt;creditctl.domain.hold.Hold object at 0x7f3a2c&gt;</td>",
            "<td>&lt;Outcome.APPROVE: &#39;approve&#39;&gt;</td>",
            "<td>None</td>",
            "<td class=num>frozenset({&#39;8800000001&#39;})</td>",
            "<p>limit False</p>",
        ],
    )
    def test_it_finds_each_kind_of_python_repr(self, leak: str) -> None:
        assert python_leaks(f"<html><body><table><tr>{leak}</tr></table></body></html>")

    def test_it_leaves_words_and_json_alone(self) -> None:
        page = (
            '<textarea>{"params": {"x": null}, "enabled": true}</textarea><td>—</td><td>No hold.</td>'
            "<td>1,200.00</td><td>2026-11-27 16:00:00 CST</td><td>retired (pinned)</td>"
        )
        assert python_leaks(page) == []


@dataclass
class World:
    """What the sweep has to show: ids of every kind of order, account, rule set and backtest."""

    orders: dict[str, str] = field(default_factory=dict)  # kind -> order id (customer A unless named)
    rule_sets: list[int] = field(default_factory=list)
    backtest: str = ""


def build_world(app: Any, keys: dict[str, str], api: Api, clock: Any) -> World:
    """Accounts with holds, a settled part, deferrals (open, released, rejected, re-checked), a frozen
    account, payments and credit history, rule sets (draft, active, retired and pinned), a backtest
    with changed orders, and the audit events all of that leaves."""
    w = World()
    admin = api.auth("admin")

    def ok(r: Any, status: int = 200) -> Any:
        assert r.status_code == status, r.get_data(as_text=True)
        return r.json

    w.orders["approved"] = ok(api.decide(order("PO-HELD-1", amount="1999.98")), 201)["order_id"]
    w.orders["settled_part"] = ok(api.decide(order("PO-PART-1", amount="3000.00")), 201)["order_id"]
    ok(
        api.client.post(
            f"/v1/decisions/{w.orders['settled_part']}/settle",
            json={"amount": "1000.00", "settlement_id": "DN-1"},
            headers=api.auth("orders"),
        )
    )
    w.orders["settled"] = ok(api.decide(order("PO-DONE-1", amount="10.00")), 201)["order_id"]
    ok(api.act(w.orders["settled"], "settle"))
    w.orders["cancelled_hold"] = ok(api.decide(order("PO-GONE-1", amount="20.00")), 201)["order_id"]
    ok(api.act(w.orders["cancelled_hold"], "release"))
    w.orders["manual_review"] = ok(api.decide(order("PO-BIG-1", amount="600000.00")), 201)["order_id"]
    for kind in ("deferred", "released", "rejected", "rechecked"):
        w.orders[kind] = deferred(api)
        clock.advance(60)
    ok(
        api.client.post(
            f"/v1/accounts/{CUSTOMER_A}/GB20/payments",
            json={
                "payments": [
                    {"invoice_id": "INV-1", "amount": "1000.00", "due_date": "2026-10-10"},
                    {
                        "invoice_id": "INV-2",
                        "amount": "500.00",
                        "due_date": "2026-09-01",
                        "paid_amount": "500.00",
                        "paid_date": "2026-09-03",
                    },
                ]
            },
            headers=api.auth("finance"),
        )
    )
    ok(
        api.client.put(
            f"/v1/accounts/{CUSTOMER_A}/GB20/credit-profile",
            json={"base_limit": "300000.00", "reason": "annual review"},
            headers=admin,
        )
    )
    ok(api.freeze(CUSTOMER_B, "GA10", {"reason": "payment dispute"}))
    w.orders["blocked_frozen"] = ok(api.decide(order("PO-FRZ-1", customer=CUSTOMER_B, group="GA10")), 201)[
        "order_id"
    ]

    lead = signed_in(app, keys, "lead")
    lead.get("/console/reviews")
    for kind, action in (("released", "release"), ("rejected", "reject"), ("rechecked", "recheck")):
        r = lead.post(
            f"/console/reviews/{CUSTOMER_A}/{w.orders[kind]}/{action}", {"reason": f"{kind} in test"}
        )
        assert r.status_code == 302

    draft = ok(api.client.post("/v1/rule-sets", json={"name": "tighter"}, headers=admin), 201)["id"]
    ok(api.client.post(f"/v1/rule-sets/{draft}/publish", json={"reason": "tighter"}, headers=admin))
    ok(
        api.client.put(
            f"/v1/accounts/{CUSTOMER_A}/GA10/rule-set",
            json={"rule_set_id": 1, "reason": "keep v1 here"},
            headers=admin,
        )
    )
    ok(
        api.client.put(
            f"/v1/customers/{CUSTOMER_B}/rule-set",
            json={"rule_set_id": 1, "reason": "B stays on v1"},
            headers=admin,
        )
    )
    open_draft = ok(api.client.post("/v1/rule-sets", json={"name": "still a draft"}, headers=admin), 201)[
        "id"
    ]
    w.rule_sets = [1, draft, open_draft]

    tightened = default_rule_set_document()
    tightened["params"] = {**tightened.get("params", {}), "single_order_review_amount": "15.00"}
    period = {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}
    queued = ok(api.client.post("/v1/backtests", json={"rule_set": tightened, **period}, headers=admin), 202)
    run_queued(app.extensions["creditctl"])  # a worker's round, in-process
    run = ok(api.client.get(f"/v1/backtests/{queued['id']}", headers=admin))
    assert run["status"] == "succeeded" and run["changed"] >= 2, run
    w.backtest = run["id"]
    return w


def urls(w: World) -> dict[str, list[str]]:
    """Every GET route of the console, by endpoint, with the URLs that show it with data."""
    accounts = [(CUSTOMER_A, "GB20"), (CUSTOMER_A, "GA10"), (CUSTOMER_B, "GA10")]
    decisions = [
        f"/console/decisions/{CUSTOMER_B if kind == 'blocked_frozen' else CUSTOMER_A}/{oid}"
        for kind, oid in w.orders.items()
    ]
    return {
        "console.home": ["/console/"],
        "console.sign_in": ["/console/sign-in"],
        "console.accounts": [
            "/console/accounts",
            "/console/accounts?sort=available&desc=1",
            "/console/accounts?q=Beta",
        ],
        "console.account": [f"/console/accounts/{c}/{g}" for c, g in accounts],
        "console.decisions": ["/console/decisions", f"/console/decisions?customer_code={CUSTOMER_A}"],
        "console.decision": decisions,
        "console.reviews": ["/console/reviews", f"/console/reviews?customer_code={CUSTOMER_A}"],
        "console.rule_sets": ["/console/rule-sets"],
        "console.rule_set": [f"/console/rule-sets/{i}" for i in w.rule_sets],
        "console.report_decisions": ["/console/reports/decisions"],
        "console.report_exposure": ["/console/reports/exposure"],
        "console.report_upstream": ["/console/reports/upstream"],
        "console.upstream": ["/console/upstream"],
        "console.backtest_run": [
            f"/console/backtests/{w.backtest}",
            f"/console/backtests/{w.backtest}?format=csv",
        ],
        "console.audit": [
            "/console/audit",
            "/console/audit?type=deferral.released",
            "/console/audit?order=oldest",
        ],
        "console.not_found": ["/console/no-such-page", "/console/rule-sets/not-a-number"],
        "console.audit_export": ["/console/audit/export?format=csv", "/console/audit/export?format=jsonl"],
    }


def pages_posted(w: World) -> Iterator[tuple[str, dict[str, str]]]:
    """The POSTs that answer with a page (not a redirect)."""
    yield (
        "/console/rule-sets/1/simulate",
        {"customer_code": CUSTOMER_A, "sale_group_code": "GB20", "amount": "10.00"},
    )
    yield "/console/audit/verify", {}
    yield f"/console/rule-sets/{w.rule_sets[2]}", {"action": "save", "document": '{"name": "x", "rules": 5}'}


@pytest.fixture
def world(app: Any, reviewers: dict[str, str], api: Api, clock: Any) -> World:  # noqa: F811
    return build_world(app, reviewers, api, clock)


class TestEveryPage:
    def test_every_console_page_renders_without_a_python_repr(
        self,
        app: Any,
        reviewers: dict[str, str],  # noqa: F811
        world: World,
    ) -> None:
        listed = urls(world)
        routes = {
            r.endpoint
            for r in app.url_map.iter_rules()
            if r.endpoint.startswith("console.") and "GET" in r.methods and r.endpoint != "console.static"
        }
        assert routes <= set(listed), (
            f"console routes the sweep does not visit: {sorted(routes - set(listed))}"
        )
        c = signed_in(app, reviewers, "lead")
        leaks: dict[str, list[str]] = {}
        shown = 0
        for endpoint, path in ((e, p) for e, paths in listed.items() for p in paths):
            r = c.get(path, follow_redirects=True)
            expected = 404 if endpoint == "console.not_found" else 200
            assert r.status_code == expected, (path, r.status_code, r.get_data(as_text=True)[:500])
            assert r.headers["X-Frame-Options"] == "DENY" and r.headers["Cache-Control"] == "no-store", path
            if r.mimetype == "text/html":
                shown += 1
                if found := python_leaks(r.get_data(as_text=True)):
                    leaks[path] = found
        for path, form in pages_posted(world):
            c.get("/console/accounts")
            r = c.post(path, form)
            assert r.status_code in (200, 422), (path, r.status_code)
            if found := python_leaks(r.get_data(as_text=True)):
                leaks[f"POST {path}"] = found
        assert not leaks, "\n".join(f"{p}:\n  " + "\n  ".join(f) for p, f in leaks.items())
        assert shown >= 25

    def test_the_sweep_sees_the_data_it_was_given(
        self,
        app: Any,
        reviewers: dict[str, str],  # noqa: F811
        world: World,
    ) -> None:
        """Not a sweep of empty pages: the account shows its settled part and credit history, the
        orders their reviews and holds, the rule sets their pins, the backtest its changed orders, the
        audit trail the releases."""
        c = signed_in(app, reviewers, "lead")
        account = c.get(f"/console/accounts/{CUSTOMER_A}/GB20").get_data(as_text=True)
        assert world.orders["settled_part"] in account and "annual review" in account and "INV-1" in account
        assert world.orders["manual_review"] in account
        audit = c.get("/console/audit?type=deferral.released").get_data(as_text=True)
        assert world.orders["released"] in audit
        released = c.get(f"/console/decisions/{CUSTOMER_A}/{world.orders['released']}").get_data(as_text=True)
        assert 'data-action="release"' in released and 'id="hold-status">open' in released
        rechecked = c.get(f"/console/decisions/{CUSTOMER_A}/{world.orders['rechecked']}").get_data(
            as_text=True
        )
        assert 'data-action="recheck"' in rechecked
        assert 'id="still-deciding"' in c.get("/console/rule-sets/1").get_data(as_text=True)
        backtest = c.get(f"/console/backtests/{world.backtest}").get_data(as_text=True)
        assert world.orders["approved"] in backtest
        queue = c.get("/console/reviews").get_data(as_text=True)
        assert world.orders["deferred"] in queue and 'class="num available"' in queue
