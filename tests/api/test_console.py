"""The operator console through Flask's test client: sign-in, the session cookie, CSRF, what each role
and customer limit may see and do, and every page rendering with data."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.api.conftest import CUSTOMER_A, CUSTOMER_B, Api, order

pytestmark = pytest.mark.api
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


class Console:
    """A browser-like client: signs in with a key, posts forms with the page's CSRF token."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.token = ""

    def get(self, path: str, **kw: Any) -> Any:
        r = self.client.get(path, **kw)
        found = TOKEN.search(r.get_data(as_text=True))
        if found:
            self.token = found.group(1)
        return r

    def post(self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True, **kw: Any) -> Any:
        body = dict(data or {})
        if csrf:
            body["csrf_token"] = self.token
        return self.client.post(path, data=body, **kw)

    def sign_in(self, secret: str) -> Any:
        self.get("/console/sign-in")
        return self.post("/console/sign-in", {"api_key": secret})


@pytest.fixture
def console(app: Any, keys: dict[str, str]) -> Console:
    return Console(app.test_client())


def signed_in(app: Any, keys: dict[str, str], who: str) -> Console:
    c = Console(app.test_client())
    r = c.sign_in(keys[who])
    assert r.status_code == 302, r.get_data(as_text=True)
    return c


class TestSignIn:
    def test_a_valid_key_signs_in_and_the_cookie_holds_no_key(
        self, console: Console, keys: dict[str, str]
    ) -> None:
        r = console.sign_in(keys["admin"])
        assert r.status_code == 302 and r.headers["Location"].endswith("/console/accounts")
        cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert keys["admin"] not in cookie
        assert console.get("/console/accounts").status_code == 200

    def test_an_unknown_key_is_refused_with_the_reason(self, console: Console) -> None:
        r = console.sign_in("cck_not-a-key")
        assert r.status_code == 401
        assert "the API key is not valid" in r.get_data(as_text=True)
        assert console.get("/console/accounts").status_code == 302

    def test_pages_redirect_to_sign_in_without_a_session(self, console: Console) -> None:
        r = console.get("/console/accounts?q=Alpha")
        assert r.status_code == 302
        assert "/console/sign-in?next=" in r.headers["Location"]

    def test_every_console_route_needs_a_session(self, app: Any, console: Console) -> None:
        console.get("/console/sign-in")
        rules = [r for r in app.url_map.iter_rules() if r.rule.startswith("/console/")]
        assert len(rules) >= 15
        for rule in rules:
            url = rule.rule
            for name in rule.arguments:
                url = re.sub(rf"<(\w+:)?{name}>", "1", url)
            if rule.endpoint in ("console.sign_in", "console.static"):
                continue
            if "GET" in rule.methods:
                r = console.get(url)
                assert r.status_code == 302 and "/console/sign-in" in r.headers["Location"], url
            if "POST" in rule.methods:
                r = console.post(url)  # with this (signed-out) session's own CSRF token
                assert r.status_code == 302 and "/console/sign-in" in r.headers["Location"], url

    def test_sign_in_never_redirects_off_the_console(self, console: Console, keys: dict[str, str]) -> None:
        console.get("/console/sign-in")
        r = console.post("/console/sign-in?next=//evil.example/x", {"api_key": keys["admin"]})
        assert r.headers["Location"].endswith("/console/accounts")

    def test_sign_out_ends_the_session(self, app: Any, keys: dict[str, str]) -> None:
        c = signed_in(app, keys, "admin")
        c.get("/console/accounts")
        assert c.post("/console/sign-out").status_code == 302
        assert c.get("/console/accounts").status_code == 302

    def test_a_session_ends_after_its_hours(self, app: Any, keys: dict[str, str]) -> None:
        c = signed_in(app, keys, "admin")
        with c.client.session_transaction("/console/") as s:
            s["issued"] = s["issued"] - 8 * 3600 - 1
        assert c.get("/console/accounts").status_code == 302

    def test_a_revoked_key_ends_its_sessions(self, app: Any, keys: dict[str, str], context: Any) -> None:
        from creditctl.services.api_keys import revoke_api_key

        c = signed_in(app, keys, "auditor")
        with c.client.session_transaction("/console/") as s:
            key_id = s["key_id"]
        revoke_api_key(key_id, uow=context.uow(), clock=context.clock)
        app.extensions["creditctl.keys"]._items.clear()  # the per-process cache lasts 10 s
        assert c.get("/console/accounts").status_code == 302

    def test_the_session_cookie_does_not_authenticate_the_api(self, app: Any, keys: dict[str, str]) -> None:
        c = signed_in(app, keys, "admin")
        assert c.client.get(f"/v1/accounts/{CUSTOMER_A}/GB20").status_code == 401


class TestCsrf:
    def test_a_form_without_the_token_is_refused_and_changes_nothing(
        self, app: Any, keys: dict[str, str], api: Api
    ) -> None:
        c = signed_in(app, keys, "admin")
        r = c.post(f"/console/accounts/{CUSTOMER_A}/GB20/freeze", {"reason": "x"}, csrf=False)
        assert r.status_code == 400
        assert "CSRF" in r.get_data(as_text=True)
        assert api.account(CUSTOMER_A, "GB20").json["status"] == "active"

    def test_a_token_of_another_session_is_refused(self, app: Any, keys: dict[str, str], api: Api) -> None:
        mine, theirs = signed_in(app, keys, "admin"), signed_in(app, keys, "admin")
        mine.get("/console/accounts")
        theirs.get("/console/accounts")
        theirs.token = mine.token
        r = theirs.post(f"/console/accounts/{CUSTOMER_A}/GB20/freeze", {"reason": "x"})
        assert r.status_code == 400
        assert api.account(CUSTOMER_A, "GB20").json["status"] == "active"

    def test_sign_in_itself_needs_the_token(self, console: Console, keys: dict[str, str]) -> None:
        r = console.post("/console/sign-in", {"api_key": keys["admin"]}, csrf=False)
        assert r.status_code == 400


class TestFreeze:
    def test_an_admin_freezes_and_unfreezes_and_sees_the_status(
        self, app: Any, keys: dict[str, str], api: Api
    ) -> None:
        c = signed_in(app, keys, "admin")
        page = f"/console/accounts/{CUSTOMER_A}/GB20"
        c.get(page)
        r = c.post(f"{page}/freeze", {"reason": "payment dispute"}, follow_redirects=True)
        text = r.get_data(as_text=True)
        assert 'id="account-status">frozen<' in text and "payment dispute" in text
        assert api.account(CUSTOMER_A, "GB20").json["status"] == "frozen"
        c.get(page)
        r = c.post(f"{page}/unfreeze", {"reason": "resolved"}, follow_redirects=True)
        assert 'id="account-status">active<' in r.get_data(as_text=True)

    def test_a_freeze_without_reason_says_so(self, app: Any, keys: dict[str, str]) -> None:
        c = signed_in(app, keys, "admin")
        c.get(f"/console/accounts/{CUSTOMER_A}/GB20")
        r = c.post(f"/console/accounts/{CUSTOMER_A}/GB20/freeze", {"reason": " "}, follow_redirects=True)
        assert "a reason is required" in r.get_data(as_text=True)

    @pytest.mark.parametrize("who", ["orders", "auditor"])
    def test_other_roles_see_no_form_and_are_refused(
        self, app: Any, keys: dict[str, str], api: Api, who: str
    ) -> None:
        c = signed_in(app, keys, who)
        assert 'id="freeze"' not in c.get(f"/console/accounts/{CUSTOMER_A}/GB20").get_data(as_text=True)
        r = c.post(f"/console/accounts/{CUSTOMER_A}/GB20/freeze", {"reason": "x"})
        assert r.status_code == 403
        assert api.account(CUSTOMER_A, "GB20").json["status"] == "active"


class TestCustomerLimits:
    def test_a_limited_key_lists_only_its_customers(self, app: Any, keys: dict[str, str]) -> None:
        text = signed_in(app, keys, "orders_a").get("/console/accounts").get_data(as_text=True)
        assert CUSTOMER_A in text and CUSTOMER_B not in text

    def test_another_customers_account_and_decisions_are_not_found(
        self, app: Any, keys: dict[str, str], api: Api
    ) -> None:
        api.decide(order("PO-B-1", customer=CUSTOMER_B, group="GA10"))
        c = signed_in(app, keys, "orders_a")
        assert c.get(f"/console/accounts/{CUSTOMER_B}/GA10").status_code == 404
        assert c.get(f"/console/decisions/{CUSTOMER_B}/PO-B-1").status_code == 404
        assert "PO-B-1" not in c.get("/console/decisions").get_data(as_text=True)

    def test_every_console_route_on_another_customer_is_not_found(
        self, app: Any, keys: dict[str, str], api: Api, context: Any
    ) -> None:
        from creditctl.services.api_keys import create_api_key

        api.decide(order("PO-B-2", customer=CUSTOMER_B, group="GA10"))
        admin_a = create_api_key(
            name="admin-a", role="admin", customers=[CUSTOMER_A], uow=context.uow(), clock=context.clock
        ).secret
        c = signed_in(app, {"admin_a": admin_a}, "admin_a")
        c.get("/console/accounts")
        values = {"customer_code": CUSTOMER_B, "sale_group_code": "GA10", "order_id": "PO-B-2"}
        swept = 0
        for rule in app.url_map.iter_rules():
            if not rule.rule.startswith("/console/") or "customer_code" not in rule.arguments:
                continue
            url = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], rule.rule)
            for method in rule.methods & {"GET", "POST"}:
                r = c.get(url) if method == "GET" else c.post(url, {"reason": "sweep"})
                assert r.status_code == 404, (method, url, r.status_code)
                shown = r.get_data(as_text=True)  # the id asked for is echoed; nothing of B's is shown
                assert "Beta Co" not in shown and "5,000.00" not in shown
                swept += 1
        assert swept >= 4
        assert api.account(CUSTOMER_B, "GA10").json["status"] == "active"

    def test_the_menu_shows_what_the_role_may_use(self, app: Any, keys: dict[str, str]) -> None:
        orders = signed_in(app, keys, "orders").get("/console/accounts").get_data(as_text=True)
        assert 'href="/console/rule-sets"' not in orders and 'href="/console/reports/exposure"' not in orders
        assert signed_in(app, keys, "orders").get("/console/reports/decisions").status_code == 403
        auditor = signed_in(app, keys, "auditor").get("/console/accounts").get_data(as_text=True)
        assert 'href="/console/rule-sets"' in auditor and 'href="/console/reports/exposure"' in auditor


class TestPages:
    def test_accounts_search_and_sort(self, app: Any, keys: dict[str, str]) -> None:
        c = signed_in(app, keys, "auditor")
        text = c.get("/console/accounts?q=Beta").get_data(as_text=True)
        assert CUSTOMER_B in text and CUSTOMER_A not in text
        text = c.get("/console/accounts?sort=balance&desc=1").get_data(as_text=True)
        assert text.index("100,000.00") < text.index("5,000.00") < text.index("1,000.00")

    def test_account_page_shows_figures_holds_and_decisions(
        self, app: Any, keys: dict[str, str], api: Api
    ) -> None:
        assert api.decide(order("PO-CON-1", amount="1999.98")).status_code == 201
        text = (
            signed_in(app, keys, "auditor").get(f"/console/accounts/{CUSTOMER_A}/GB20").get_data(as_text=True)
        )
        for shown in ("100,000.00", "1,999.98", "PO-CON-1", "Credit profile", "Payment records"):
            assert shown in text

    def test_decision_search_and_the_rule_trace(self, app: Any, keys: dict[str, str], api: Api) -> None:
        api.decide(order("PO-CON-2", amount="600000.00"))
        api.decide(order("PO-OTHER-1"))
        c = signed_in(app, keys, "auditor")
        text = c.get("/console/decisions?order_id=PO-CON").get_data(as_text=True)
        assert "PO-CON-2" in text and "PO-OTHER-1" not in text
        text = c.get(f"/console/decisions/{CUSTOMER_A}/PO-CON-2").get_data(as_text=True)
        assert 'id="trace"' in text and 'class="matched"' in text
        assert "order.amount" in text

    def test_rule_set_editor_shows_problems_at_their_pointer(self, app: Any, keys: dict[str, str]) -> None:
        c = signed_in(app, keys, "admin")
        c.get("/console/rule-sets")
        r = c.post("/console/rule-sets/new", {"name": "console draft"})
        assert r.status_code == 302
        draft = r.headers["Location"]
        text = c.get(draft).get_data(as_text=True)
        assert 'id="valid"' in text
        r = c.post(
            draft, {"action": "save", "name": "console draft", "document": '{"name": "x", "rules": 5}'}
        )
        text = r.get_data(as_text=True)
        assert 'id="problems"' in text and "<code>/rules</code> (line 3)" in text
        r = c.post(draft, {"action": "save", "document": "{not json"})
        assert "Not JSON" in r.get_data(as_text=True)

    def test_rule_set_simulate_publish_and_roll_back(self, app: Any, keys: dict[str, str]) -> None:
        c = signed_in(app, keys, "admin")
        c.get("/console/rule-sets")
        draft = c.post("/console/rule-sets/new", {"name": "v2"}).headers["Location"]
        c.get(draft)
        body = {"customer_code": CUSTOMER_A, "sale_group_code": "GB20", "amount": "10.00"}
        text = c.post(f"{draft}/simulate", body).get_data(as_text=True)
        assert 'id="simulation"' in text and "approve" in text
        r = c.post(f"{draft}/publish", {"reason": "console test"}, follow_redirects=True)
        assert "Published." in r.get_data(as_text=True)
        c.get("/console/rule-sets/1")
        r = c.post("/console/rule-sets/1/rollback", {"reason": "back"}, follow_redirects=True)
        assert "is a copy of this one and now in effect" in r.get_data(as_text=True)

    def test_rule_set_changes_need_a_global_admin(self, app: Any, keys: dict[str, str]) -> None:
        c = signed_in(app, keys, "auditor")
        c.get("/console/rule-sets")
        assert c.post("/console/rule-sets/new", {"name": "x"}).status_code == 403

    @pytest.mark.parametrize("report", ["decisions", "exposure", "upstream"])
    def test_report_pages_chart_and_link_the_same_figures(
        self, app: Any, keys: dict[str, str], api: Api, report: str
    ) -> None:
        api.decide(order(amount="10.00"))
        api.decide(order(amount="600000.00"))
        c = signed_in(app, keys, "auditor")
        text = c.get(f"/console/reports/{report}").get_data(as_text=True)
        assert "<svg" in text and f"GET /v1/reports/{report}" in text
        mine = c.get(f"/console/reports/{report}?format=json").get_json()
        theirs = api.client.get(f"/v1/reports/{report}", headers=api.auth("auditor")).get_json()
        for volatile in ("as_of", "from", "to"):
            mine.pop(volatile, None), theirs.pop(volatile, None)
        assert mine == theirs
        csv = c.get(f"/console/reports/{report}?format=csv")
        assert csv.mimetype == "text/csv" and csv.get_data(as_text=True).count("\n") >= 2
        if report == "decisions":
            assert re.search(r'<rect [^>]*fill="#2e7d32"', text), "an approve bar"
        if report == "exposure":
            assert "10.00" in text

    def test_upstream_status(self, app: Any, keys: dict[str, str]) -> None:
        text = signed_in(app, keys, "admin").get("/console/upstream").get_data(as_text=True)
        assert "Balances from" in text and "fake" in text

    def test_bad_report_parameters_show_an_error_page(self, app: Any, keys: dict[str, str]) -> None:
        r = signed_in(app, keys, "admin").get("/console/reports/decisions?tz=Mars/Base")
        assert r.status_code == 422 and "<html" in r.get_data(as_text=True)

    def test_the_stylesheet_is_served_by_the_app(self, client: FlaskClient) -> None:
        with client.get("/console/static/console.css") as r:
            assert r.status_code == 200 and r.mimetype == "text/css"
            assert b"font" in r.get_data()
