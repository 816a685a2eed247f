"""Reliability item 12, SSRF on every URL the service is configured to call (OWASP API7).

Through the API, as an administrator would: the Haier config's base_url and token_url and a webhook
subscription's url, each set to every address of the list in reliability-tests.md, plus a name that
resolves to a private address and the canary itself (loopback). Each is refused with 422 naming the field
and nothing is stored. Then, on a server that allows loopback (a local emulator, as configured), a Haier
config and a webhook pointing at a redirector that answers 302 to the canary: the balance fetch and the
delivery are made, but the redirect is never followed. A canary server on loopback records zero hits
throughout. (The connection-time guard against a name that resolves differently later, DNS rebinding, is
tests/adapters/haier/test_guarded_adapter.py.)
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, func, select

from adapters.bootstrap import Settings, bootstrap
from adapters.fake.clock import FakeClock
from adapters.sql.tables import upstream_configs, webhook_subscriptions
from adapters.web.app import create_app
from creditctl.services.api_keys import create_api_key
from creditctl.services.customers import register_customer
from creditctl.services.webhook_delivery import deliver_round
from tests.adapters.haier_support import CUSTOMER, config_document

pytestmark = pytest.mark.api

PRIVATE_NAME = "intranet.creditctl-test.example"  # made to resolve to 10.0.0.7 below


class Canary(http.server.ThreadingHTTPServer):
    """Records every request; with redirect_to set, answers each with a 302 there."""

    hits: list[str]
    redirect_to: str | None = None


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Canary

    def _answer(self) -> None:
        self.server.hits.append(f"{self.command} {self.path}")
        self.send_response(302 if self.server.redirect_to else 204)
        if self.server.redirect_to:
            self.send_header("Location", self.server.redirect_to)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(redirect_to: str | None = None) -> Canary:
    server = Canary(("127.0.0.1", 0), _Handler)
    server.hits = []
    server.redirect_to = redirect_to
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return server


@pytest.fixture
def canary() -> Iterator[Canary]:
    server = _serve()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def redirector(canary: Canary) -> Iterator[Canary]:
    """Redirects every request to the canary (as a hostile upstream or receiver would, to loopback)."""
    server = _serve(f"http://127.0.0.1:{canary.server_port}/latest/meta-data/")
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def private_name(monkeypatch: pytest.MonkeyPatch) -> str:
    real = socket.getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == PRIVATE_NAME:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port or 443))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return PRIVATE_NAME


def hostile_urls(canary: Canary) -> list[str]:
    return [
        "http://169.254.169.254",
        "https://169.254.169.254/latest/meta-data/",
        "http://2130706433",
        "https://2130706433",
        "http://0x7f.1",
        "https://0x7f.1",
        "http://[::ffff:127.0.0.1]",
        "https://[::ffff:127.0.0.1]",
        "https://good@evil.example",
        "file:///etc/passwd",
        "gopher://127.0.0.1:25/_HELO",
        f"https://{PRIVATE_NAME}",
        f"http://{PRIVATE_NAME}",
        f"http://127.0.0.1:{canary.server_port}",  # loopback, on a server not configured for an emulator
        f"http://localhost:{canary.server_port}",
    ]


def app_for(engine: Engine, clock: FakeClock, tmp_path: Path, *, loopback: bool) -> Flask:
    settings = Settings(
        instance_path=tmp_path / "instance",
        database_url=str(engine.url),
        allow_loopback_urls=loopback,
        balance_provider="haier",
    )
    ctx = bootstrap(settings, clock=clock, engine=engine, database_clock=clock)  # the Haier provider
    return create_app(ctx, {"TESTING": True})


def admin_headers(app: Flask) -> dict[str, str]:
    ctx = app.extensions["creditctl"]
    key = create_api_key(name="ssrf-admin", role="admin", customers=None, uow=ctx.uow(), clock=ctx.clock)
    return {"Authorization": f"Bearer {key.secret}"}


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_every_hostile_url_is_refused_in_every_configured_field_and_the_canary_is_never_called(
    sqlite_engine: Engine,
    clock: FakeClock,
    tmp_path: Path,
    canary: Canary,
    private_name: str,
) -> None:
    app = app_for(sqlite_engine, clock, tmp_path, loopback=False)
    client, headers = app.test_client(), admin_headers(app)
    refused = []
    for url in hostile_urls(canary):
        for field, doc in (
            ("base_url", config_document(url)),
            ("token_url", config_document("https://haier.example.com", token_url=url)),
        ):
            r = client.put("/v1/admin/haier/configs/ssrf", json=doc, headers=headers)
            assert r.status_code == 422 and field in r.json["errors"], (url, field, r.json)
            refused.append(field)
        r = client.post("/v1/webhooks", json={"url": url, "events": ["upstream.down"]}, headers=headers)
        assert r.status_code == 422 and "url" in r.json["errors"], (url, r.json)
        refused.append("url")
    assert len(refused) == 3 * len(hostile_urls(canary))
    assert count(sqlite_engine, upstream_configs) == 0
    assert count(sqlite_engine, webhook_subscriptions) == 0
    assert canary.hits == []


def test_redirects_to_loopback_are_never_followed_by_the_upstream_client_or_the_webhook_sender(
    sqlite_engine: Engine,
    clock: FakeClock,
    tmp_path: Path,
    canary: Canary,
    redirector: Canary,
) -> None:
    """Loopback allowed (a local emulator), the configured URLs are a redirector's: the upstream's token
    call and the webhook delivery reach it, and neither follows its 302 to the canary."""
    app = app_for(sqlite_engine, clock, tmp_path, loopback=True)
    ctx = app.extensions["creditctl"]
    client, headers = app.test_client(), admin_headers(app)
    register_customer(CUSTOMER, uow=ctx.uow(), clock=clock)
    base = f"http://127.0.0.1:{redirector.server_port}"
    put = client.put("/v1/admin/haier/configs/redirecting", json=config_document(base), headers=headers)
    assert put.status_code == 200, put.json
    balance = client.get(f"/v1/balances/{CUSTOMER}?refresh=true", headers=headers)
    assert balance.status_code in (502, 503, 504), balance.json  # a redirect is an upstream failure
    made = client.post(
        "/v1/webhooks", json={"url": base + "/hook", "events": ["upstream.down"]}, headers=headers
    )
    assert made.status_code == 201, made.json
    with ctx.uow() as uow:
        uow.outbox.add(event_id="ssrf-1", topic="upstream.down", payload={}, now=uow.now())
        uow.commit()
    tools = ctx.webhooks
    assert tools is not None
    deliver_round(store=tools.store, notifier=tools.notifier, box=tools.box, policy=tools.policy)
    assert any(h.startswith("POST /hook") for h in redirector.hits), redirector.hits  # it was called...
    assert len(redirector.hits) >= 2, redirector.hits  # ...by the upstream client too
    assert canary.hits == []  # ...and no redirect was followed
