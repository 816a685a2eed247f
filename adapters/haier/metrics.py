"""Prometheus metrics of the Haier upstream, registered once, at import, in the default registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

UPSTREAM_CALLS = Counter(
    "creditctl_upstream_calls_total",
    "Calls sent to the Haier upstream, by operation (token, balance) and outcome (ok or error code).",
    ["operation", "outcome"],
)
UPSTREAM_LATENCY = Histogram(
    "creditctl_upstream_latency_seconds",
    "Latency of calls sent to the Haier upstream.",
    ["operation"],
    # Beyond 30 s, the CreditctlUpstreamSlow threshold (deploy/prometheus/creditctl-alerts.yml): a
    # quantile never exceeds the top finite bucket, so with 30 at the top that alert could never fire
    # (read_s may be set up to 120 s per attempt).
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 45.0, 60.0, 120.0),
)
UPSTREAM_RETRIES = Counter(
    "creditctl_upstream_retries_total",
    "Retries of upstream calls after a network error, 5xx or 429, by the error code retried.",
    ["operation", "code"],
)
TOKEN_REFRESHES = Counter(
    "creditctl_upstream_token_refreshes_total",
    "Access tokens fetched from the upstream, by connection config.",
    ["config"],
)
BREAKER_STATE = Gauge(
    "creditctl_upstream_breaker_state",
    "Circuit breaker state per connection config: 0 closed, 1 half-open, 2 open.",
    ["config"],
)
BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}
