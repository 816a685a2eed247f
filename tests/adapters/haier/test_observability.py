"""One structured log record per upstream call, and the Prometheus metrics (item 11)."""

from __future__ import annotations

import json
import logging

import pytest
from prometheus_client import REGISTRY

from creditctl.ports.balance_provider import BalanceUnavailable

from .conftest import BALANCE_URL, CUSTOMER, FakeTime, add_balance, add_token, make_provider

pytestmark = pytest.mark.adapters

FIELDS = ("operation", "status", "latency_ms", "attempt", "error_code", "upstream_request_id")


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def call_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "creditctl.haier" and hasattr(r, "latency_ms")]


def test_one_json_able_record_per_upstream_call(mocked, fake_time: FakeTime, caplog) -> None:
    caplog.set_level(logging.INFO, logger="creditctl.haier")
    add_token(mocked)
    add_balance(mocked, status=503, headers={"X-Request-Id": "req-503"})
    add_balance(mocked, headers={"X-Request-Id": "req-ok"})
    make_provider(fake_time).fetch(CUSTOMER, timeout_s=10)
    records = call_records(caplog)
    assert [(r.operation, r.status, r.attempt, r.error_code, r.upstream_request_id) for r in records] == [
        ("token", 200, 1, None, None),
        ("balance", 503, 1, "SERVICE_UNAVAILABLE", "req-503"),
        ("balance", 200, 2, None, "req-ok"),
    ]
    for record in records:
        json.dumps({field: getattr(record, field) for field in FIELDS})
        assert record.latency_ms >= 0
    assert [r.levelname for r in records] == ["INFO", "WARNING", "INFO"]


def test_a_network_failure_is_recorded_without_a_status(mocked, fake_time, caplog) -> None:
    import requests

    caplog.set_level(logging.INFO, logger="creditctl.haier")
    add_token(mocked)
    mocked.post(BALANCE_URL, body=requests.ReadTimeout("slow"))
    with pytest.raises(BalanceUnavailable):
        make_provider(fake_time).fetch(CUSTOMER, timeout_s=10)
    balance = [r for r in call_records(caplog) if r.operation == "balance"]
    assert {(r.status, r.error_code) for r in balance} == {(None, "UPSTREAM_TIMEOUT")}


def test_metrics_count_calls_retries_refreshes_and_breaker_state(mocked, fake_time) -> None:
    before_ok = sample("creditctl_upstream_calls_total", operation="balance", outcome="ok")
    before_503 = sample("creditctl_upstream_calls_total", operation="balance", outcome="SERVICE_UNAVAILABLE")
    before_retry = sample("creditctl_upstream_retries_total", operation="balance", code="SERVICE_UNAVAILABLE")
    before_refresh = sample("creditctl_upstream_token_refreshes_total", config="test")
    before_latency = sample("creditctl_upstream_latency_seconds_count", operation="balance")
    add_token(mocked)
    add_balance(mocked, status=503)
    add_balance(mocked)
    provider = make_provider(fake_time)
    provider.fetch(CUSTOMER, timeout_s=10)
    assert sample("creditctl_upstream_calls_total", operation="balance", outcome="ok") == before_ok + 1
    assert (
        sample("creditctl_upstream_calls_total", operation="balance", outcome="SERVICE_UNAVAILABLE")
        == before_503 + 1
    )
    assert (
        sample("creditctl_upstream_retries_total", operation="balance", code="SERVICE_UNAVAILABLE")
        == before_retry + 1
    )
    assert sample("creditctl_upstream_token_refreshes_total", config="test") == before_refresh + 1
    assert sample("creditctl_upstream_latency_seconds_count", operation="balance") == before_latency + 2
    assert sample("creditctl_upstream_breaker_state", config="test") == 0


def test_breaker_gauge_follows_the_state(mocked, fake_time) -> None:
    add_token(mocked)
    add_balance(mocked, status=503)
    provider = make_provider(fake_time)
    with pytest.raises(BalanceUnavailable):
        provider.fetch(CUSTOMER, timeout_s=30)
    assert sample("creditctl_upstream_breaker_state", config="test") == 2
    fake_time.advance(31)
    mocked.remove("POST", BALANCE_URL)
    add_balance(mocked)
    provider.fetch(CUSTOMER, timeout_s=30)
    assert sample("creditctl_upstream_breaker_state", config="test") == 0


def test_every_call_is_also_handed_to_the_call_log_and_a_failing_log_fails_nothing(mocked, fake_time) -> None:
    from creditctl.ports.reports import UpstreamCall

    recorded: list[UpstreamCall] = []
    add_token(mocked)
    add_balance(mocked, status=503)
    add_balance(mocked)
    make_provider(fake_time, on_call=recorded.append).fetch(CUSTOMER, timeout_s=10)
    assert [(c.operation, c.status, c.attempt, c.error_code, c.config) for c in recorded] == [
        ("token", 200, 1, None, "test"),
        ("balance", 503, 1, "SERVICE_UNAVAILABLE", "test"),
        ("balance", 200, 2, None, "test"),
    ]
    assert all(c.latency_ms >= 0 and c.called_at.tzinfo is not None for c in recorded)
    assert recorded[1].customer_code == CUSTOMER

    def broken(call: UpstreamCall) -> None:
        raise RuntimeError("database down")

    add_balance(mocked)
    make_provider(fake_time, on_call=broken).fetch(CUSTOMER, timeout_s=10)  # still answers
