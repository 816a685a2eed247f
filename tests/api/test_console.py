"""The operator console through Flask's test client: sign-in, the session cookie, CSRF, what each role
and customer limit may see and do, and every page rendering with data."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask.testing import FlaskClient

from creditctl.services.context import AppContext
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


def api_events(app: Any, keys: dict[str, str], **query: str) -> list[dict[str, Any]]:
    """Audit events as GET /v1/audit/events answers them to the auditor key."""
    r = app.test_client().get("/v1/audit/events", query_string=query, headers={"X-API-Key": keys["auditor"]})
    assert r.status_code == 200, r.get_data(as_text=True)
    return list(r.json["events"])


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
                url = re.sub(rf"<(\w+(\([^)]*\))?:)?{name}>", "1", url)  # <int(max=...):id> too
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

    @pytest.mark.parametrize(
        "target", ["/console/accounts%0d%0aX-Injected:1", "/console/\\evil", "/console/a b"]
    )
    def test_a_next_with_a_control_character_or_backslash_goes_to_the_accounts(
        self, console: Console, keys: dict[str, str], target: str
    ) -> None:
        console.get("/console/sign-in")
        r = console.post(f"/console/sign-in?next={target}", {"api_key": keys["admin"]})
        assert r.status_code == 302 and r.headers["Location"].endswith("/console/accounts")
        assert "X-Injected" not in r.headers

    def test_sign_in_comes_back_to_a_page_whose_order_id_holds_a_space_and_a_slash(
        self, console: Console, keys: dict[str, str]
    ) -> None:
        r = console.get(f"/console/decisions/{CUSTOMER_A}/PO%201%2F2026?x=a%20b")
        assert r.status_code == 302
        next_page = r.headers["Location"].split("next=", 1)[1]
        console.get("/console/sign-in")
        r = console.post(f"/console/sign-in?next={next_page}", {"api_key": keys["admin"]})
        assert r.headers["Location"].endswith(f"/console/decisions/{CUSTOMER_A}/PO%201/2026?x=a%20b")

    def test_signing_out_of_a_session_that_already_ended_goes_to_the_sign_in(
        self, app: Any, keys: dict[str, str], clock: Any
    ) -> None:
        c = signed_in(app, keys, "admin")
        c.get("/console/accounts")
        clock.advance(8 * 3600 + 1)  # ended on the server meanwhile
        c.get("/console/accounts")  # the session is cleared, its CSRF token with it
        r = c.post("/console/sign-out")
        assert r.status_code == 302 and "/console/sign-in" in r.headers["Location"]

    def test_an_unexpected_error_is_a_console_page_with_the_request_id(
        self, app: Any, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from adapters.web.console import accounts

        c = signed_in(app, keys, "admin")

        def database_away(**_: Any) -> Any:
            raise ConnectionError("the database went away")

        monkeypatch.setattr(accounts, "list_accounts", database_away)
        r = c.get("/console/accounts", headers={"X-Request-ID": "req-console-1"})
        assert r.status_code == 500 and r.mimetype == "text/html"
        text = r.get_data(as_text=True)
        assert "Internal server error" in text and "req-console-1" in text and "went away" not in text

    def test_sign_out_ends_the_session(self, app: Any, keys: dict[str, str]) -> None:
        c = signed_in(app, keys, "admin")
        c.get("/console/accounts")
        assert c.post("/console/sign-out").status_code == 302
        assert c.get("/console/accounts").status_code == 302

    def test_sign_out_ends_every_copy_of_the_cookie(self, app: Any, keys: dict[str, str], api: Api) -> None:
        c = signed_in(app, keys, "admin")
        c.get(f"/console/accounts/{CUSTOMER_A}/GB20")
        copy = Console(app.test_client())
        cookie = c.client.get_cookie("creditctl_console", path="/console/")
        assert cookie is not None
        copy.client.set_cookie("creditctl_console", cookie.value, path="/console/")
        copy.token = c.token
        assert copy.get(f"/console/accounts/{CUSTOMER_A}/GB20").status_code == 200  # the copy works ...

        assert c.post("/console/sign-out").status_code == 302

        assert copy.get("/console/accounts").status_code == 302  # ... until the original signs out
        r = copy.post(f"/console/accounts/{CUSTOMER_A}/GB20/freeze", {"reason": "replayed"})
        assert r.status_code in (302, 400) and "/sign-in" in r.headers.get("Location", "/sign-in")
        assert (
            api.client.get(f"/v1/accounts/{CUSTOMER_A}/GB20", headers=api.auth("admin")).json["status"]
            == "active"
        )

    def test_a_session_ends_after_its_hours_by_the_servers_clock(
        self, app: Any, keys: dict[str, str], clock: Any
    ) -> None:
        c = signed_in(app, keys, "admin")
        assert c.get("/console/accounts").status_code == 200
        clock.advance(8 * 3600 + 1)  # the database's clock, as the tests' contexts wire it
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


class TestHeaders:
    def test_console_pages_refuse_frames_and_signed_in_pages_are_not_stored(
        self, app: Any, keys: dict[str, str]
    ) -> None:
        c = Console(app.test_client())
        for r in (c.get("/console/sign-in"), c.get("/console/accounts"), c.get("/console/no-such-page")):
            assert r.headers["X-Frame-Options"] == "DENY"
            assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        c = signed_in(app, keys, "admin")
        for path in ("/console/accounts", f"/console/accounts/{CUSTOMER_A}/GB20", "/console/no-such-page"):
            r = c.get(path)
            assert r.headers["Cache-Control"] == "no-store", path
            assert r.headers["X-Frame-Options"] == "DENY", path
            policy = r.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in policy and "script-src 'none'" in policy, path
        c.get(f"/console/accounts/{CUSTOMER_A}/GB20")
        posted = c.post(f"/console/accounts/{CUSTOMER_A}/GB20/freeze", {"reason": "x"})
        assert posted.headers["X-Frame-Options"] == "DENY" and posted.headers["Cache-Control"] == "no-store"
        with c.client.get("/console/static/console.css") as css:
            assert "no-store" not in css.headers.get("Cache-Control", "")  # the stylesheet may be cached
            assert css.headers["X-Frame-Options"] == "DENY"
        api = app.test_client().get("/healthz")
        assert "X-Frame-Options" not in api.headers  # the console's policy, not the API's

    @staticmethod
    def cookie_of(app: Any, keys: dict[str, str], **kw: Any) -> str:
        c = Console(app.test_client())
        c.get("/console/sign-in", **kw)
        r = c.post("/console/sign-in", {"api_key": keys["admin"]}, **kw)
        assert r.status_code == 302, r.get_data(as_text=True)
        return str(r.headers["Set-Cookie"])

    def test_the_session_cookie_is_secure_over_https_and_not_over_plain_http(
        self, app: Any, keys: dict[str, str]
    ) -> None:
        assert "; Secure" not in self.cookie_of(app, keys)
        assert "; Secure" in self.cookie_of(app, keys, base_url="https://console.example")
        spoofed = self.cookie_of(app, keys, headers={"X-Forwarded-Proto": "https"})
        assert "; Secure" not in spoofed  # no proxy is trusted: anyone could send that header

    def test_behind_a_trusted_proxy_its_forwarded_scheme_makes_the_cookie_secure(
        self, context: Any, keys: dict[str, str]
    ) -> None:
        from adapters.web.app import create_app

        app = create_app(context, {"TESTING": True, "CREDITCTL_TRUSTED_PROXIES": 1})
        forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
        assert "; Secure" in self.cookie_of(app, keys, headers=forwarded)
        assert "; Secure" not in self.cookie_of(app, keys, headers={"X-Forwarded-Proto": "http"})

    def test_the_setting_makes_the_cookie_secure_always(self, context: Any, keys: dict[str, str]) -> None:
        from adapters.web.app import create_app

        app = create_app(context, {"TESTING": True, "SESSION_COOKIE_SECURE": True})
        assert "; Secure" in self.cookie_of(app, keys)

    @pytest.mark.parametrize("value", ["-1", "two", "6", "1.5"])
    def test_a_trusted_proxy_count_out_of_bounds_is_refused_at_start(self, value: str) -> None:
        from adapters.bootstrap import load_settings

        with pytest.raises(SystemExit, match="CREDITCTL_TRUSTED_PROXIES must be a whole number from 0 to 5"):
            load_settings({"CREDITCTL_TRUSTED_PROXIES": value})
        assert load_settings({"CREDITCTL_TRUSTED_PROXIES": "2"}).trusted_proxies == 2
        assert load_settings({}).trusted_proxies == 0


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
        assert '<small class="muted">payer Beta Co</small>' in text  # the customer has no name of its own
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

    def test_the_credit_history_is_a_table_of_each_change_and_its_inputs(
        self, app: Any, keys: dict[str, str], api: Api
    ) -> None:
        r = api.client.put(
            f"/v1/accounts/{CUSTOMER_A}/GB20/credit-profile",
            json={"base_limit": "300000.00", "reason": "annual review"},
            headers=api.auth("admin"),
        )
        assert r.status_code == 200, r.json
        text = (
            signed_in(app, keys, "auditor").get(f"/console/accounts/{CUSTOMER_A}/GB20").get_data(as_text=True)
        )
        table = text.split('id="credit-changes"')[1].split("<tbody>")[1].split("</table>")[0]
        rows = re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)
        cells = [
            " ".join(re.sub(r"<[^>]+>", " ", c).split())
            for c in re.findall(r"<td[^>]*>(.*?)</td>", rows[0], re.S)
        ]
        assert cells[:6] == [
            "2026-11-27 16:00:00 CST",
            "base_limit",
            "test-admin",
            "annual review",
            "A",
            "300,000.00",
        ]
        assert (
            "base 300,000.00 (account) \N{MULTIPLICATION SIGN} 1.00" in cells[6] and "on time 1" in cells[6]
        )
        assert "ProfileChange(" not in text and "Decimal(" not in text

    def test_expiring_holds_show_money_as_decimal_strings(
        self, app: Any, keys: dict[str, str], api: Api
    ) -> None:
        assert api.decide(order("PO-EXP-1", amount="10.00")).status_code == 201
        text = (
            signed_in(app, keys, "auditor")
            .get("/console/reports/exposure?within_hours=200")
            .get_data(as_text=True)
        )
        row = text.split("PO-EXP-1")[1].split("</tr>")[0]
        assert '<td class="num">10.00</td>' in row  # it was (1000 / 100)|round(2): the float 10.0

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
        for bad in ("NaN", "sNaN", "Infinity", "1e3", "10.001", ""):
            r = c.post(f"{draft}/simulate", body | {"amount": bad})
            assert r.status_code == 422 and "amount" in r.get_data(as_text=True), bad
        r = c.post(f"{draft}/publish", {"reason": "console test"}, follow_redirects=True)
        assert "Published." in r.get_data(as_text=True)
        c.get("/console/rule-sets/1")
        r = c.post("/console/rule-sets/1/rollback", {"reason": "back"}, follow_redirects=True)
        assert "is a copy of this one and now in effect" in r.get_data(as_text=True)
        events = api_events(app, keys, type="rule_set.published") + api_events(
            app, keys, type="rule_set.rolled_back"
        )
        assert [e["actor"]["name"] for e in events] == ["test-admin", "test-admin"]  # the key, not the system

    def test_a_retired_version_still_pinned_says_where_it_decides(
        self, app: Any, reviewers: dict[str, str], api: Api
    ) -> None:
        admin = api.auth("admin")
        draft = api.client.post("/v1/rule-sets", json={"name": "tighter"}, headers=admin).json["id"]
        assert (
            api.client.post(f"/v1/rule-sets/{draft}/publish", json={"reason": "x"}, headers=admin).status_code
            == 200
        )
        pin = {"rule_set_id": 1, "reason": "keeps v1"}
        assert (
            api.client.put(f"/v1/accounts/{CUSTOMER_A}/GA10/rule-set", json=pin, headers=admin).status_code
            == 200
        )
        assert (
            api.client.put(f"/v1/customers/{CUSTOMER_B}/rule-set", json=pin, headers=admin).status_code == 200
        )
        c = signed_in(app, reviewers, "auditor")
        listing = c.get("/console/rule-sets").get_data(as_text=True)
        first = listing.split('<td class="rs-status">')[1].split("</td>")[0]
        assert first.startswith("retired, still deciding")
        assert (
            f">{CUSTOMER_A}/GA10</a>" in first
            and f'customer <a href="/console/accounts?q={CUSTOMER_B}">' in first
        )
        text = c.get("/console/rule-sets/1").get_data(as_text=True)
        assert 'id="still-deciding"' in text and "<strong>still decides</strong>" in text
        pins = text.split('id="pins"')[1].split("</table>")[0]
        assert (
            f"{CUSTOMER_A}/GA10" in pins
            and "keeps v1" in pins
            and "test-admin" in pins
            and CUSTOMER_B in pins
        )
        assert "global default" in c.get(f"/console/rule-sets/{draft}").get_data(as_text=True)
        limited = signed_in(app, reviewers, "auditor_a").get("/console/rule-sets/1").get_data(as_text=True)
        assert (
            f"{CUSTOMER_A}/GA10" in limited and CUSTOMER_B not in limited
        )  # another customer's pin is theirs

    def test_a_backtest_lists_its_changed_orders_in_pages_with_their_csv(
        self,
        app: Any,
        reviewers: dict[str, str],
        api: Api,
        clock: Any,
        monkeypatch: pytest.MonkeyPatch,
        context: AppContext,
    ) -> None:
        from adapters.cli.backtest_jobs import run_queued
        from adapters.web.console import backtests
        from rules import default_rule_set_document

        ids = []
        for amount in ("10.00", "2000.00", "3000.00", "4000.00"):
            ids.append(api.decide(order(amount=amount)).json["order_id"])
            clock.advance(1)  # replayed in the order decided
        document = default_rule_set_document()
        document["params"] = {**document.get("params", {}), "single_order_review_amount": "1000.00"}
        draft = api.client.post(
            "/v1/rule-sets", json={"name": "tighter", "document": document}, headers=api.auth("admin")
        )
        monkeypatch.setattr(backtests, "PER_PAGE", 2)
        c = signed_in(app, reviewers, "admin")
        c.get(f"/console/rule-sets/{draft.json['id']}")
        r = c.post(
            f"/console/rule-sets/{draft.json['id']}/backtest", {"from": "2026-11-01", "to": "2026-12-01"}
        )
        assert r.status_code == 302 and "/console/backtests/" in r.headers["Location"]
        run_id = r.headers["Location"].rsplit("/", 1)[1]
        queued = c.get(r.headers["Location"]).get_data(as_text=True)
        assert "Backtest of &#39;tighter&#39; queued" in queued
        assert 'id="status" class="status queued">queued<' in queued and "waiting for a worker" in queued
        assert '<meta http-equiv="refresh" content="2">' in queued and 'id="changed-orders"' not in queued
        assert c.get(r.headers["Location"] + "?format=csv").status_code == 409  # not ended: no export yet
        assert [run.id for run in run_queued(context)] == [run_id]  # a worker's round, in-process
        text = c.get(r.headers["Location"]).get_data(as_text=True)
        assert 'id="status" class="status succeeded">succeeded<' in text and "http-equiv" not in text
        assert 'id="changed-count">3<' in text and "<pre" not in text
        summary = text.split('id="summary"')[1].split("</table>")[0]
        assert re.search(r"defer</span></td><td class=\"num\">0</td><td class=\"num\">3</td>", summary)
        assert '<td class="num">9,010.00</td><td class="num">10.00</td>' in summary
        first = re.findall(r'<tr data-order="([^"]+)">', text)
        assert first == ids[1:3] and "MANUAL_REVIEW" in text
        next_page = re.search(r'id="next" href="([^"]+)"', text)
        assert next_page
        rest = c.get(next_page.group(1).replace("&amp;", "&")).get_data(as_text=True)
        assert re.findall(r'<tr data-order="([^"]+)">', rest) == ids[3:] and 'id="next"' not in rest
        csv_link = re.search(r'id="changes-csv" href="([^"]+)"', text)
        assert csv_link
        mine = c.get(csv_link.group(1).replace("&amp;", "&"))
        theirs = api.client.get(f"/v1/backtests/{run_id}/changes?format=csv", headers=api.auth("auditor"))
        assert mine.mimetype == "text/csv" and mine.get_data() == theirs.get_data()
        assert mine.get_data(as_text=True).count("\n") == 4
        assert signed_in(app, reviewers, "auditor").get(f"/console/backtests/{run_id}").status_code == 200
        assert signed_in(app, reviewers, "auditor_a").get(f"/console/backtests/{run_id}").status_code == 403
        assert c.get("/console/backtests/no-such-run").status_code == 404

    def test_a_running_backtest_shows_its_progress_and_refreshes_until_it_ends(
        self, app: Any, reviewers: dict[str, str], api: Api, context: AppContext
    ) -> None:
        from datetime import timedelta

        for amount in ("10.00", "2000.00", "3000.00", "4000.00"):
            api.decide(order(amount=amount))
        c = signed_in(app, reviewers, "admin")
        c.get("/console/rule-sets/1")
        r = c.post("/console/rule-sets/1/backtest", {"from": "2000-01-01", "to": "2100-01-01"})
        page_url = r.headers["Location"]
        store = context.backtests
        assert store is not None
        now = store.now()
        run = store.claim("a-worker", now, now + timedelta(seconds=60))  # a worker halfway through it
        assert run is not None and page_url.endswith(run.id)
        run.total, run.decisions, run.changed = 4, 2, 1
        run.before.counts["approve"] = run.after.counts["approve"] = 2
        assert store.progress(run)

        text = signed_in(app, reviewers, "auditor").get(page_url).get_data(as_text=True)

        assert 'id="status" class="status running">running<' in text
        assert (
            '<strong id="replayed">2</strong> of <span id="total">4</span> decisions replayed (50 %)' in text
        )
        assert '<progress max="4" value="2">50 %</progress>' in text
        assert '<meta http-equiv="refresh" content="2">' in text and "<caption>So far</caption>" in text
        assert 'id="changed-orders"' not in text  # listed once it has ended

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
        assert "Data-As-Of" in csv.headers  # how fresh the figures are, on the page and in the files
        assert ("As of" if report == "exposure" else "Data as of") in text
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

    @pytest.mark.parametrize(
        "path", ["/console/no-such-page", "/console/rule-sets/not-a-number", "/console/accounts/8800000001"]
    )
    def test_an_unknown_console_url_is_a_404_page_in_the_consoles_layout(
        self, app: Any, keys: dict[str, str], path: str
    ) -> None:
        c = signed_in(app, keys, "auditor")
        r = c.get(path)
        assert r.status_code == 404 and r.mimetype == "text/html"
        text = r.get_data(as_text=True)
        assert "<h1>Page not found</h1>" in text and f"There is no console page at {path}." in text
        assert 'href="/console/accounts"' in text and "Sign out" in text  # the layout, signed in
        signed_out = Console(app.test_client()).get(path)
        assert signed_out.status_code == 302 and "/console/sign-in" in signed_out.headers["Location"]
        api = app.test_client().get("/v1/no-such-call")
        assert api.status_code == 404 and api.mimetype == "application/problem+json"  # the API's stays

    def test_the_stylesheet_is_served_by_the_app(self, client: FlaskClient) -> None:
        with client.get("/console/static/console.css") as r:
            assert r.status_code == 200 and r.mimetype == "text/css"
            assert b"font" in r.get_data()


@pytest.fixture
def reviewers(api: Api, context: Any, keys: dict[str, str]) -> dict[str, str]:
    """`lead`: an admin key that may release up to 1,500.00; `auditor_a`: an auditor limited to customer
    A. Both customers' GA10 get a 100,000.00 credit line, so orders above the balance are deferred."""
    from creditctl.services.api_keys import create_api_key

    for name, role, customers, limit in (
        ("lead", "admin", None, "1500.00"),
        ("auditor_a", "auditor", [CUSTOMER_A], None),
    ):
        keys[name] = create_api_key(
            name=name,
            role=role,
            customers=customers,
            uow=context.uow(),
            clock=context.clock,
            approval_limit=limit,
        ).secret
    for customer in (CUSTOMER_A, CUSTOMER_B):
        r = api.client.put(
            f"/v1/accounts/{customer}/GA10/credit-profile",
            json={"base_limit": "100000.00", "reason": "console review tests"},
            headers=api.auth("admin"),
        )
        assert r.status_code == 200, r.json
    return keys


def deferred(api: Api, amount: str = "1200.00", customer: str = CUSTOMER_A) -> str:
    """A deferred order (above the GA10 balance, within the credit line); its id."""
    r = api.decide(order(amount=amount, customer=customer, group="GA10"))
    assert r.status_code == 201 and r.json["state"] == "deferred", r.json
    return str(r.json["order_id"])


def state_of(api: Api, order_id: str) -> tuple[str, str]:
    d = api.decision(order_id, key="admin").json
    return d["state"], d["outcome"]


def queue_rows(text: str) -> list[str]:
    """The order ids in the review queue table, in the order shown."""
    return re.findall(r'<tr data-order="([^"]+)">', text)


class TestReviewQueue:
    def test_an_admin_releases_a_deferred_order_with_a_reason(
        self, app: Any, reviewers: dict[str, str], api: Api, clock: Any
    ) -> None:
        oid = deferred(api)
        clock.advance(125)
        c = signed_in(app, reviewers, "lead")
        text = c.get("/console/reviews").get_data(as_text=True)
        assert queue_rows(text) == [oid]
        assert "1,200.00" in text and "2 min" in text and "INSUFFICIENT_BALANCE" in text
        assert "Your approval authority (lead)" in text and "<strong>1,500.00</strong>" in text
        assert 'class="release"' in text and 'class="reject"' in text and 'class="recheck"' in text
        release = f"/console/reviews/{CUSTOMER_A}/{oid}/release"
        r = c.post(release, {"reason": "transfer confirmed"}, csrf=False)
        assert r.status_code == 400 and "CSRF" in r.get_data(as_text=True)
        assert state_of(api, oid) == ("deferred", "defer")
        r = c.post(
            release, {"reason": "transfer confirmed", "back": "/console/reviews?customer_code=" + CUSTOMER_A}
        )
        assert r.status_code == 302 and r.headers["Location"].endswith(
            f"/console/reviews?customer_code={CUSTOMER_A}"
        )
        text = c.get(r.headers["Location"]).get_data(as_text=True)
        assert (
            f"{oid} released: now approve; available 1,000.00 before, -200.00 after." in text
            and queue_rows(text) == []
        )
        other = deferred(api, "1100.00")
        c.get("/console/reviews")
        r = c.post(
            f"/console/reviews/{CUSTOMER_A}/{other}/reject",
            {"reason": "watch list", "back": "/console/reviews\r\nX-Injected: 1"},
        )
        assert r.status_code == 302 and r.headers["Location"].endswith("/console/reviews")  # not a 500
        assert state_of(api, other) == ("decided", "block")
        d = api.decision(oid, key="admin").json
        assert (d["state"], d["outcome"], d["hold"]["amount"]) == ("decided", "approve", "1200.00")
        assert d["reviews"][0]["by"] == "lead" and d["reviews"][0]["reason"] == "transfer confirmed"

    def test_each_row_and_release_form_show_balance_available_and_available_after_release(
        self, app: Any, reviewers: dict[str, str], api: Api
    ) -> None:
        held = api.decide(order(amount="300.00", group="GA10"))  # approved: 300.00 held on A's GA10
        assert held.json["outcome"] == "approve", held.json
        oid = deferred(api, "1200.00")
        text = signed_in(app, reviewers, "lead").get("/console/reviews").get_data(as_text=True)
        row = text.split(f'<tr data-order="{oid}">')[1].split("</tr>")[0]
        cells = dict(re.findall(r'<td class="num (balance|available|after[^"]*)">([^<]*)', row))
        assert cells == {"balance": "1,000.00", "available": "700.00", "after negative": "-500.00"}
        assert "into the credit line (100,000.00)" in row
        form = row.split('class="release"')[1].split("</form>")[0]
        assert "available 700.00 → -500.00 after release" in form
        auditor = signed_in(app, reviewers, "auditor").get("/console/reviews").get_data(as_text=True)
        assert '<td class="num available">700.00' in auditor and "/release" not in auditor

    def test_an_overdraft_needs_the_override_box_which_only_a_global_key_is_offered(
        self, app: Any, reviewers: dict[str, str], api: Api
    ) -> None:
        r = api.client.put(
            f"/v1/accounts/{CUSTOMER_A}/GA10/credit-profile",
            json={"base_limit": "100.00", "reason": "tight line"},
            headers=api.auth("admin"),
        )
        assert r.status_code == 200, r.json
        first, second = deferred(api, "1050.00"), deferred(api, "1050.00")
        c = signed_in(app, reviewers, "lead")
        c.get("/console/reviews")
        c.post(f"/console/reviews/{CUSTOMER_A}/{first}/release", {"reason": "within the line"})
        text = c.get("/console/reviews").get_data(as_text=True)
        row = text.split(f'<tr data-order="{second}">')[1].split("</tr>")[0]
        assert 'name="override"' in row and "overdraw by 1,000.00" in row
        release = f"/console/reviews/{CUSTOMER_A}/{second}/release"
        text = c.get(c.post(release, {"reason": "big customer"}).headers["Location"]).get_data(as_text=True)
        assert f"{second} not released" in text and "override" in text
        assert state_of(api, second) == ("deferred", "defer")
        c.post(release, {"reason": "big customer", "override": "on"})
        assert state_of(api, second) == ("decided", "approve")
        assert api.decision(second, key="admin").json["reviews"][-1]["overdraft"] == "1000.00"

    def test_a_released_orders_page_shows_the_release_and_the_hold_now(
        self, app: Any, reviewers: dict[str, str], api: Api, clock: Any
    ) -> None:
        oid, rejected = deferred(api, "1200.00"), deferred(api, "1100.00")
        clock.advance(600)
        lead = signed_in(app, reviewers, "lead")
        lead.get("/console/reviews")
        lead.post(f"/console/reviews/{CUSTOMER_A}/{oid}/release", {"reason": "transfer confirmed"})
        lead.post(f"/console/reviews/{CUSTOMER_A}/{rejected}/reject", {"reason": "on watch list"})
        settled = api.client.post(
            f"/v1/decisions/{oid}/settle",
            json={"amount": "200.00", "settlement_id": "DN-7"},
            headers=api.auth("orders"),
        )
        assert settled.status_code == 200, settled.json
        text = signed_in(app, reviewers, "auditor").get(f"/console/decisions/{CUSTOMER_A}/{oid}")
        text = text.get_data(as_text=True)
        row = text.split('<tr data-action="release">')[1].split("</tr>")[0]
        cells = [
            " ".join(re.sub(r"<[^>]+>", " ", c).split())
            for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        assert cells == [
            "2026-11-27 16:10:00 CST", "release", "lead (admin, authority 1,500.00)", "transfer confirmed",
            "defer → approve", "1,000.00", "0.00", "1,000.00", "-200.00", "100,000.00",
        ]  # fmt: skip
        hold = text.split('id="hold-now"')[1].split("</dl>")[0]
        assert 'id="hold-status">open' in hold and 'id="hold-remaining">1,000.00<' in hold
        events = text.split('id="hold-events"')[1].split("</table>")[0]
        assert "settled" in events and "DN-7" in events and "200.00" in events
        assert "before the reviews above" in text
        text = signed_in(app, reviewers, "auditor").get(f"/console/decisions/{CUSTOMER_A}/{rejected}")
        text = text.get_data(as_text=True)
        row = " ".join(
            re.sub(r"<[^>]+>", " ", text.split('<tr data-action="reject">')[1].split("</tr>")[0]).split()
        )
        assert (
            "on watch list" in row
            and "defer → block" in row
            and "No hold: the order was not approved." in text
        )

    def test_a_reject_needs_a_reason_and_blocks_the_order(
        self, app: Any, reviewers: dict[str, str], api: Api
    ) -> None:
        oid = deferred(api)
        c = signed_in(app, reviewers, "admin")
        c.get("/console/reviews")
        reject = f"/console/reviews/{CUSTOMER_A}/{oid}/reject"
        text = c.post(reject, {"reason": "  "}, follow_redirects=True).get_data(as_text=True)
        assert f"{oid} not rejected: a reason is required" in text
        assert state_of(api, oid) == ("deferred", "defer")
        text = c.post(reject, {"reason": "on watch list"}, follow_redirects=True).get_data(as_text=True)
        assert f"{oid} rejected: now block." in text
        d = api.decision(oid, key="admin").json
        assert (d["outcome"], d["reviews"][0]["reason"]) == ("block", "on watch list")
        text = c.post(reject, {"reason": "again"}, follow_redirects=True).get_data(as_text=True)
        assert f"{oid} not rejected:" in text and "not deferred" in text.lower().replace("no longer", "not")

    def test_a_recheck_evaluates_again_and_keeps_it_deferred(
        self, app: Any, reviewers: dict[str, str], api: Api
    ) -> None:
        oid = deferred(api)
        c = signed_in(app, reviewers, "admin")
        c.get("/console/reviews")
        r = c.post(f"/console/reviews/{CUSTOMER_A}/{oid}/recheck", follow_redirects=True)
        assert f"{oid} re-checked: now defer, deferred." in r.get_data(as_text=True)
        assert api.decision(oid, key="admin").json["reviews"][0]["action"] == "recheck"

    def test_a_release_beyond_the_keys_authority_shows_the_error_and_changes_nothing(
        self, app: Any, reviewers: dict[str, str], api: Api, db_state: Any
    ) -> None:
        within, beyond = deferred(api, "1200.00"), deferred(api, "1800.00")
        c = signed_in(app, reviewers, "lead")
        text = c.get("/console/reviews").get_data(as_text=True)
        rows = dict(zip(queue_rows(text), text.split('<tr data-order="')[1:], strict=True))
        assert 'class="release"' in rows[within] and 'class="release"' not in rows[beyond]
        assert "Above your approval authority (1,500.00)" in rows[beyond]
        before = db_state()
        r = c.post(f"/console/reviews/{CUSTOMER_A}/{beyond}/release", {"reason": "big customer"})
        text = c.get(r.headers["Location"]).get_data(as_text=True)
        assert f"{beyond} not released:" in text and "approval authority 1500.00" in text
        assert "1800.00" in text
        assert db_state() == before
        assert state_of(api, beyond) == ("deferred", "defer")
        plain = signed_in(app, reviewers, "admin").get("/console/reviews").get_data(as_text=True)
        assert "This key (test-admin) has no approval authority" in plain and 'class="release"' not in plain

    def test_an_auditor_reads_the_queue_without_forms_and_may_not_act(
        self, app: Any, reviewers: dict[str, str], api: Api
    ) -> None:
        oid = deferred(api)
        c = signed_in(app, reviewers, "auditor")
        text = c.get("/console/reviews").get_data(as_text=True)
        assert queue_rows(text) == [oid] and "Read only" in text
        assert text.count('method="post"') == 1  # signing out: no review form
        assert "/release" not in text and "Re-check" not in text
        for action in ("release", "reject", "recheck"):
            r = c.post(f"/console/reviews/{CUSTOMER_A}/{oid}/{action}", {"reason": "auditor tries"})
            assert r.status_code == 403, action
        assert state_of(api, oid) == ("deferred", "defer")
        orders = signed_in(app, reviewers, "orders")
        assert 'href="/console/reviews"' not in orders.get("/console/accounts").get_data(as_text=True)
        assert orders.get("/console/reviews").status_code == 403

    def test_a_customer_limited_key_sees_only_its_customers_deferred_orders(
        self, app: Any, reviewers: dict[str, str], api: Api, clock: Any
    ) -> None:
        mine = deferred(api)
        clock.advance(1)
        theirs = deferred(api, "6000.00", customer=CUSTOMER_B)
        everyone = signed_in(app, reviewers, "auditor").get("/console/reviews").get_data(as_text=True)
        assert queue_rows(everyone) == [mine, theirs]
        c = signed_in(app, reviewers, "auditor_a")
        text = c.get("/console/reviews").get_data(as_text=True)
        assert queue_rows(text) == [mine] and "6,000.00" not in text
        assert c.get(f"/console/reviews?customer_code={CUSTOMER_B}").status_code == 404

    def test_filters_and_cursor_pages_oldest_first(
        self, app: Any, reviewers: dict[str, str], api: Api, clock: Any, monkeypatch: Any
    ) -> None:
        from adapters.web.console import reviews

        first = deferred(api, "1200.00")
        clock.advance(1)
        second = deferred(api, "1300.00")
        clock.advance(1)
        third = deferred(api, "6000.00", customer=CUSTOMER_B)
        monkeypatch.setattr(reviews, "PER_PAGE", 2)
        c = signed_in(app, reviewers, "auditor")
        text = c.get("/console/reviews").get_data(as_text=True)
        assert queue_rows(text) == [first, second]
        next_page = re.search(r'href="([^"]+)" id="next"', text)
        assert next_page
        text = c.get(next_page.group(1).replace("&amp;", "&")).get_data(as_text=True)
        assert queue_rows(text) == [third] and 'id="next"' not in text
        text = c.get("/console/reviews?min_amount=1250.00&max_amount=5000&sale_group_code=GA10")
        assert queue_rows(text.get_data(as_text=True)) == [second]
        text = c.get(f"/console/reviews?customer_code={CUSTOMER_B}&reason=INSUFFICIENT_BALANCE")
        assert queue_rows(text.get_data(as_text=True)) == [third]
        assert queue_rows(c.get("/console/reviews?reason=MANUAL_REVIEW").get_data(as_text=True)) == []
        assert c.get("/console/reviews?min_amount=lots").status_code == 422

    def test_the_account_page_lists_its_deferrals_and_links_the_queue(
        self, app: Any, reviewers: dict[str, str], api: Api, clock: Any
    ) -> None:
        oid = deferred(api)
        other = deferred(api, "6000.00", customer=CUSTOMER_B)
        clock.advance(3 * 3600 + 300)
        text = signed_in(app, reviewers, "auditor").get(f"/console/accounts/{CUSTOMER_A}/GA10")
        text = text.get_data(as_text=True)
        section = text.split('id="deferrals"')[1].split("<h2>")[0]
        assert oid in section and "1,200.00" in section and "3 h 5 min" in section
        assert "INSUFFICIENT_BALANCE" in section and other not in section
        assert f'href="/console/reviews?customer_code={CUSTOMER_A}&amp;sale_group_code=GA10"' in section
        text = signed_in(app, reviewers, "orders").get(f"/console/accounts/{CUSTOMER_A}/GA10")
        section = text.get_data(as_text=True).split('id="deferrals"')[1].split("<h2>")[0]
        assert oid in section and 'id="review-link"' not in section


def events_shown(text: str) -> list[tuple[str, str]]:
    """(type, actor name) of each event row on the audit page."""
    return re.findall(r"<td><code>([a-z_.]+)</code></td>\s*<td>([^<]+?) <small", text)


class TestAuditTrail:
    def test_a_console_freeze_shows_on_the_audit_page_naming_the_key(
        self, app: Any, reviewers: dict[str, str]
    ) -> None:
        admin = signed_in(app, reviewers, "admin")
        admin.get(f"/console/accounts/{CUSTOMER_A}/GB20")
        admin.post(f"/console/accounts/{CUSTOMER_A}/GB20/freeze", {"reason": "payment dispute"})
        c = signed_in(app, reviewers, "auditor")
        text = c.get(f"/console/audit?customer_code={CUSTOMER_A}&sale_group_code=GB20").get_data(as_text=True)
        assert ("account.frozen", "test-admin") in events_shown(text)
        assert "(admin)" in text and "payment dispute" in text and "&#34;frozen&#34;" in text
        assert f"{CUSTOMER_A}/GB20" in text and "/GA10" not in text  # the account's events only
        text = c.get("/console/audit?type=account.frozen&actor=test-admin").get_data(as_text=True)
        assert events_shown(text) == [("account.frozen", "test-admin")]
        assert events_shown(c.get("/console/audit?actor=nobody").get_data(as_text=True)) == []

    def test_releases_and_the_time_range_in_shanghai_time(
        self, app: Any, reviewers: dict[str, str], api: Api, clock: Any
    ) -> None:
        oid = deferred(api)
        lead = signed_in(app, reviewers, "lead")
        lead.get("/console/reviews")
        lead.post(f"/console/reviews/{CUSTOMER_A}/{oid}/release", {"reason": "transfer confirmed"})
        c = signed_in(app, reviewers, "auditor")
        text = c.get(f"/console/audit?order_id={oid}").get_data(as_text=True)
        assert ("deferral.released", "lead") in events_shown(text) and "transfer confirmed" in text
        # The event's time is the database's at its insert, shown in Asia/Shanghai (UTC+8).
        found = api.client.get(
            "/v1/audit/events",
            query_string={"order_id": oid, "type": "deferral.released"},
            headers=api.auth("auditor"),
        ).json["events"]
        at = datetime.fromisoformat(found[0]["at"])
        shanghai = at.astimezone(timezone(timedelta(hours=8)))
        assert shanghai.strftime("%Y-%m-%d %H:%M:%S CST") in text

        def minute(moment: datetime, shift: int) -> str:
            return (moment + timedelta(minutes=shift)).strftime("%Y-%m-%dT%H:%M")

        during = c.get(f"/console/audit?order_id={oid}&from={minute(shanghai, -1)}&to={minute(shanghai, 1)}")
        assert ("deferral.released", "lead") in events_shown(during.get_data(as_text=True))
        utc_read = c.get(f"/console/audit?order_id={oid}&from={minute(at, -1)}&to={minute(at, 1)}")
        assert events_shown(utc_read.get_data(as_text=True)) == []  # read as Shanghai: 8 hours before it
        assert c.get("/console/audit?from=yesterday").status_code == 422
        assert c.get("/console/audit?from=0001-01-01").status_code == 422  # its UTC is in year 0
        assert c.get("/console/audit?to=9999-12-31T23:59:59-12:00").status_code == 422

    def test_verify_shows_verified_and_then_the_broken_event_after_tampering(
        self, app: Any, reviewers: dict[str, str], api: Api, sqlite_engine: Any
    ) -> None:
        from sqlalchemy import text as sql

        assert api.freeze(CUSTOMER_A, "GB20", {"reason": "payment dispute"}).status_code == 200
        c = signed_in(app, reviewers, "auditor")
        page = c.get("/console/audit").get_data(as_text=True)
        head = re.search(r'id="head-position">(\d+)<', page)
        assert head and int(head.group(1)) >= 2 and 'id="unsealed">0<' in page
        r = c.post("/console/audit/verify")
        assert r.status_code == 200
        assert f"verified: {head.group(1)} events, head {head.group(1)}:" in r.get_data(as_text=True)
        with sqlite_engine.begin() as conn:
            for verb in ("update", "delete"):
                conn.execute(sql(f"DROP TRIGGER audit_events_no_{verb}"))
            conn.execute(
                sql(
                    "UPDATE audit_events SET payload = replace(payload, 'payment dispute', 'no dispute') "
                    "WHERE type = 'account.frozen'"
                )
            )
            position = conn.execute(
                sql(
                    "SELECT s.position FROM audit_seals s JOIN audit_events e ON e.seq = s.seq "
                    "WHERE e.type = 'account.frozen'"
                )
            ).scalar_one()
        text = c.post("/console/audit/verify").get_data(as_text=True)
        assert f"broken at position {position}" in text
        assert "its content does not match its hash" in text
        assert f"The {position - 1} events before it verify" in text
        assert f'href="/console/audit?cursor={position - 1}&amp;order=oldest"' in text
        assert c.post("/console/audit/verify", csrf=False).status_code == 400

    def test_verify_names_an_event_the_sealer_refuses_as_back_dated(
        self, app: Any, reviewers: dict[str, str], api: Api, sqlite_engine: Any
    ) -> None:
        from sqlalchemy import text as sql

        assert api.freeze(CUSTOMER_A, "GB20", {"reason": "payment dispute"}).status_code == 200
        c = signed_in(app, reviewers, "auditor")
        c.get("/console/audit")  # seals what is committed
        with sqlite_engine.begin() as conn:  # the file's owner, past the trigger: an event 15 days old
            conn.execute(sql("DROP TRIGGER audit_events_database_time"))
            conn.exec_driver_sql(
                "INSERT INTO audit_events (at, type, actor, payload) VALUES (?, 'decision.made', 'erp', ?)",
                ("2026-01-01 00:00:00.000000", '{"at":"2026-01-01T00:00:00.000000Z","type":"decision.made"}'),
            )
            seq = conn.execute(sql("SELECT max(seq) FROM audit_events")).scalar_one()
        c.get("/console/audit")  # a read seals again: this one is refused
        text = c.post("/console/audit/verify").get_data(as_text=True)
        assert f"event seq {seq} (decision.made) refused, not sealed" in text
        assert "held back before commit, or back-dated" in text

    def test_a_chain_longer_than_the_pages_time_budget_is_verified_in_part_and_says_so(
        self, app: Any, reviewers: dict[str, str], api: Api, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from adapters.web.console import audit as console_audit

        for _ in range(3):
            api.decide(order(amount="1.00"))
        monkeypatch.setattr(console_audit, "VERIFY_BUDGET_S", 0.0)  # out of time after the first batch
        monkeypatch.setattr(console_audit, "VERIFY_BATCH", 2)
        c = signed_in(app, reviewers, "auditor")
        c.get("/console/audit")
        text = c.post("/console/audit/verify").get_data(as_text=True)
        assert "verified the first 2 events in 0 s and found no break" in text
        assert "creditctl audit verify</code> walks all of it" in text and "verified:" not in text

    def test_a_customer_limited_key_sees_only_its_customers_events_and_no_verify(
        self, app: Any, reviewers: dict[str, str], api: Api
    ) -> None:
        assert api.freeze(CUSTOMER_A, "GB20", {"reason": "dispute A"}).status_code == 200
        assert api.freeze(CUSTOMER_B, "GA10", {"reason": "dispute B"}).status_code == 200
        everyone = signed_in(app, reviewers, "auditor").get("/console/audit?type=account.frozen")
        assert "dispute A" in everyone.get_data(as_text=True) and "dispute B" in everyone.get_data(
            as_text=True
        )
        c = signed_in(app, reviewers, "auditor_a")
        text = c.get("/console/audit?type=account.frozen").get_data(as_text=True)
        assert "dispute A" in text and "dispute B" not in text and CUSTOMER_B not in text
        assert 'id="verify"' not in text and 'id="head-position"' not in text
        assert "api_key.created" not in c.get("/console/audit").get_data(as_text=True)  # global events
        assert c.post("/console/audit/verify").status_code == 403
        assert c.get(f"/console/audit?customer_code={CUSTOMER_B}").status_code == 404
        assert signed_in(app, reviewers, "orders").get("/console/audit").status_code == 403

    def test_pages_newest_first_by_default_and_in_chain_order_when_asked(
        self, app: Any, reviewers: dict[str, str], api: Api, monkeypatch: Any
    ) -> None:
        from adapters.web.console import audit

        for n in range(3):
            api.decide(order(f"PO-AUD-{n}"))
        monkeypatch.setattr(audit, "PER_PAGE", 2)
        c = signed_in(app, reviewers, "auditor")
        text = c.get("/console/audit?type=decision.made").get_data(as_text=True)
        assert "newest first" in text.split("</h1>")[0]
        newest = [int(p) for p in re.findall(r'<td class="num" title="hash [0-9a-f]{64}">(\d+)</td>', text)]
        assert len(newest) == 2 and newest == sorted(newest, reverse=True)
        assert "PO-AUD-2" in text and "PO-AUD-1" in text and "PO-AUD-0" not in text
        assert (
            f'href="/console/audit?cursor={newest[1]}&amp;type=decision.made" id="next">Older events' in text
        )
        older = c.get(f"/console/audit?cursor={newest[1]}&type=decision.made").get_data(as_text=True)
        assert "PO-AUD-0" in older and "PO-AUD-1" not in older and 'id="next"' not in older

        assert 'id="oldest-first" href="/console/audit?order=oldest&amp;type=decision.made"' in text
        text = c.get("/console/audit?order=oldest&type=decision.made").get_data(as_text=True)
        positions = [
            int(p) for p in re.findall(r'<td class="num" title="hash [0-9a-f]{64}">(\d+)</td>', text)
        ]
        assert len(positions) == 2 and positions == sorted(positions)
        next_link = (
            f'href="/console/audit?cursor={positions[1]}&amp;order=oldest&amp;type=decision.made" id="next"'
        )
        assert next_link in text
        rest = c.get(f"/console/audit?cursor={positions[1]}&order=oldest&type=decision.made")
        rest_text = rest.get_data(as_text=True)
        assert "PO-AUD-2" in rest_text and "PO-AUD-0" not in rest_text and 'id="next"' not in rest_text

    def test_the_filtered_events_export_as_csv_and_as_verifiable_json_lines(
        self, app: Any, reviewers: dict[str, str], api: Api, monkeypatch: Any
    ) -> None:
        import csv
        import hashlib
        import io
        import json

        from creditctl.services import audit_export

        monkeypatch.setattr(audit_export, "BATCH", 2)  # several reads: the export is not one page
        for n in range(3):
            api.decide(order(f"PO-EXP-{n}"))
        api.decide(order("PO-EXP-B", customer=CUSTOMER_B, group="GA10"))
        c = signed_in(app, reviewers, "auditor")
        text = c.get(f"/console/audit?customer_code={CUSTOMER_A}&type=decision.made").get_data(as_text=True)
        link = re.search(r'id="export-csv" href="([^"]+)"', text)
        assert link
        assert (
            link.group(1)
            == f"/console/audit/export?format=csv&amp;customer_code={CUSTOMER_A}&amp;type=decision.made"
        )
        r = c.get(link.group(1).replace("&amp;", "&"))
        assert r.mimetype == "text/csv" and "attachment" in r.headers["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
        assert [row["order_id"] for row in rows] == ["PO-EXP-0", "PO-EXP-1", "PO-EXP-2"]  # chain order
        assert {row["type"] for row in rows} == {"decision.made"} and rows[0]["actor"] == "test-orders"
        assert json.loads(rows[0]["after"])["outcome"] == "approve"
        link = re.search(r'id="export-jsonl" href="([^"]+)"', text)
        assert link
        lines = c.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True).splitlines()
        assert len(lines) == 3
        for line in map(json.loads, lines):
            assert hashlib.sha256((line["prev_hash"] + line["payload"]).encode()).hexdigest() == line["hash"]
            assert json.loads(line["payload"])["subject"]["customer_code"] == CUSTOMER_A
        limited = signed_in(app, reviewers, "auditor_a")
        mine = limited.get("/console/audit/export?format=jsonl&type=decision.made").get_data(as_text=True)
        assert "PO-EXP-0" in mine and "PO-EXP-B" not in mine
        assert limited.get(f"/console/audit/export?customer_code={CUSTOMER_B}").status_code == 404
        assert limited.get("/console/audit/export?from=yesterday").status_code == 422
