"""Reliability 7: the upstream fault matrix at the service's edge. Decisions through the API, wired for
haier as bootstrap wires it, against the emulator over HTTP with each fault switched on (the emulator's own
switches, or a canned answer in front of it for 502, NaN/huge/negative balances, redirects and a 10 MB
body). Nothing is approved on a balance that cannot be verified; every answer comes within the decision
deadline; the upstream failure is named in the reasons; no redirect is followed (a loopback canary counts
zero hits); "timed out, outcome unknown" is told apart from "breaker open, not sent" (test 8 has the
breaker). Both checkers after each: the emulator's balances are the outside ledger.

Provider-level detail (retries within their bound with jittered gaps, per-attempt timeouts shrinking to
the time left, a 401 on a good token refreshed once) is in tests/adapters/haier/test_balance_provider.py
and test_resilience.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from creditctl.services.balances import UPSTREAM_MESSAGES
from tests.reliability.checkers import assert_checkers
from tests.reliability.haier_service import DEADLINE_S, SLACK_S, Canary, Service, haier_service

pytestmark = pytest.mark.adapters


@pytest.fixture
def service(sqlite_engine: Engine, tmp_path: Path) -> Iterator[Service]:
    with haier_service(sqlite_engine, tmp_path) as svc:
        yield svc


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


def assert_deferred(svc: Service, decision: dict[str, Any], expected: set[str]) -> None:
    """Deferred, no hold, the balance named unavailable and the upstream failure named."""
    assert decision["outcome"] == "defer", decision
    assert decision["hold"] is None
    assert "BALANCE_UNAVAILABLE" in [r["reason"] for r in decision["reasons"]]
    reasons = svc.upstream_reasons(decision)
    assert reasons and set(reasons) <= expected, reasons


@pytest.mark.parametrize(("mode", "options", "expected"), FAULTS, ids=[f[0] for f in FAULTS])
def test_no_approval_on_an_unverifiable_balance_and_an_answer_within_the_deadline(
    service: Service, mode: str, options: dict[str, Any], expected: set[str]
) -> None:
    service.clock.advance(2000)  # the stored snapshot is older than max_balance_age_s
    service.emulator.fault(mode, **options)
    decision, elapsed = service.decide()
    assert_deferred(service, decision, expected)
    assert elapsed < DEADLINE_S + SLACK_S  # the hanging faults (4 s) are cut at the 1.5 s deadline
    assert_checkers(service.engine, service.books)


def envelope(balance: Any) -> bytes:
    entry = {
        "saleGroupCode": "1002", "saleGroupName": "x", "payerAccountCode": "8800633175",
        "payerAccountName": "x", "payerAccountBalance": balance,
    }  # fmt: skip
    return json.dumps({"success": True, "code": "200", "description": "ok", "data": [entry]}).encode()


JSON = [("Content-Type", "application/json")]
CANNED = [
    # (what the upstream answers, the upstream reasons the deferred decision may give)
    ("502", ("502 BAD GATEWAY", JSON, b'{"success": false, "code": "502"}'), {"SERVICE_UNAVAILABLE"}),
    ("NaN balance", ("200 OK", JSON, envelope("NaN")), {"UPSTREAM_MALFORMED"}),
    ("huge balance", ("200 OK", JSON, envelope("1" + "0" * 40 + ".00")), {"UPSTREAM_MALFORMED"}),
    ("balance as a float", ("200 OK", JSON, envelope(1e308)), {"UPSTREAM_MALFORMED"}),
    ("10 MB body", ("200 OK", JSON, b"[" + b" " * (10 * 1024 * 1024) + b"]"), {"UPSTREAM_MALFORMED"}),
]


@pytest.mark.parametrize(("answer", "expected"), [c[1:] for c in CANNED], ids=[c[0] for c in CANNED])
def test_answers_that_are_no_balance_defer_within_the_deadline(
    service: Service, answer: tuple[str, list[tuple[str, str]], bytes], expected: set[str]
) -> None:
    service.clock.advance(2000)
    service.emulator.echo.canned = answer
    decision, _ = service.decide()
    assert service.emulator.echo.canned_served >= 1
    assert_deferred(service, decision, expected)
    assert_checkers(service.engine, service.books)


def test_a_negative_balance_is_verified_and_approves_nothing(service: Service) -> None:
    release = service.app.test_client().post(
        f"/v1/decisions/{service.first_order_id}/release", headers={"Authorization": f"Bearer {service.key}"}
    )  # the first order's hold would exceed a balance that fell below it: the inside checker says so
    assert release.status_code == 200, release.json
    service.clock.advance(2000)
    service.emulator.echo.canned = ("200 OK", JSON, envelope("-1520.75"))
    decision, _ = service.decide()
    assert decision["outcome"] in ("freeze", "block") and decision["hold"] is None, decision
    assert decision["balance"]["amount"] == "-1520.75"
    assert_checkers(service.engine, service.books)


@pytest.mark.parametrize("where", ["loopback", "metadata"])
def test_a_redirect_is_never_followed(service: Service, where: str) -> None:
    canary = Canary()
    try:
        target = canary.url if where == "loopback" else "http://169.254.169.254/latest/meta-data/"
        service.clock.advance(2000)
        service.emulator.echo.canned = ("302 FOUND", [("Location", target)], b"")
        decision, _ = service.decide()
        assert_deferred(service, decision, {"UPSTREAM_MALFORMED"})
        assert canary.hits[0] == 0
    finally:
        canary.close()
    assert_checkers(service.engine, service.books)


def test_a_slow_token_endpoint_is_cut_at_the_deadline(service: Service) -> None:
    service.clock.advance(2000)
    service.emulator.fault("revoke_tokens")
    service.emulator.fault("slow", target="token", delay_s=4)
    decision, elapsed = service.decide()
    assert decision["outcome"] == "defer"
    assert elapsed < DEADLINE_S + SLACK_S
    assert service.upstream_reasons(decision) == ["UPSTREAM_TIMEOUT"]
    assert_checkers(service.engine, service.books)


def test_timed_out_is_outcome_unknown_and_breaker_open_is_not_sent(service: Service) -> None:
    """The two are different reasons with different messages: a caller may retry the first at once."""
    service.clock.advance(2000)
    service.emulator.fault("timeout", delay_s=4)
    timed_out, _ = service.decide()
    assert service.upstream_reasons(timed_out) == ["UPSTREAM_TIMEOUT"]
    service.clock.advance(2000)  # past whatever a late answer may have left
    service.emulator.fault("503", target="all")
    for _ in range(3):
        service.clock.advance(3)
        service.decide()
    service.clock.advance(3)
    not_sent, _ = service.decide()
    assert service.upstream_reasons(not_sent) == ["CIRCUIT_OPEN"]
    assert UPSTREAM_MESSAGES["CIRCUIT_OPEN"] != UPSTREAM_MESSAGES["UPSTREAM_TIMEOUT"]
    assert_checkers(service.engine, service.books)


def test_a_young_enough_snapshot_carries_decisions_through_a_failing_upstream(service: Service) -> None:
    service.clock.advance(900)  # stale for refresh_after_s, usable under max_balance_age_s
    service.emulator.fault("503", target="all")
    decision, elapsed = service.decide("1000.00")
    assert decision["outcome"] == "approve"
    assert decision["balance"]["amount"] == "38000.50"
    assert elapsed < DEADLINE_S + SLACK_S
    assert_checkers(service.engine, service.books)


def test_the_service_approves_again_once_the_upstream_heals(service: Service) -> None:
    service.clock.advance(2000)
    service.emulator.fault("malformed", count=1)
    assert service.decide()[0]["outcome"] == "defer"
    service.clock.advance(3)
    decision, _ = service.decide()
    assert decision["outcome"] == "approve"
    assert decision["balance"]["fetched_at"].startswith(service.clock.now().isoformat()[:19])
    assert_checkers(service.engine, service.books)
