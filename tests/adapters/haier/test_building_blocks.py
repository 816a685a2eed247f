"""The small parts on their own: circuit breaker, rate limiter, retry loop, single flight, deadline."""

from __future__ import annotations

import random
import threading
import time

import pytest

from adapters.haier.circuit_breaker import CircuitBreaker
from adapters.haier.deadline import Deadline
from adapters.haier.errors import UpstreamError
from adapters.haier.rate_limiter import RateLimiter
from adapters.haier.retry import RetryPolicy, call_with_retries
from adapters.haier.single_flight import SingleFlight

from .conftest import SEED, FakeTime

pytestmark = pytest.mark.adapters


class TestCircuitBreaker:
    def test_opens_after_the_threshold_and_reports_its_state(self, fake_time: FakeTime) -> None:
        changes: list[str] = []
        breaker = CircuitBreaker(
            threshold=3, cooldown_s=30, monotonic=fake_time.monotonic, on_change=changes.append
        )
        for _ in range(2):
            assert breaker.allow()
            breaker.record_failure()
        assert breaker.state == "closed"
        assert breaker.allow()
        breaker.record_failure()
        assert breaker.state == "open"
        assert not breaker.allow()
        assert breaker.retry_after_s() == 30
        fake_time.advance(30)
        assert breaker.state == "half_open"
        assert breaker.allow()  # the probe
        assert not breaker.allow()  # everyone else
        breaker.record_success()
        assert breaker.state == "closed"
        assert changes == ["open", "half_open", "closed"]

    def test_a_probe_that_was_never_sent_frees_the_slot(self, fake_time: FakeTime) -> None:
        breaker = CircuitBreaker(threshold=1, cooldown_s=5, monotonic=fake_time.monotonic)
        breaker.record_failure()
        fake_time.advance(5)
        assert breaker.allow()
        breaker.record_neutral()
        assert breaker.state == "half_open"
        assert breaker.allow()

    def test_exactly_one_probe_among_many_threads(self, fake_time: FakeTime) -> None:
        breaker = CircuitBreaker(threshold=1, cooldown_s=5, monotonic=fake_time.monotonic)
        breaker.record_failure()
        fake_time.advance(5)
        allowed: list[bool] = []
        barrier = threading.Barrier(20)

        def ask() -> None:
            barrier.wait()
            allowed.append(breaker.allow())

        threads = [threading.Thread(target=ask) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert allowed.count(True) == 1


class TestRateLimiter:
    def test_never_more_than_the_rate_in_any_second(self, fake_time: FakeTime) -> None:
        limiter = RateLimiter(5, monotonic=fake_time.monotonic, sleep=fake_time.sleep)
        sent: list[float] = []
        for _ in range(23):
            limiter.acquire(max_wait_s=60)
            sent.append(fake_time.monotonic())
        for i, start in enumerate(sent):
            assert sum(1 for t in sent[i:] if t < start + 1.0) <= 5
        assert sent[-1] - sent[0] == pytest.approx(4.0)

    def test_refuses_when_the_wait_is_too_long(self, fake_time: FakeTime) -> None:
        limiter = RateLimiter(1, monotonic=fake_time.monotonic, sleep=fake_time.sleep)
        limiter.acquire(max_wait_s=0)
        with pytest.raises(UpstreamError) as caught:
            limiter.acquire(max_wait_s=0.5)
        assert (caught.value.code, caught.value.sent, caught.value.local) == ("RATE_LIMITED", False, True)
        limiter.acquire(max_wait_s=1.0)
        assert fake_time.sleeps == [pytest.approx(1.0)]

    def test_fractional_rates(self, fake_time: FakeTime) -> None:
        limiter = RateLimiter(0.5, monotonic=fake_time.monotonic, sleep=fake_time.sleep)
        limiter.acquire(max_wait_s=10)
        limiter.acquire(max_wait_s=10)
        assert fake_time.sleeps == [pytest.approx(2.0)]

    def test_thread_safe_under_real_time(self) -> None:
        limiter = RateLimiter(100)
        started = time.monotonic()
        done: list[float] = []
        lock = threading.Lock()

        def worker() -> None:
            for _ in range(15):
                limiter.acquire(max_wait_s=5)
                with lock:
                    done.append(time.monotonic() - started)

        threads = [threading.Thread(target=worker) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done.sort()
        assert len(done) == 150
        assert done[100] >= 0.99  # the 101st waited for the first slot to come back


def failing(*errors: BaseException):
    queue = list(errors)

    def attempt(n: int) -> str:
        if queue:
            raise queue.pop(0)
        return f"ok after {n}"

    return attempt


def retry(attempt, fake_time: FakeTime, *, timeout_s: float = 30, **kwargs):
    kwargs.setdefault("policy", RetryPolicy())
    return call_with_retries(
        attempt,
        deadline=Deadline(timeout_s, fake_time.monotonic),
        may_retry=lambda exc: getattr(exc, "retryable", False),
        sleep=fake_time.sleep,
        rng=random.Random(SEED),
        **kwargs,
    )


def unavailable(**kwargs) -> UpstreamError:
    return UpstreamError("SERVICE_UNAVAILABLE", "down", **kwargs)


class TestRetryLoop:
    def test_retries_until_success_and_reports_each_retry(self, fake_time: FakeTime) -> None:
        seen: list[tuple[int, str]] = []
        result = retry(
            failing(unavailable(), unavailable()),
            fake_time,
            on_retry=lambda n, gap, exc: seen.append((n, exc.code)),
        )
        assert result == "ok after 3"
        assert seen == [(1, "SERVICE_UNAVAILABLE"), (2, "SERVICE_UNAVAILABLE")]

    def test_the_last_error_is_raised_unchanged_after_three_retries(self, fake_time: FakeTime) -> None:
        errors = [unavailable() for _ in range(5)]
        with pytest.raises(UpstreamError) as caught:
            retry(failing(*errors), fake_time)
        assert caught.value is errors[3]
        assert len(fake_time.sleeps) == 3

    def test_what_may_not_be_retried_is_raised_at_once(self, fake_time: FakeTime) -> None:
        refusal = UpstreamError("BALANCE_QUERY_FAILED", "no")
        with pytest.raises(UpstreamError) as caught:
            retry(failing(refusal), fake_time)
        assert caught.value is refusal
        assert fake_time.sleeps == []

    def test_retry_after_is_a_floor(self, fake_time: FakeTime) -> None:
        retry(failing(UpstreamError("RATE_LIMITED", "slow down", retry_after_s=3)), fake_time)
        assert fake_time.sleeps == [3]

    def test_stops_instead_of_sleeping_past_the_deadline(self, fake_time: FakeTime) -> None:
        with pytest.raises(UpstreamError):
            retry(failing(UpstreamError("RATE_LIMITED", "x", retry_after_s=2)), fake_time, timeout_s=1.5)
        assert fake_time.sleeps == []

    @pytest.mark.parametrize("seed", range(20))
    def test_gaps_stay_within_25_percent_of_nominal(self, seed: int) -> None:
        rng = random.Random(SEED + seed)
        policy = RetryPolicy()
        for n in (1, 2, 3):
            nominal = 0.2 * 2 ** (n - 1)
            assert nominal * 0.75 <= policy.backoff_s(n, rng) <= nominal * 1.25


class TestSingleFlight:
    def test_a_waiter_that_runs_out_of_time_gets_the_timeout_error(self) -> None:
        flights: SingleFlight[str] = SingleFlight()
        release = threading.Event()

        def lead() -> None:
            flights.do("k", lambda: "done" if release.wait(5) else "late", wait_s=5, on_timeout=TimeoutError)

        leader = threading.Thread(target=lead)
        leader.start()
        while not flights._flights:  # wait until the leader is in flight
            time.sleep(0.001)
        with pytest.raises(TimeoutError):
            flights.do("k", lambda: "never", wait_s=0.05, on_timeout=TimeoutError)
        release.set()
        leader.join()
        assert flights.do("k", lambda: "fresh", wait_s=1, on_timeout=TimeoutError) == "fresh"


def test_deadline_shrinks_timeouts(fake_time: FakeTime) -> None:
    deadline = Deadline(2, fake_time.monotonic)
    assert deadline.http_timeout(5, 30) == (2, 2)
    fake_time.advance(1.5)
    assert deadline.http_timeout(0.2, 30) == (0.2, 0.5)
    fake_time.advance(1)
    assert deadline.expired() and deadline.remaining() == 0
