"""The service wired for haier as bootstrap wires it, against the emulator over HTTP (reliability 7 and 8):
decisions through the API, every approval shown to the outside books, whose ledger is the emulator's."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import Engine

from adapters.bootstrap import Settings, bootstrap
from adapters.fake.clock import FakeClock
from adapters.web.app import create_app
from creditctl.services.api_keys import create_api_key
from creditctl.services.context import AppContext
from creditctl.services.customers import register_customer
from tests.adapters.haier_support import (
    ACCOUNTS_175,
    CUSTOMER,
    EmulatorServer,
    config_document,
    known_emulator_app,
    serving,
)
from tests.ledger_upstream import LedgerUpstream
from tests.outside_checker import OutsideBooks

DEADLINE_S = 1.5
# An answer within DEADLINE_S + SLACK_S is one that did not wait for the hanging faults (4 s): the slack is
# wide because a loaded CI machine once took 0.6 s more than the deadline to answer, which proved nothing.
SLACK_S = 2.0
GROUP = "1002"  # 38000.50 at the emulator


@dataclass
class Service:
    app: Flask
    ctx: AppContext
    clock: FakeClock
    emulator: EmulatorServer
    key: str
    books: OutsideBooks
    engine: Engine
    first_order_id: str = ""
    _breaker_now: list[float] = field(default_factory=lambda: [0.0])

    def decide(self, amount: str = "100.00") -> tuple[dict[str, Any], float]:
        """One new order through the API: its answer (201, checked) and how long it took."""
        body = {
            "order_id": f"order-{uuid.uuid4().hex[:8]}",
            "customer_code": CUSTOMER,
            "sale_group_code": GROUP,
        }
        started = time.monotonic()
        r = self.app.test_client().post(
            "/v1/decisions", json=body | {"amount": amount}, headers={"Authorization": f"Bearer {self.key}"}
        )
        elapsed = time.monotonic() - started
        assert r.status_code == 201, r.json
        if r.json["outcome"] == "approve":
            self.books.approval(r.json["order_id"], (CUSTOMER, GROUP), Decimal(r.json["amount"]))
        return r.json, elapsed

    def upstream_reasons(self, decision: dict[str, Any]) -> list[str]:
        return [r["reason"] for r in decision["reasons"] if r["rule"] == "upstream"]

    def breaker(self) -> Any:
        """The haier provider's breaker, its clock (a test-only replacement) moved by `cool_down`."""
        provider = self.ctx.status["haier_breaker"].__self__.current()  # type: ignore[attr-defined]
        if provider.breaker._monotonic is not self._breaker_clock:
            provider.breaker._monotonic = self._breaker_clock
        return provider.breaker

    def _breaker_clock(self) -> float:
        return self._breaker_now[0]

    def cool_down(self, seconds: float) -> None:
        self._breaker_now[0] += seconds


@contextmanager
def haier_service(engine: Engine, tmp_path: Path) -> Iterator[Service]:
    """The emulator served, the service configured for it, a first decision made (token and snapshot)."""
    clock = FakeClock(datetime.fromisoformat("2026-11-27T08:00:00+00:00"))
    settings = Settings(
        instance_path=tmp_path / "instance",
        database_url=str(engine.url),
        balance_provider="haier",
        allow_loopback_urls=True,
        decision_deadline_s=DEADLINE_S,
    )
    ledger = LedgerUpstream()
    for entry in ACCOUNTS_175:  # the emulator's balances: the ledger of record
        ledger.open_account(CUSTOMER, entry["saleGroupCode"], Decimal(entry["payerAccountBalance"]))
    with serving(known_emulator_app()) as emulator:
        ctx = bootstrap(settings, clock=clock, engine=engine, database_clock=clock)
        admin = create_api_key(name="a", role="admin", customers=None, uow=ctx.uow(), clock=clock).secret
        orders = create_api_key(name="o", role="orders", customers=None, uow=ctx.uow(), clock=clock).secret
        app = create_app(ctx, {"TESTING": True})
        put = app.test_client().put(
            "/v1/admin/haier/configs/emu",
            json=config_document(emulator.url),
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert put.status_code == 200, put.json
        register_customer(CUSTOMER, uow=ctx.uow(), clock=clock)
        svc = Service(app, ctx, clock, emulator, orders, OutsideBooks(ledger), engine)
        first, _ = svc.decide()
        assert first["outcome"] == "approve"
        svc.first_order_id = first["order_id"]
        svc.breaker()  # its clock is the test's from here on
        yield svc
        emulator.fault("none")
        emulator.echo.mode = None
        emulator.echo.canned = None


class Canary:
    """A loopback server that only counts the requests it gets: a redirect followed would show here."""

    def __init__(self) -> None:
        hits = self.hits = [0]

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits[0] += 1
                self.send_response(200)
                self.end_headers()

            do_POST = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
