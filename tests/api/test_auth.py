"""API keys: random, shown once, kept as a hash; roles; 401/403; a key limited to customers sees
nothing of the others (404, never 403)."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC
from types import SimpleNamespace

import pytest

from adapters.web import auth
from adapters.web.auth import KeyCache
from creditctl.services.api_keys import create_api_key, revoke_api_key
from tests.api.conftest import CUSTOMER_A, CUSTOMER_B, assert_problem, order
from tests.random_refs import random_order_id

pytestmark = pytest.mark.api

PUBLIC_PATHS = ("/openapi.json", "/docs", "/healthz", "/readyz", "/metrics", "/static/")
SEED_SHAPED_PATHS = ("/api/haier/",)  # errors in the seed system's shape, not problems
# The console's pages sign in with a session, not a header: tests/api/test_console.py proves every one of
# them redirects to its sign-in page (or refuses a POST without its CSRF token).
SESSION_PATHS = ("/console/",)


def protected_calls(app):
    """(method, url) for every route that is not public, with placeholder path values."""
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(PUBLIC_PATHS + SESSION_PATHS):
            continue
        url = rule.rule
        for name in rule.arguments:  # any converter, with or without arguments: <int(max=…):name>
            url = re.sub(rf"<int(\([^)]*\))?:{name}>", "1", url)
            url = re.sub(rf"<([a-z]+(\([^)]*\))?:)?{name}>", "x1", url)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, url


def decided_for_b(api):
    """An approved order of customer B, decided with the unrestricted orders key."""
    oid = random_order_id("b")
    r = api.decide(order(oid, customer=CUSTOMER_B, group="GA10"))
    assert r.status_code == 201 and r.json["hold"]["status"] == "open", r.json
    return oid, r.json


class TestKeys:
    def test_keys_are_random_prefixed_and_long(self, context):
        secrets = {
            create_api_key(
                name=f"k{i}", role="orders", customers=None, uow=context.uow(), clock=context.clock
            ).secret
            for i in range(5)
        }
        assert len(secrets) == 5
        assert all(s.startswith("cck_") and len(s) >= 40 for s in secrets)

    def test_only_the_hash_of_a_key_is_stored(self, context, db_state):
        new = create_api_key(
            name="erp", role="orders", customers=None, uow=context.uow(), clock=context.clock
        )
        everything = repr(db_state())
        assert new.secret not in everything
        assert new.secret[4:] not in everything
        with context.uow() as uow:
            stored = uow.api_keys.by_hash(hashlib.sha256(new.secret.encode()).hexdigest())
        assert stored is not None and stored.name == "erp"
        assert not hasattr(stored, "secret")


class TestAuthentication:
    def test_every_protected_route_needs_a_key(self, app, client):
        calls = list(protected_calls(app))
        assert len(calls) >= 9
        for method, url in calls:
            r = client.open(url, method=method)
            assert r.headers["WWW-Authenticate"].startswith("Bearer"), (method, url)
            if url.startswith(SEED_SHAPED_PATHS):  # the seed's front ends read {"success", "error"}
                assert r.status_code == 401 and r.json["success"] is False, (method, url)
                assert "Authorization: Bearer" in r.json["error"]
                continue
            body = assert_problem(r, 401)
            assert "Authorization: Bearer" in body["detail"]

    @pytest.mark.parametrize(
        "headers",
        [
            {"Authorization": "Bearer cck_not-a-real-key"},
            {"Authorization": "Bearer "},
            {"Authorization": "Basic dXNlcjpwYXNz"},
            {"X-API-Key": "cck_not-a-real-key"},
            {"X-API-Key": ""},
        ],
    )
    def test_a_missing_or_bad_key_is_401_with_www_authenticate(self, client, headers):
        r = client.get(f"/v1/accounts/{CUSTOMER_A}/GA10", headers=headers)
        assert_problem(r, 401)
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="creditctl"'

    @pytest.mark.parametrize(
        "style",
        [
            lambda k: {"Authorization": f"Bearer {k}"},
            lambda k: {"Authorization": f"bearer {k}"},
            lambda k: {"X-API-Key": k},
        ],
        ids=["bearer", "bearer-lowercase", "x-api-key"],
    )
    def test_a_key_works_as_bearer_token_and_as_x_api_key(self, client, keys, style):
        r = client.get(f"/v1/accounts/{CUSTOMER_A}/GA10", headers=style(keys["orders"]))
        assert r.status_code == 200, r.json
        r = client.post("/v1/decisions", json=order(), headers=style(keys["orders"]))
        assert r.status_code == 201, r.json

    def test_a_revoked_key_stops_working_after_the_cache_ttl(self, api, context, monkeypatch):
        new = create_api_key(
            name="leaving", role="auditor", customers=None, uow=context.uow(), clock=context.clock
        )
        url = f"/v1/accounts/{CUSTOMER_A}/GA10"
        headers = {"X-API-Key": new.secret}
        assert api.client.get(url, headers=headers).status_code == 200
        assert revoke_api_key(new.key.id, uow=context.uow(), clock=context.clock)
        # Within the TTL the cached key is still honoured (documented: at most CACHE_TTL_S seconds).
        assert api.client.get(url, headers=headers).status_code == 200
        now = auth.time.monotonic()
        later = SimpleNamespace(monotonic=lambda: now + auth.CACHE_TTL_S + 1)
        monkeypatch.setattr(auth, "time", later)  # the cache's clock only
        assert_problem(api.client.get(url, headers=headers), 401)

    def test_a_revoked_key_is_refused_once_the_cache_is_cleared(self, api, app, context):
        new = create_api_key(
            name="leaving", role="orders", customers=None, uow=context.uow(), clock=context.clock
        )
        headers = {"Authorization": f"Bearer {new.secret}"}
        assert api.client.post("/v1/decisions", json=order(), headers=headers).status_code == 201
        revoke_api_key(new.key.id, uow=context.uow(), clock=context.clock)
        app.extensions["creditctl.keys"] = KeyCache()
        oid = random_order_id("revoked")
        assert_problem(api.client.post("/v1/decisions", json=order(oid), headers=headers), 401)
        assert api.decision(oid).status_code == 404

    def test_a_revoked_keys_401_says_it_was_revoked_and_when(self, api, app, context):
        """Its holder learns to get a new key, not to suspect a typing mistake."""
        new = create_api_key(
            name="copied-yesterday", role="orders", customers=None, uow=context.uow(), clock=context.clock
        )
        revoke_api_key(new.key.id, uow=context.uow(), clock=context.clock)
        with context.uow() as uow:
            revoked_at = next(k for k in uow.api_keys.all() if k.id == new.key.id).revoked_at
        when = revoked_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        app.extensions["creditctl.keys"] = KeyCache()
        r = api.client.get(f"/v1/accounts/{CUSTOMER_A}/GA10", headers={"X-API-Key": new.secret})
        body = assert_problem(r, 401, "api_key")
        assert f"'copied-yesterday' (id {new.key.id}) was revoked at {when}" in body["detail"]
        assert body["errors"]["api_key"] == [f"revoked at {when}"]
        assert body["type"].endswith("auth/revoked_key")
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="creditctl"'
        seed = api.client.get(
            f"/api/haier/balance/?customer_code={CUSTOMER_A}", headers={"X-API-Key": new.secret}
        )
        assert seed.status_code == 401 and seed.json["code"] == "UNAUTHENTICATED"
        assert f"was revoked at {when}" in seed.json["error"]

    def test_an_unknown_keys_401_stays_plain(self, api):
        r = api.client.get(f"/v1/accounts/{CUSTOMER_A}/GA10", headers={"X-API-Key": "cck_never-issued"})
        body = assert_problem(r, 401)
        assert body["detail"] == "the API key is not valid" and body["errors"] == {}
        assert "revoked" not in r.get_data(as_text=True)

    def test_the_cache_never_grows_without_bound(self):
        cache = KeyCache(max_size=3)
        for i in range(10):
            cache.put(str(i), object())  # type: ignore[arg-type]
        assert len(cache._items) <= 3


class TestRoles:
    """orders: decide, settle, release, recheck; admin: freeze/unfreeze; auditor: read-only."""

    @pytest.mark.parametrize("role", ["admin", "auditor"])
    def test_only_orders_keys_decide(self, api, db_state, role):
        before = db_state()
        oid = random_order_id("role")
        assert_problem(api.decide(order(oid), key=role), 403)
        assert db_state() == before

    @pytest.mark.parametrize("role", ["admin", "auditor"])
    @pytest.mark.parametrize("action", ["settle", "release", "recheck"])
    def test_only_orders_keys_end_or_recheck_a_decision(self, api, db_state, role, action):
        oid = random_order_id("role")
        assert api.decide(order(oid)).status_code == 201
        before = db_state()
        assert_problem(api.act(oid, action, key=role), 403)
        assert db_state() == before
        assert api.decision(oid).json["hold"]["status"] == "open"

    @pytest.mark.parametrize("role", ["orders", "auditor"])
    @pytest.mark.parametrize("undo", [False, True])
    def test_only_admin_keys_freeze_and_unfreeze(self, api, db_state, role, undo):
        before = db_state()
        body = assert_problem(api.freeze(CUSTOMER_A, "GA10", {"reason": "x"}, undo=undo, key=role), 403)
        assert "admin" in body["detail"]
        assert db_state() == before

    @pytest.mark.parametrize("role", ["orders", "admin", "auditor"])
    def test_every_role_reads_decisions_and_accounts(self, api, role):
        oid = random_order_id("read")
        assert api.decide(order(oid)).status_code == 201
        assert api.decision(oid, key=role).status_code == 200
        assert api.account(CUSTOMER_A, "GB20", key=role).status_code == 200


class TestAKeyLimitedToCustomers:
    """orders_a is limited to customer A: B's orders and accounts do not exist for it (404, not 403)."""

    def test_it_decides_for_its_own_customer(self, api):
        assert api.decide(order(), key="orders_a").status_code == 201

    def test_deciding_for_another_customer_is_404_and_changes_nothing(self, api, db_state):
        before = db_state()
        oid = random_order_id("other")
        body = assert_problem(api.decide(order(oid, customer=CUSTOMER_B, group="GA10"), key="orders_a"), 404)
        unknown = assert_problem(
            api.decide(order(oid, customer="8899999999", group="GA10"), key="orders_a"), 404
        )
        assert body["type"] == unknown["type"] and set(body["errors"]) == set(unknown["errors"])
        assert db_state() == before
        assert api.decision(oid).status_code == 404

    def test_replaying_another_customers_order_is_404_not_its_decision(self, api):
        oid, decision = decided_for_b(api)
        r = api.decide(order(oid, customer=CUSTOMER_B, group="GA10"), key="orders_a")
        body = assert_problem(r, 404)
        assert decision["decision_id"] not in r.get_data(as_text=True)
        assert body["errors"].keys() == {"customer_code"}

    def test_reading_another_customers_decision_is_404_like_an_unknown_order(self, api):
        oid, decision = decided_for_b(api)
        r = api.decision(oid, key="orders_a")
        body = assert_problem(r, 404, "order_id")
        ghost = assert_problem(api.decision("never-decided", key="orders_a"), 404, "order_id")
        assert body["detail"].replace(oid, "?") == ghost["detail"].replace("never-decided", "?")
        assert decision["decision_id"] not in r.get_data(as_text=True)

    @pytest.mark.parametrize("action", ["settle", "release", "recheck"])
    def test_acting_on_another_customers_order_is_404_and_changes_nothing(self, api, db_state, action):
        oid, decision = decided_for_b(api)
        before = db_state()
        r = api.act(oid, action, key="orders_a")
        assert_problem(r, 404, "order_id")
        assert decision["hold"]["id"] not in r.get_data(as_text=True)
        assert db_state() == before
        assert api.decision(oid).json == decision

    def test_reading_another_customers_account_is_404_like_an_unknown_customer(self, api):
        r = api.account(CUSTOMER_B, "GA10", key="orders_a")
        body = assert_problem(r, 404)
        ghost = assert_problem(api.account("8899999999", "GA10", key="orders_a"), 404)
        assert body["type"] == ghost["type"] and set(body["errors"]) == set(ghost["errors"])
        text = r.get_data(as_text=True)
        assert "Beta Co" not in text and "5000.00" not in text
        assert api.account(CUSTOMER_A, "GA10", key="orders_a").status_code == 200
