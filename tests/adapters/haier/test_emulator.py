"""The emulator on its own (Flask test client) and with the real provider on a real loopback port."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from adapters.haier.balance_client import BALANCE_PATH
from adapters.haier.balance_provider import HaierBalanceProvider
from adapters.haier.config import HaierConfig
from adapters.haier.emulator import create_emulator_app
from adapters.haier.retry import RetryPolicy
from adapters.haier.token_store import InMemoryTokenStore
from creditctl.ports.balance_provider import BalanceUnavailable

pytestmark = pytest.mark.adapters

DEMO = "8800633175"
CLIENT_BODY = {"client_id": "demo-client", "client_secret": "demo-secret", "grant_type": "client_credentials"}


class Emulator:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.client = app.test_client()
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def fault(self, **body: Any) -> None:
        assert self.client.post("/_emulator/faults", json=body).status_code == 200

    def stats(self) -> dict[str, Any]:
        return self.client.get("/_emulator/stats").get_json()

    def provider(self, **overrides: Any) -> HaierBalanceProvider:
        body = {
            "base_url": self.base,
            "auth": "client_credentials",
            "client_id": "demo-client",
            "client_secret": "demo-secret",
            "auth_scheme": "Bearer",
            "customers": {DEMO: "demo-175", "8800633176": "demo-176"},
            "is_active": True,
            **overrides,
        }
        config = HaierConfig.from_dict(body, allow_loopback=True)
        return HaierBalanceProvider(
            config,
            token_store=InMemoryTokenStore(),
            config_name="emulator",
            allow_loopback=True,
            retry_policy=RetryPolicy(base_s=0.01),
        )


@pytest.fixture
def emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    kwargs = getattr(request, "param", {})
    running = Emulator(create_emulator_app(**kwargs))
    yield running
    running.server.shutdown()
    running.server.server_close()


@pytest.fixture
def client() -> Any:
    return create_emulator_app(rate_limit_per_s=3).test_client()


def token_of(client: Any) -> str:
    return client.post("/oauth2/auth", json=CLIENT_BODY).get_json()["access_token"]


class TestEmulatorEndpoints:
    def test_client_credentials_on_both_paths(self, client) -> None:
        for path in ("/oauth2/auth", "/oauth2/token"):
            answer = client.post(path, json=CLIENT_BODY).get_json()
            assert answer["expires_in"] == 3600 and answer["access_token"]

    def test_wrong_client_secret_is_refused_without_echo(self, client) -> None:
        answer = client.post("/oauth2/auth", json={**CLIENT_BODY, "client_secret": "guess-123"})
        assert answer.status_code == 401
        assert b"guess-123" not in answer.data

    def test_password_grant_needs_basic_and_system_name(self, client) -> None:
        basic = base64.b64encode(b"demo-client:demo-secret").decode()
        form = {"grant_type": "password", "username": "demo-user", "password": "demo-password"}
        ok = client.post(
            "/oauth/token",
            data=form,
            headers={"system-name": "ylh-open-api", "Authorization": f"Basic {basic}"},
        )
        assert ok.status_code == 200 and ok.get_json()["access_token"]
        assert (
            client.post("/oauth/token", data=form, headers={"Authorization": f"Basic {basic}"}).status_code
            == 401
        )

    def test_balance_answers_the_documented_envelope(self, client) -> None:
        answer = client.post(
            BALANCE_PATH,
            json={"customerCode": DEMO, "customerPassword": "demo-175"},
            headers={"Authorization": f"Bearer {token_of(client)}"},
        ).get_json()
        assert set(answer) == {"success", "code", "description", "timeStamp", "data"}
        assert answer["success"] is True
        assert [e["payerAccountBalance"] for e in answer["data"]] == ["1250000.00", "38000.50"]

    def test_balance_needs_a_valid_token(self, client) -> None:
        body = {"customerCode": DEMO, "customerPassword": "demo-175"}
        assert (
            client.post(BALANCE_PATH, json=body, headers={"Authorization": "Bearer forged"}).status_code
            == 401
        )

    def test_a_wrong_customer_password_is_a_business_refusal(self, client) -> None:
        answer = client.post(
            BALANCE_PATH,
            json={"customerCode": DEMO, "customerPassword": "nope-999"},
            headers={"Authorization": token_of(client)},  # the bare token works too
        )
        assert answer.status_code == 200
        assert answer.get_json()["success"] is False
        assert b"nope-999" not in answer.data

    def test_rate_limit_answers_429_with_retry_after(self, client) -> None:
        statuses = [client.post("/oauth2/auth", json=CLIENT_BODY).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        assert client.post("/oauth2/auth", json=CLIENT_BODY).headers["Retry-After"] == "1"

    def test_set_a_balance_and_read_stats(self, client) -> None:
        new_balance = {"customerCode": DEMO, "saleGroupCode": "1001", "payerAccountBalance": "-5.25"}
        assert client.post("/_emulator/balances", json=new_balance).status_code == 200
        answer = client.post(
            BALANCE_PATH,
            json={"customerCode": DEMO, "customerPassword": "demo-175"},
            headers={"Authorization": f"Bearer {token_of(client)}"},
        ).get_json()
        assert answer["data"][0]["payerAccountBalance"] == "-5.25"
        stats = client.get("/_emulator/stats").get_json()
        assert (stats["token_calls"], stats["balance_calls"]) == (1, 1)
        assert "demo-secret" not in str(stats) and "demo-175" not in str(stats)

    def test_faults_are_validated(self, client) -> None:
        assert client.post("/_emulator/faults", json={"mode": "explode"}).status_code == 400
        assert client.post("/_emulator/faults", json={"mode": "503", "count": 0}).status_code == 400
        assert client.post("/_emulator/faults", json={"mode": "503", "count": 2}).get_json()["remaining"] == 2

    def test_only_the_configured_token_path_exists(self) -> None:
        client = create_emulator_app(token_paths=["/oauth2/token"]).test_client()
        assert client.post("/oauth2/auth", json=CLIENT_BODY).status_code == 404
        assert client.post("/oauth2/token", json=CLIENT_BODY).status_code == 200


class TestProviderAgainstTheEmulator:
    def test_happy_path(self, emulator: Emulator) -> None:
        report = emulator.provider().fetch(DEMO, timeout_s=5)
        assert [(a.sale_group_code, a.amount) for a in report.accounts] == [
            ("1001", Decimal("1250000.00")),
            ("1002", Decimal("38000.50")),
        ]
        assert emulator.provider().fetch("8800633176", timeout_s=5).accounts[0].amount == Decimal("-1520.75")

    @pytest.mark.parametrize(
        "emulator",
        [{"token_paths": ["/oauth2/token"]}, {"token_paths": ["/oauth2/token"], "token_in_data": True}],
        indirect=True,
    )
    def test_falls_back_to_the_token_path_that_exists(self, emulator: Emulator) -> None:
        provider = emulator.provider()
        provider.fetch(DEMO, timeout_s=5)
        provider.fetch(DEMO, timeout_s=5)
        assert emulator.stats()["token_calls_by_path"] == {"/oauth2/token": 1}

    def test_password_grant(self, emulator: Emulator) -> None:
        provider = emulator.provider(
            auth="password",
            token_url=emulator.base + "/oauth/token",
            username="demo-user",
            password="demo-password",
        )
        assert provider.fetch(DEMO, timeout_s=5).accounts

    def test_a_503_is_retried(self, emulator: Emulator) -> None:
        emulator.fault(mode="503", count=1)
        assert emulator.provider().fetch(DEMO, timeout_s=5).accounts
        assert emulator.stats()["balance_calls"] == 2

    def test_revoked_tokens_are_replaced_once(self, emulator: Emulator) -> None:
        provider = emulator.provider()
        provider.fetch(DEMO, timeout_s=5)
        emulator.fault(mode="revoke_tokens")
        provider.fetch(DEMO, timeout_s=5)
        stats = emulator.stats()
        assert (stats["token_calls"], stats["balance_calls"]) == (2, 3)

    def test_a_reset_mid_body_is_retried(self, emulator: Emulator) -> None:
        emulator.fault(mode="reset", count=1)
        assert emulator.provider().fetch(DEMO, timeout_s=5).accounts

    @pytest.mark.parametrize(
        ("mode", "code"),
        [
            ("malformed", "UPSTREAM_MALFORMED"),
            ("wrong_password", "BALANCE_QUERY_FAILED"),
            ("401", "AUTH_FAILED"),
        ],
    )
    def test_faults_become_stable_codes(self, emulator: Emulator, mode: str, code: str) -> None:
        emulator.fault(mode=mode)
        with pytest.raises(BalanceUnavailable) as caught:
            emulator.provider().fetch(DEMO, timeout_s=5)
        assert caught.value.code == code

    def test_a_hanging_upstream_is_cut_at_the_deadline(self, emulator: Emulator) -> None:
        emulator.fault(mode="timeout", delay_s=2)
        started = time.monotonic()
        with pytest.raises(BalanceUnavailable) as caught:
            emulator.provider().fetch(DEMO, timeout_s=0.4)
        assert caught.value.code == "UPSTREAM_TIMEOUT"
        assert time.monotonic() - started < 1.0

    def test_a_slow_token_endpoint_within_the_deadline(self, emulator: Emulator) -> None:
        emulator.fault(mode="slow", target="token", delay_s=0.2)
        started = time.monotonic()
        assert emulator.provider().fetch(DEMO, timeout_s=2).accounts
        assert 0.2 <= time.monotonic() - started < 2

    def test_unknown_customer_never_reaches_the_emulator(self, emulator: Emulator) -> None:
        with pytest.raises(BalanceUnavailable) as caught:
            emulator.provider().fetch("8800000000", timeout_s=5)
        assert caught.value.code == "UNKNOWN_CUSTOMER"
        assert emulator.stats()["token_calls"] == 0


def test_run_emulator_serves_threaded(monkeypatch: pytest.MonkeyPatch) -> None:
    import adapters.haier.emulator as module

    seen: dict[str, Any] = {}
    monkeypatch.setattr(
        module, "run_simple", lambda host, port, app, **kw: seen.update(host=host, port=port, **kw)
    )
    module.run_emulator("127.0.0.1", 8123, rate_limit_per_s=5)
    assert (seen["host"], seen["port"], seen["threaded"]) == ("127.0.0.1", 8123, True)
