"""Reliability 8: the circuit breaker at the service's edge (haier wired as bootstrap wires it, the
emulator over HTTP, PostgreSQL: concurrent callers each on a connection of their own).

N consecutive failures open it and the call that trips it reports the original error; the next 100
decisions reach the upstream zero times and say CIRCUIT_OPEN ("not sent"); after the cooldown, 20 callers
at once send exactly one probe; 4xx answers and business refusals never count as failures. Nothing is
approved while the balance cannot be verified; both checkers after each.

The breaker's cooldown runs on the monotonic clock it was given; the test gives it one it moves
(`Service.cool_down`), so no test waits 30 s. The breaker itself, thread by thread, is also tested in
tests/adapters/haier/test_resilience.py and test_building_blocks.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.adapters.concurrency import all_at_once
from tests.reliability.checkers import assert_checkers
from tests.reliability.haier_service import Service, haier_service

pytestmark = [pytest.mark.adapters, pytest.mark.postgres]

COOLDOWN_S = 30.0  # the provider's default


@pytest.fixture
def service(pg: Engine, tmp_path: Path) -> Iterator[Service]:
    with haier_service(pg, tmp_path) as svc:
        yield svc


def trip(service: Service) -> list[str]:
    """Fail until the breaker opens; the upstream reasons of each decision on the way."""
    service.clock.advance(2000)  # the stored snapshot is older than max_balance_age_s
    service.emulator.fault("503", target="all")
    seen = []
    for _ in range(5):
        decision, _ = service.decide()
        assert decision["outcome"] == "defer" and decision["hold"] is None
        seen.append(service.upstream_reasons(decision))
        if service.breaker().state == "open":
            return [r for reasons in seen for r in reasons]
        service.clock.advance(3)  # past the shared error's reuse window: each decision asks again
    raise AssertionError(f"the breaker never opened: {seen}")


def test_failures_open_it_and_the_next_hundred_calls_send_nothing_and_say_so(service: Service) -> None:
    reasons = trip(service)
    assert set(reasons) == {"SERVICE_UNAVAILABLE"}  # the tripping call too: the original error
    sent = service.emulator.stats()["balance_calls"]
    for _ in range(100):
        service.clock.advance(3)
        decision, _ = service.decide()
        assert decision["outcome"] == "defer"
        assert service.upstream_reasons(decision) == ["CIRCUIT_OPEN"]
    assert service.emulator.stats()["balance_calls"] == sent
    assert service.app.test_client().get("/readyz").json["upstream"]["haier_breaker"] == "open"
    assert_checkers(service.engine, service.books)


def test_after_the_cooldown_twenty_callers_at_once_send_exactly_one_probe(service: Service) -> None:
    trip(service)
    service.emulator.fault("none")
    service.emulator.fault("slow", delay_s=0.5, count=1)  # back, but slow to answer the probe
    sent = service.emulator.stats()["balance_calls"]
    service.cool_down(COOLDOWN_S + 1)
    service.clock.advance(3)

    results = all_at_once(20, lambda _: service.decide()[0])
    errors = [r.error for r in results if r.error is not None]
    assert not errors, errors[0]
    assert service.emulator.stats()["balance_calls"] == sent + 1, "not exactly one probe"
    outcomes = Counter(r.value["outcome"] for r in results)
    assert outcomes["approve"] >= 1, outcomes  # the probe's caller, at least, decided on its answer
    for r in results:  # the others failed fast, or shared the probe's answer
        if r.value["outcome"] != "approve":
            assert service.upstream_reasons(r.value) == ["CIRCUIT_OPEN"], r.value["reasons"]
    assert service.breaker().state == "closed"
    assert_checkers(service.engine, service.books)


@pytest.mark.parametrize("refusal", ["wrong_password", "401"])
def test_client_errors_and_business_refusals_never_count(service: Service, refusal: str) -> None:
    service.clock.advance(2000)
    service.emulator.fault(refusal)
    for _ in range(10):
        decision, _ = service.decide()
        assert decision["outcome"] == "defer" and decision["hold"] is None
        assert "CIRCUIT_OPEN" not in service.upstream_reasons(decision)
        service.clock.advance(3)
    assert service.breaker().state == "closed"
    service.emulator.fault("none")
    healed, _ = service.decide()
    assert healed["outcome"] == "approve", healed["reasons"]
    assert_checkers(service.engine, service.books)
