"""Retries, deadline, circuit breaker, rate limiter and single flight through the provider (items 7, 8)."""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time

import pytest
import requests
import responses

from adapters.haier.retry import RetryPolicy
from adapters.haier.token_store import InMemoryTokenStore
from creditctl.ports.balance_provider import BalanceUnavailable

from .conftest import (
    BALANCE_URL,
    CUSTOMER,
    FALLBACK_PASSWORD,
    TOKEN_URL,
    FakeTime,
    add_balance,
    add_token,
    calls_to,
    envelope,
    make_config,
    make_provider,
)

pytestmark = pytest.mark.adapters


def run_threads(n: int, target) -> list[object]:
    results: list[object] = [None] * n
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    return results


def fallback_config(**overrides):
    return make_config(customer_password=FALLBACK_PASSWORD, **overrides)


class TestRetries:
    def test_at_most_three_retries_with_jittered_exponential_gaps(self, mocked, fake_time: FakeTime) -> None:
        add_token(mocked)
        add_balance(mocked, status=503)
        provider = make_provider(fake_time, breaker_threshold=100)
        with pytest.raises(BalanceUnavailable):
            provider.fetch(CUSTOMER, timeout_s=30)
        assert len(calls_to(mocked, BALANCE_URL)) == 4
        assert len(fake_time.sleeps) == 3
        for n, gap in enumerate(fake_time.sleeps, start=1):
            nominal = 0.2 * 2 ** (n - 1)
            assert nominal * 0.75 <= gap <= nominal * 1.25
        assert len({round(g / (0.2 * 2**i), 6) for i, g in enumerate(fake_time.sleeps)}) > 1  # jittered

    def test_retries_never_sleep_past_the_deadline(self, mocked, fake_time: FakeTime) -> None:
        add_token(mocked)

        def slow_503(request):
            fake_time.advance(0.3)  # each attempt costs 0.3 s
            return (503, {}, "{}")

        mocked.add_callback(responses.POST, BALANCE_URL, slow_503)
        provider = make_provider(fake_time, breaker_threshold=100)
        started = fake_time.monotonic()
        with pytest.raises(BalanceUnavailable) as caught:
            provider.fetch(CUSTOMER, timeout_s=1.0)
        assert caught.value.code == "SERVICE_UNAVAILABLE"  # the last real error, not a made-up timeout
        assert fake_time.monotonic() - started <= 1.0
        timeouts = [c.request.req_kwargs["timeout"] for c in calls_to(mocked, BALANCE_URL)]
        assert timeouts[0] == (1.0, 1.0)
        assert all(later[1] < earlier[1] for earlier, later in itertools.pairwise(timeouts))

    def test_per_attempt_timeouts_shrink_to_the_time_left(self, mocked, fake_time: FakeTime) -> None:
        add_token(mocked)
        add_balance(mocked, status=502)
        add_balance(mocked)
        make_provider(fake_time).fetch(CUSTOMER, timeout_s=2.0)
        first, second = (c.request.req_kwargs["timeout"] for c in calls_to(mocked, BALANCE_URL))
        assert first == (2.0, 2.0)
        assert second == (pytest.approx(2.0 - fake_time.sleeps[0]),) * 2

    def test_no_time_left_is_a_timeout_that_was_not_sent(self, mocked, fake_time: FakeTime) -> None:
        with pytest.raises(BalanceUnavailable) as caught:
            make_provider(fake_time).fetch(CUSTOMER, timeout_s=0)
        assert (caught.value.code, caught.value.sent) == ("UPSTREAM_TIMEOUT", False)
        assert len(mocked.calls) == 0

    def test_a_slow_token_endpoint_leaves_the_rest_of_the_deadline_to_the_query(
        self, mocked, fake_time
    ) -> None:
        def slow_token(request):
            fake_time.advance(0.8)
            return (200, {}, '{"access_token": "tok-slow", "expires_in": 3600}')

        mocked.add_callback(responses.POST, TOKEN_URL, slow_token)
        add_balance(mocked)
        make_provider(fake_time).fetch(CUSTOMER, timeout_s=1.0)
        (call,) = calls_to(mocked, BALANCE_URL)
        assert call.request.req_kwargs["timeout"] == (pytest.approx(0.2), pytest.approx(0.2))

    def test_a_token_endpoint_slower_than_the_deadline_times_out(self, mocked, fake_time) -> None:
        def too_slow(request):
            fake_time.advance(1.0)
            raise requests.ReadTimeout("read timed out")

        mocked.add_callback(responses.POST, TOKEN_URL, too_slow)
        with pytest.raises(BalanceUnavailable) as caught:
            make_provider(fake_time).fetch(CUSTOMER, timeout_s=1.0)
        assert caught.value.code == "UPSTREAM_TIMEOUT"
        assert calls_to(mocked, BALANCE_URL) == []
        assert len(calls_to(mocked, TOKEN_URL)) == 1  # no time left to retry

    def test_retry_policy_backoff_is_capped(self) -> None:
        import random

        policy = RetryPolicy(max_backoff_s=1.0, jitter=0.0)
        assert policy.backoff_s(10, random.Random(1)) == 1.0


class TestCircuitBreaker:
    def test_three_failures_open_it_and_the_next_100_calls_never_reach_the_upstream(
        self, mocked, fake_time
    ) -> None:
        add_token(mocked)
        add_balance(mocked, status=503)
        provider = make_provider(fake_time, fallback_config())
        with pytest.raises(BalanceUnavailable) as first:
            provider.fetch(CUSTOMER, timeout_s=30)
        assert first.value.code == "SERVICE_UNAVAILABLE"  # the tripping call reports the original error
        assert first.value.sent is True
        assert provider.state == "open"
        hits = len(mocked.calls)
        started = time.perf_counter()
        for i in range(100):
            with pytest.raises(BalanceUnavailable) as caught:
                provider.fetch(f"88{i:08d}", timeout_s=30)
            assert (caught.value.code, caught.value.sent) == ("CIRCUIT_OPEN", False)
            assert 0 < caught.value.retry_after_s <= 30
        assert len(mocked.calls) == hits
        assert time.perf_counter() - started < 1.0  # fail fast

    def test_timeouts_and_malformed_answers_count_as_failures(self, mocked, fake_time) -> None:
        add_token(mocked)
        mocked.post(BALANCE_URL, body=requests.ReadTimeout("slow"))
        mocked.post(BALANCE_URL, body="garbage")
        mocked.post(BALANCE_URL, body=requests.ConnectionError("reset"))
        provider = make_provider(fake_time, fallback_config(), retry_policy=RetryPolicy(max_retries=0))
        for code in ("UPSTREAM_TIMEOUT", "UPSTREAM_MALFORMED", "SERVICE_UNAVAILABLE"):
            with pytest.raises(BalanceUnavailable) as caught:
                provider.fetch(CUSTOMER, timeout_s=30)
            assert caught.value.code == code
        assert provider.state == "open"

    @pytest.mark.parametrize(
        ("status", "body"),
        [(400, {}), (404, {}), (403, {}), (429, {}), (200, envelope(None, success=False))],
    )
    def test_client_errors_and_business_refusals_never_count(self, mocked, fake_time, status, body) -> None:
        add_token(mocked)
        add_balance(mocked, body, status=status)
        provider = make_provider(fake_time, fallback_config(), retry_policy=RetryPolicy(max_retries=0))
        for _ in range(10):
            with pytest.raises(BalanceUnavailable):
                provider.fetch(CUSTOMER, timeout_s=30)
        assert provider.state == "closed"

    def test_a_success_resets_the_count(self, mocked, fake_time) -> None:
        add_token(mocked)
        for status in (503, 503, 200, 503, 503):
            add_balance(mocked, status=status)
        provider = make_provider(fake_time, retry_policy=RetryPolicy(max_retries=0))
        for _ in range(5):
            with contextlib.suppress(BalanceUnavailable):
                provider.fetch(CUSTOMER, timeout_s=30)
        assert provider.state == "closed"

    def test_after_the_cooldown_twenty_concurrent_callers_send_exactly_one_probe(
        self, mocked, fake_time
    ) -> None:
        add_token(mocked)
        add_balance(mocked, status=503)
        provider = make_provider(fake_time, fallback_config())
        with pytest.raises(BalanceUnavailable):
            provider.fetch(CUSTOMER, timeout_s=30)
        assert provider.state == "open"
        fake_time.advance(30.01)
        assert provider.state == "half_open"

        release = threading.Event()

        def slow_ok(request):
            release.wait(5)
            return (200, {}, '{"success": true, "data": []}')

        mocked.remove(responses.POST, BALANCE_URL)  # the upstream is back, but slow to answer the probe
        mocked.add_callback(responses.POST, BALANCE_URL, slow_ok)
        before = len(calls_to(mocked, BALANCE_URL))
        results: list[object] = [None] * 20

        def release_when_the_others_failed() -> None:
            give_up = time.monotonic() + 5
            while time.monotonic() < give_up and sum(isinstance(r, BalanceUnavailable) for r in results) < 19:
                time.sleep(0.005)
            release.set()

        releaser = threading.Thread(target=release_when_the_others_failed)
        releaser.start()
        barrier = threading.Barrier(20)

        def run(i: int) -> None:
            barrier.wait()
            try:
                results[i] = provider.fetch(f"88000000{i:02d}", timeout_s=30)
            except Exception as exc:
                results[i] = exc

        threads = [threading.Thread(target=run, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
        releaser.join()
        assert len(calls_to(mocked, BALANCE_URL)) - before == 1
        refused = [r for r in results if isinstance(r, BalanceUnavailable)]
        assert len(refused) == 19
        assert {(r.code, r.sent) for r in refused} == {("CIRCUIT_OPEN", False)}
        assert provider.state == "closed"

    def test_a_failed_probe_opens_it_again(self, mocked, fake_time) -> None:
        add_token(mocked)
        add_balance(mocked, status=503)
        provider = make_provider(fake_time)
        with pytest.raises(BalanceUnavailable):
            provider.fetch(CUSTOMER, timeout_s=30)
        fake_time.advance(30.01)
        hits = len(mocked.calls)
        with pytest.raises(BalanceUnavailable) as caught:
            provider.fetch(CUSTOMER, timeout_s=30)
        assert caught.value.code == "SERVICE_UNAVAILABLE"  # the probe's own error, not retried
        assert len(mocked.calls) == hits + 1
        assert provider.state == "open"


class TestRateLimiter:
    def test_waits_for_a_slot_when_the_deadline_allows(self, mocked, fake_time) -> None:
        add_token(mocked)
        add_balance(mocked)
        provider = make_provider(fake_time, fallback_config(rate_limit_per_s=2))
        for i in range(3):
            provider.fetch(f"880000000{i}", timeout_s=5)
        assert fake_time.sleeps == [pytest.approx(1.0)]
        assert len(calls_to(mocked, BALANCE_URL)) == 3

    def test_refuses_without_sending_when_the_wait_would_pass_the_deadline(self, mocked, fake_time) -> None:
        add_token(mocked)
        add_balance(mocked)
        provider = make_provider(fake_time, fallback_config(rate_limit_per_s=2))
        provider.fetch("8800000001", timeout_s=5)
        provider.fetch("8800000002", timeout_s=5)
        with pytest.raises(BalanceUnavailable) as caught:
            provider.fetch("8800000003", timeout_s=0.5)
        assert (caught.value.code, caught.value.sent) == ("RATE_LIMITED", False)
        assert caught.value.retry_after_s == pytest.approx(1.0)
        assert len(calls_to(mocked, BALANCE_URL)) == 2
        assert provider.state == "closed"


class TestSingleFlight:
    def test_fifty_concurrent_fetches_for_one_customer_make_one_call(self, mocked, fake_time) -> None:
        add_token(mocked)
        provider = make_provider(fake_time)
        in_flight = threading.Event()

        def held_answer(request):
            in_flight.set()
            deadline = time.monotonic() + 5
            while provider._flights.waiters(CUSTOMER) < 49 and time.monotonic() < deadline:
                time.sleep(0.002)
            entry = {"saleGroupCode": "1", "payerAccountCode": "P", "payerAccountBalance": "10.00"}
            return (200, {}, json.dumps({"success": True, "data": [entry]}))

        mocked.add_callback(responses.POST, BALANCE_URL, held_answer)
        results = run_threads(50, lambda i: provider.fetch(CUSTOMER, timeout_s=10))
        assert len(calls_to(mocked, BALANCE_URL)) == 1
        assert len({id(r) for r in results}) == 1  # the very same report
        assert results[0].accounts[0].amount == 10

    def test_concurrent_fetches_share_the_error(self, mocked, fake_time) -> None:
        add_token(mocked)
        provider = make_provider(fake_time)

        def held_refusal(request):
            deadline = time.monotonic() + 5
            while provider._flights.waiters(CUSTOMER) < 9 and time.monotonic() < deadline:
                time.sleep(0.002)
            return (400, {}, "{}")

        mocked.add_callback(responses.POST, BALANCE_URL, held_refusal)
        results = run_threads(10, lambda i: provider.fetch(CUSTOMER, timeout_s=10))
        assert len(calls_to(mocked, BALANCE_URL)) == 1
        assert {r.code for r in results} == {"BALANCE_QUERY_FAILED"}  # type: ignore[union-attr]

    def test_sixteen_cold_callers_share_one_token_call(self, mocked, fake_time) -> None:
        def slow_token(request):
            time.sleep(0.1)
            return (200, {}, '{"access_token": "tok-shared", "expires_in": 3600}')

        mocked.add_callback(responses.POST, TOKEN_URL, slow_token)
        add_balance(mocked)
        store = InMemoryTokenStore()
        provider = make_provider(fake_time, fallback_config(), token_store=store)
        results = run_threads(16, lambda i: provider.fetch(f"88000000{i:02d}", timeout_s=10))
        assert all(not isinstance(r, Exception) for r in results)
        assert len(calls_to(mocked, TOKEN_URL)) == 1
        assert len(calls_to(mocked, BALANCE_URL)) == 16
