"""Reliability 7 and 8 at the service's edge: decisions through the API, wired for haier as bootstrap wires
it, against the emulator over HTTP with each fault switched on. Nothing is approved on a balance that
cannot be verified; every answer comes within the decision deadline; the upstream failure is named in
the reasons; once the breaker is open, 100 decisions send nothing upstream and say CIRCUIT_OPEN ("not
sent"), which is told apart from UPSTREAM_TIMEOUT ("outcome unknown")."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from adapters.bootstrap import Settings, bootstrap
from adapters.fake.clock import FakeClock
from adapters.web.app import create_app
from creditctl.services.api_keys import create_api_key
from creditctl.services.balances import UPSTREAM_MESSAGES
from creditctl.services.customers import register_customer
from tests.adapters.haier_support import (
    CUSTOMER,
    EmulatorServer,
    config_document,
    known_emulator_app,
    serving,
)

pytestmark = pytest.mark.adapters

DEADLINE_S = 1.5
SLACK_S = 0.6
GROUP = "1002"  # 38000.50 at the emulator


@dataclass
class Service:
    client: FlaskClient
    clock: FakeClock
    emulator: EmulatorServer
    key: str

    def decide(self, amount: str = "100.00") -> tuple[dict[str, Any], float]:
        body = {
            "order_id": f"order-{uuid.uuid4().hex[:8]}",
            "customer_code": CUSTOMER,
            "sale_group_code": GROUP,
        }
        started = time.monotonic()
        r = self.client.post(
            "/v1/decisions", json=body | {"amount": amount}, headers={"Authorization": f"Bearer {self.key}"}
        )
        elapsed = time.monotonic() - started
        assert r.status_code == 201, r.json
        return r.json, elapsed

    def upstream_reasons(self, decision: dict[str, Any]) -> list[str]:
        return [r["reason"] for r in decision["reasons"] if r["rule"] == "upstream"]


@pytest.fixture
def service(sqlite_engine: Engine, tmp_path: Path) -> Iterator[Service]:
    clock = FakeClock(datetime.fromisoformat("2026-11-27T08:00:00+00:00"))
    settings = Settings(
        instance_path=tmp_path / "instance",
        database_url=str(sqlite_engine.url),
        balance_provider="haier",
        allow_loopback_urls=True,
        decision_deadline_s=DEADLINE_S,
    )
    with serving(known_emulator_app()) as emulator:
        ctx = bootstrap(settings, clock=clock, engine=sqlite_engine, database_clock=clock)
        admin = create_api_key(name="a", role="admin", customers=None, uow=ctx.uow(), clock=clock).secret
        orders = create_api_key(name="o", role="orders", customers=None, uow=ctx.uow(), clock=clock).secret
        client = create_app(ctx, {"TESTING": True}).test_client()
        put = client.put(
            "/v1/admin/haier/configs/emu",
            json=config_document(emulator.url),
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert put.status_code == 200, put.json
        register_customer(CUSTOMER, uow=ctx.uow(), clock=clock)
        svc = Service(client, clock, emulator, orders)
        first, _ = svc.decide()  # a token, and a snapshot of every payer account
        assert first["outcome"] == "approve"
        yield svc
        emulator.fault("none")
        emulator.echo.mode = None


FAULTS = [
    # (fault switched on, its options, the upstream reason the deferred decision gives)
    ("timeout", {"delay_s": 4}, {"UPSTREAM_TIMEOUT"}),
    ("500", {}, {"SERVICE_UNAVAILABLE"}),
    ("503", {}, {"SERVICE_UNAVAILABLE"}),
    ("429", {}, {"RATE_LIMITED", "UPSTREAM_TIMEOUT"}),  # Retry-After 1 s, three times: past 1.5 s
    ("reset", {}, {"SERVICE_UNAVAILABLE"}),
    ("malformed", {}, {"UPSTREAM_MALFORMED"}),
    ("401", {}, {"AUTH_FAILED"}),
    ("wrong_password", {}, {"BALANCE_QUERY_FAILED"}),
]


@pytest.mark.parametrize(("mode", "options", "expected"), FAULTS, ids=[f[0] for f in FAULTS])
def test_no_approval_on_an_unverifiable_balance_and_an_answer_within_the_deadline(
    service: Service, mode: str, options: dict[str, Any], expected: set[str]
) -> None:
    service.clock.advance(2000)  # the stored snapshot is older than max_balance_age_s
    service.emulator.fault(mode, **options)
    decision, elapsed = service.decide()
    assert decision["outcome"] == "defer"
    assert decision["hold"] is None
    assert elapsed < DEADLINE_S + SLACK_S
    assert "BALANCE_UNAVAILABLE" in [r["reason"] for r in decision["reasons"]]
    assert set(service.upstream_reasons(decision)) <= expected and service.upstream_reasons(decision)


def test_a_slow_token_endpoint_is_cut_at_the_deadline(service: Service) -> None:
    service.clock.advance(2000)
    service.emulator.fault("revoke_tokens")
    service.emulator.fault("slow", target="token", delay_s=4)
    decision, elapsed = service.decide()
    assert decision["outcome"] == "defer"
    assert elapsed < DEADLINE_S + SLACK_S
    assert service.upstream_reasons(decision) == ["UPSTREAM_TIMEOUT"]


def test_a_young_enough_snapshot_carries_decisions_through_a_failing_upstream(service: Service) -> None:
    service.clock.advance(900)  # stale for refresh_after_s, usable under max_balance_age_s
    service.emulator.fault("503", target="all")
    decision, elapsed = service.decide("1000.00")
    assert decision["outcome"] == "approve"
    assert decision["balance"]["amount"] == "38000.50"
    assert elapsed < DEADLINE_S + SLACK_S


def test_an_open_breaker_sends_nothing_and_says_so(service: Service) -> None:
    service.clock.advance(2000)
    service.emulator.fault("503", target="all")
    tripping, _ = service.decide()
    assert service.upstream_reasons(tripping) == ["SERVICE_UNAVAILABLE"]  # the original error
    sent = service.emulator.stats()["balance_calls"]
    started = time.monotonic()
    for _ in range(100):
        service.clock.advance(3)  # past the shared error's reuse window: each decision asks again
        decision, _ = service.decide()
        assert decision["outcome"] == "defer"
        assert service.upstream_reasons(decision) == ["CIRCUIT_OPEN"]
    assert service.emulator.stats()["balance_calls"] == sent
    assert time.monotonic() - started < 10
    assert UPSTREAM_MESSAGES["CIRCUIT_OPEN"] != UPSTREAM_MESSAGES["UPSTREAM_TIMEOUT"]
    ready = service.client.get("/readyz").json
    assert ready["upstream"]["haier_breaker"] == "open"


def test_the_service_approves_again_once_the_upstream_heals(service: Service) -> None:
    service.clock.advance(2000)
    service.emulator.fault("malformed", count=1)
    assert service.decide()[0]["outcome"] == "defer"
    service.clock.advance(3)
    decision, _ = service.decide()
    assert decision["outcome"] == "approve"
    assert decision["balance"]["fetched_at"].startswith(service.clock.now().isoformat()[:19])
