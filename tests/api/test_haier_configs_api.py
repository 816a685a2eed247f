"""PUT/GET /v1/admin/haier/configs/{name}: admin only, field errors as problem+json, no SSRF by
configuration, secrets sealed at rest and shown only as "set", never in any answer or in the OpenAPI
document."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from werkzeug.test import TestResponse

from adapters.bootstrap import Settings, bootstrap
from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.fake.clock import FakeClock
from adapters.sql.tables import upstream_configs
from adapters.sql.token_store import SqlTokenStore
from adapters.web.app import create_app
from creditctl.ports.token_store import Token
from creditctl.services.context import AppContext
from creditctl.services.upstream_configs import open_document
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.api

URL = "/v1/admin/haier/configs"
BASE = "https://openplat-test.haier.net"
CLIENT_SECRET = "cs-API-SECRET-51c0ffee"
PASSWORD = "pw-API-SECRET-7e57ab1e"
CUSTOMER_PASSWORD = "cust-API-SECRET-d00d"
FALLBACK = "fb-API-SECRET-feed"
SECRETS = (CLIENT_SECRET, PASSWORD, CUSTOMER_PASSWORD, FALLBACK)


def body(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "base_url": BASE,
        "auth": "client_credentials",
        "client_id": "client-4711",
        "client_secret": CLIENT_SECRET,
        "auth_scheme": "Bearer",
        "customer_password": FALLBACK,
        "customers": {"8800633175": CUSTOMER_PASSWORD},
        "timeouts": {"connect_s": 5, "read_s": 30},
        "rate_limit_per_s": 50,
        "is_active": True,
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


class Admin:
    """Calls the config API and keeps every answer, to search them all for secrets at the end."""

    def __init__(self, client: FlaskClient, keys: dict[str, str]) -> None:
        self.client = client
        self.keys = keys
        self.answers: list[TestResponse] = []

    def _headers(self, key: str | None) -> dict[str, str]:
        return {} if key is None else {"Authorization": f"Bearer {self.keys[key]}"}

    def put(self, name: str, doc: Any, key: str | None = "admin") -> TestResponse:
        r = self.client.put(f"{URL}/{name}", json=doc, headers=self._headers(key))
        self.answers.append(r)
        return r

    def get(self, name: str, key: str | None = "admin") -> TestResponse:
        r = self.client.get(f"{URL}/{name}", headers=self._headers(key))
        self.answers.append(r)
        return r

    def assert_no_secret_answered(self) -> None:
        for r in self.answers:
            text = r.get_data(as_text=True) + repr(dict(r.headers))
            for secret in SECRETS:
                assert secret not in text, (r.status_code, text)


@pytest.fixture
def admin(client: FlaskClient, keys: dict[str, str]) -> Iterator[Admin]:
    a = Admin(client, keys)
    yield a
    a.assert_no_secret_answered()


def stored_document(engine: Engine, name: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(upstream_configs).where(upstream_configs.c.name == name)).first()
    assert row is not None
    return dict(row.document)


class TestAccess:
    def test_without_a_key_it_is_401(self, admin: Admin) -> None:
        assert_problem(admin.put("main", body(), key=None), 401)
        assert_problem(admin.get("main", key=None), 401)

    @pytest.mark.parametrize("role", ["orders", "auditor", "orders_a"])
    def test_other_roles_are_403_and_change_nothing(self, admin: Admin, role: str) -> None:
        assert_problem(admin.put("main", body(), key=role), 403)
        assert_problem(admin.get("main", key=role), 403)
        assert_problem(admin.get("main"), 404, "name")

    def test_admin_creates_and_reads(self, admin: Admin) -> None:
        put = admin.put("main", body())
        assert put.status_code == 200, put.json
        got = admin.get("main")
        assert got.status_code == 200
        assert got.json["name"] == "main"
        assert got.json["base_url"] == BASE
        assert got.json["token_url"] == BASE + "/oauth2/auth"
        assert got.json["rate_limit_per_s"] == 50


class TestSecrets:
    def test_get_shows_every_secret_as_set(self, admin: Admin) -> None:
        password_flow = body(
            auth="password",
            token_url="https://ylh-auth.haier.net/oauth/token",
            username="ylh-user",
            password=PASSWORD,
        )
        assert admin.put("main", password_flow).status_code == 200
        shown = admin.get("main").json
        assert shown["client_secret"] == "set"
        assert shown["password"] == "set"
        assert shown["customer_password"] == "set"
        assert shown["customers"] == {"8800633175": "set"}
        assert shown["username"] == "ylh-user"  # not a secret

    def test_secrets_are_sealed_in_the_database(self, admin: Admin, sqlite_engine: Engine) -> None:
        assert admin.put("main", body()).status_code == 200
        raw = repr(stored_document(sqlite_engine, "main"))
        for secret in SECRETS:
            assert secret not in raw
        assert "enc:v1:" in raw

    def test_put_with_set_keeps_the_stored_secrets(
        self, admin: Admin, sqlite_engine: Engine, context: AppContext
    ) -> None:
        assert admin.put("main", body()).status_code == 200
        again = body(
            client_secret="set",
            customer_password="set",
            customers={"8800633175": "set", "8800633176": "new-cust-pw-1"},
            rate_limit_per_s=20,
        )
        assert admin.put("main", again).status_code == 200
        tools = context.upstream_configs
        assert tools is not None
        opened = open_document(stored_document(sqlite_engine, "main"), tools.box)
        assert opened["client_secret"] == CLIENT_SECRET
        assert opened["customer_password"] == FALLBACK
        assert opened["customers"] == {"8800633175": CUSTOMER_PASSWORD, "8800633176": "new-cust-pw-1"}
        assert opened["rate_limit_per_s"] == 20
        assert admin.put("main", body(client_secret="rotated-cs-1")).status_code == 200
        assert (
            open_document(stored_document(sqlite_engine, "main"), tools.box)["client_secret"]
            == "rotated-cs-1"
        )
        # The audit trail names the secrets each change sent anew, never their values.
        events = admin.client.get(
            "/v1/audit/events",
            query_string={"type": "upstream_config.changed"},
            headers=admin._headers("admin"),
        ).json["events"]
        replaced = [e["after"]["secrets_replaced"] for e in events]
        every = ["client_secret", "customer_password", "customers.8800633175"]
        assert replaced == [every, ["customers.8800633176"], every], replaced
        assert "rotated-cs-1" not in json.dumps(events, default=str)
        assert CLIENT_SECRET not in json.dumps(events, default=str)

    def test_set_for_a_secret_never_stored_is_refused(self, admin: Admin) -> None:
        assert_problem(admin.put("fresh", body(client_secret="set")), 422, "client_secret")
        assert admin.put("main", body()).status_code == 200
        assert_problem(admin.put("main", body(customers={"8800000009": "set"})), 422, "customers.8800000009")

    def test_refusals_never_echo_a_secret(self, admin: Admin) -> None:
        cases = [
            body(base_url="http://169.254.169.254"),
            body(client_secret=CLIENT_SECRET * 40),  # too long
            body(auth="password", password=PASSWORD),  # no username, no token_url
            body(customers={"not a code!": CUSTOMER_PASSWORD}),
            body(customers={"8800633175": 12345}, customer_password=FALLBACK),
            body(clientSecret=CLIENT_SECRET),  # unknown field
            [CLIENT_SECRET],
        ]
        for case in cases:
            r = admin.put("main", case)
            assert r.status_code == 422, r.get_data(as_text=True)
        assert_problem(admin.get("main"), 404)

    def test_the_openapi_document_holds_no_secret(self, admin: Admin, client: FlaskClient) -> None:
        assert admin.put("main", body()).status_code == 200
        doc = client.get("/openapi.json")
        assert doc.status_code == 200
        text = doc.get_data(as_text=True)
        for secret in SECRETS:
            assert secret not in text
        schemas = doc.json["components"]["schemas"]
        shown = schemas["RedactedConfig"]["properties"]
        assert shown["client_secret"].get("example") in (None, "set")
        assert "Bearer " not in text.replace('"scheme": "bearer"', "")


KEPT = {"client_secret": "set", "customer_password": "set", "customers": {"8800633175": "set"}}
KEPT_FIELDS = ("client_secret", "customer_password", "customers.8800633175")


class TestNewDestination:
    """A stored secret is kept ("set") only while it goes where it went before."""

    @pytest.mark.parametrize(
        "change",
        [
            {"base_url": "https://openplat-bj-aliyun.haier.net"},
            {"token_url": "https://openplat-test.haier.net/oauth2/token"},
            {"auth": "password", "token_url": "https://ylh-auth.haier.net/oauth/token", "username": "u"},
        ],
        ids=["base_url", "token_url", "auth"],
    )
    def test_keeping_secrets_for_a_new_destination_is_422_naming_each(
        self, admin: Admin, sqlite_engine: Engine, change: dict[str, Any]
    ) -> None:
        assert admin.put("main", body()).status_code == 200
        before = stored_document(sqlite_engine, "main")
        extra = {"password": "pw-new-1"} if change.get("auth") == "password" else {}
        problem = assert_problem(admin.put("main", body(**KEPT, **change, **extra)), 422, *KEPT_FIELDS)
        assert "must be sent again" in problem["errors"]["client_secret"][0]
        assert next(iter(change)) in problem["errors"]["client_secret"][0]
        assert stored_document(sqlite_engine, "main") == before

    def test_one_secret_kept_is_named_alone(self, admin: Admin) -> None:
        assert admin.put("main", body()).status_code == 200
        moved = body(base_url="https://openplat-bj-aliyun.haier.net", client_secret="set")
        problem = assert_problem(admin.put("main", moved), 422, "client_secret")
        assert set(problem["errors"]) == {"client_secret"}

    def test_a_new_destination_with_every_secret_sent_again_is_stored(
        self, admin: Admin, sqlite_engine: Engine, context: AppContext
    ) -> None:
        assert admin.put("main", body()).status_code == 200
        moved = body(base_url="https://openplat-bj-aliyun.haier.net", client_secret="cs-new-2")
        assert admin.put("main", moved).status_code == 200
        tools = context.upstream_configs
        assert tools is not None
        opened = open_document(stored_document(sqlite_engine, "main"), tools.box)
        assert (opened["base_url"], opened["client_secret"]) == (moved["base_url"], "cs-new-2")

    def test_what_get_shows_can_be_sent_back_as_is(self, admin: Admin) -> None:
        """The defaulted token_url shown by GET is the same destination, not a new one."""
        assert admin.put("main", body()).status_code == 200
        shown = admin.get("main").json
        assert shown["token_url"] == BASE + "/oauth2/auth"
        r = admin.put("main", body(**KEPT, token_url=shown["token_url"], base_url=BASE + "/"))
        assert r.status_code == 200, r.json

    def test_any_change_drops_the_stored_token(
        self, admin: Admin, sqlite_engine: Engine, context: AppContext
    ) -> None:
        assert admin.put("main", body()).status_code == 200
        tools = context.upstream_configs
        assert tools is not None
        store = SqlTokenStore(sqlite_engine, tools.box)
        token = Token("tok-API-SECRET-1", datetime.now(UTC) + timedelta(hours=1))
        store.obtain("main", lambda: token, refresh_before_s=0, now=datetime.now(UTC))
        assert store.current("main") == token
        assert admin.put("main", body(**KEPT, rate_limit_per_s=10)).status_code == 200
        assert store.current("main") is None


class TestValidation:
    def test_missing_required_fields_are_named(self, admin: Admin) -> None:
        problem = assert_problem(admin.put("main", {"is_active": True}), 422)
        for field in ("base_url", "auth", "client_id", "client_secret"):
            assert field in problem["errors"], problem

    def test_every_bad_field_is_named_at_once(self, admin: Admin) -> None:
        bad = body(
            auth="magic",
            auth_scheme="Basic",
            rate_limit_per_s=1000,
            timeouts={"connect_s": -1, "read_s": 30},
            token_refresh_before_s=7200,
        )
        assert_problem(
            admin.put("main", bad),
            422,
            "auth",
            "auth_scheme",
            "rate_limit_per_s",
            "timeouts.connect_s",
            "token_refresh_before_s",
        )

    def test_password_flow_needs_its_fields(self, admin: Admin) -> None:
        assert_problem(admin.put("main", body(auth="password")), 422, "token_url", "username", "password")

    def test_an_unknown_field_is_refused(self, admin: Admin) -> None:
        assert_problem(admin.put("main", body(secret_sauce=1)), 422, "secret_sauce")

    @pytest.mark.parametrize("name", ["bad name", "x" * 65, "semi;colon"])
    def test_a_bad_name_is_refused(self, admin: Admin, name: str) -> None:
        assert_problem(admin.put(name, body()), 422, "name")

    def test_one_active_config_at_a_time(self, admin: Admin) -> None:
        assert admin.put("first", body()).status_code == 200
        assert admin.put("second", body()).status_code == 200
        assert admin.get("first").json["is_active"] is False
        assert admin.get("second").json["is_active"] is True


SSRF_URLS = [
    "http://169.254.169.254",
    "http://169.254.169.254/latest/meta-data/",
    "http://2130706433",
    "http://0x7f.1",
    "http://0177.0.0.1",
    "http://[::ffff:127.0.0.1]",
    "http://[::1]",
    "https://good@evil.example",
    "https://user:pw@openplat-test.haier.net",
    "file:///etc/passwd",
    "gopher://x",
    "ftp://openplat-test.haier.net",
    "http://127.0.0.1",
    "http://localhost:8099",
    "https://10.0.0.8",
    "https://192.168.1.1",
    "https://[fd00:ec2::254]",
    "http://openplat-test.haier.net",  # plain http to a public host
]


class TestSsrf:
    @pytest.mark.parametrize("url", SSRF_URLS)
    @pytest.mark.parametrize("field", ["base_url", "token_url"])
    def test_refused_with_a_clear_error_and_nothing_stored(self, admin: Admin, field: str, url: str) -> None:
        problem = assert_problem(admin.put("main", body(**{field: url})), 422, field)
        assert all(m for m in problem["errors"][field])
        assert_problem(admin.get("main"), 404)

    def test_a_name_resolving_to_a_private_address_is_refused(
        self, admin: Admin, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        real = socket.getaddrinfo

        def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host == "jsh.internal.example":
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.20.30.40", port))]
            return real(host, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", resolve)
        problem = assert_problem(
            admin.put("main", body(base_url="https://jsh.internal.example")), 422, "base_url"
        )
        assert "10.20.30.40" in problem["errors"]["base_url"][0]

    def test_loopback_is_allowed_only_when_the_settings_say_so(
        self,
        admin: Admin,
        keys: dict[str, str],
        sqlite_engine: Engine,
        balances: FakeBalanceProvider,
        clock: FakeClock,
        tmp_path: Path,
        canary: Canary,
    ) -> None:
        canary_url = canary.url
        assert_problem(admin.put("local", body(base_url=canary_url)), 422, "base_url")
        emulator_app = loopback_app(sqlite_engine, balances, clock, tmp_path)
        local = Admin(emulator_app.test_client(), keys)
        r = local.put("local", body(base_url=canary_url))
        assert r.status_code == 200, r.json
        assert local.get("local").json["token_url"] == canary_url + "/oauth2/auth"
        for url in (
            "http://169.254.169.254",
            "http://0x7f.1",
            "https://good@evil.example",
            "file:///etc/passwd",
        ):
            assert_problem(local.put("other", body(base_url=url)), 422, "base_url")
        local.assert_no_secret_answered()
        assert canary.hits == []  # validating a URL never calls it


def loopback_app(engine: Engine, balances: FakeBalanceProvider, clock: FakeClock, tmp_path: Path) -> Flask:
    settings = Settings(
        instance_path=tmp_path / "instance", database_url=str(engine.url), allow_loopback_urls=True
    )
    return create_app(
        bootstrap(settings, balances=balances, clock=clock, engine=engine, database_clock=clock),
        {"TESTING": True},
    )


class Canary:
    """A loopback HTTP server that records every request it gets: the proof nothing was called."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        hits = self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(204)
                self.end_headers()

            do_POST = do_GET

            def log_message(self, *args: Any) -> None: ...

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def canary() -> Iterator[Canary]:
    c = Canary()
    c.thread.start()
    yield c
    c.server.shutdown()
    c.server.server_close()
