"""InMemoryTokenStore: the TokenStore contract, single flight, early refresh on the clock."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time

from adapters.haier.token_store import InMemoryTokenStore
from creditctl.ports.clock import SystemClock
from creditctl.ports.token_store import Token

pytestmark = pytest.mark.adapters

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def token(value: str, *, expires_in_s: float = 3600, now: datetime = NOW) -> Token:
    return Token(value=value, expires_at=now + timedelta(seconds=expires_in_s))


class Fetcher:
    """A fetch callable that counts calls and hands out numbered tokens."""

    def __init__(self, *, expires_in_s: float = 3600, pause_s: float = 0.0, error: Exception | None = None):
        self.calls = 0
        self.lock = threading.Lock()
        self.expires_in_s = expires_in_s
        self.pause_s = pause_s
        self.error = error

    def __call__(self) -> Token:
        with self.lock:
            self.calls += 1
            n = self.calls
        time.sleep(self.pause_s)
        if self.error is not None:
            raise self.error
        return token(f"token-{n}", expires_in_s=self.expires_in_s)


class TestToken:
    def test_repr_hides_the_value(self) -> None:
        assert "secret-value" not in repr(token("secret-value"))

    def test_expires_at_must_be_utc(self) -> None:
        with pytest.raises(ValueError, match="UTC"):
            Token(value="x", expires_at=datetime(2026, 1, 1))

    def test_authorization_header_follows_the_scheme(self) -> None:
        assert token("abc").authorization() == "Bearer abc"
        bare = Token(value="abc", expires_at=NOW, scheme="none")
        assert bare.authorization() == "abc"


class TestObtain:
    def test_fetches_when_empty_then_reuses(self) -> None:
        store, fetch = InMemoryTokenStore(), Fetcher()
        first = store.obtain("cfg", fetch, refresh_before_s=600, now=NOW)
        again = store.obtain("cfg", fetch, refresh_before_s=600, now=NOW + timedelta(minutes=49))
        assert first.value == again.value == "token-1"
        assert fetch.calls == 1
        assert store.current("cfg") == first

    def test_refreshes_ten_minutes_before_expiry(self) -> None:
        store, fetch = InMemoryTokenStore(), Fetcher()
        store.obtain("cfg", fetch, refresh_before_s=600, now=NOW)
        late = store.obtain("cfg", fetch, refresh_before_s=600, now=NOW + timedelta(minutes=50, seconds=1))
        assert late.value == "token-2"

    def test_refresh_follows_the_frozen_wall_clock(self) -> None:
        store, fetch, clock = InMemoryTokenStore(), Fetcher(), SystemClock()
        with freeze_time("2026-11-27 08:00:00") as frozen:
            assert store.obtain("cfg", fetch, refresh_before_s=600, now=clock.now()).value == "token-1"
            frozen.tick(timedelta(minutes=49, seconds=59))
            assert store.obtain("cfg", fetch, refresh_before_s=600, now=clock.now()).value == "token-1"
            frozen.tick(timedelta(seconds=2))
            assert store.obtain("cfg", fetch, refresh_before_s=600, now=clock.now()).value == "token-2"

    def test_configs_are_independent(self) -> None:
        store, fetch = InMemoryTokenStore(), Fetcher()
        a = store.obtain("a", fetch, refresh_before_s=600, now=NOW)
        b = store.obtain("b", fetch, refresh_before_s=600, now=NOW)
        assert (a.value, b.value) == ("token-1", "token-2")

    def test_a_failed_fetch_stores_nothing_and_propagates(self) -> None:
        store = InMemoryTokenStore()
        with pytest.raises(RuntimeError, match="down"):
            store.obtain("cfg", Fetcher(error=RuntimeError("down")), refresh_before_s=600, now=NOW)
        assert store.current("cfg") is None
        assert store.obtain("cfg", Fetcher(), refresh_before_s=600, now=NOW).value == "token-1"


class TestInvalidate:
    def test_drops_the_token_only_if_it_is_still_that_value(self) -> None:
        store, fetch = InMemoryTokenStore(), Fetcher()
        store.obtain("cfg", fetch, refresh_before_s=600, now=NOW)
        store.invalidate("cfg", "some-older-token")
        assert store.current("cfg") is not None
        store.invalidate("cfg", "token-1")
        assert store.current("cfg") is None
        store.invalidate("unknown", "x")  # never raises


def _run_threads(n: int, target) -> list[object]:
    results: list[object] = [None] * n
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    return results


class TestSingleFlight:
    def test_sixteen_cold_callers_make_one_fetch(self) -> None:
        store, fetch = InMemoryTokenStore(), Fetcher(pause_s=0.1)
        results = _run_threads(16, lambda: store.obtain("cfg", fetch, refresh_before_s=600, now=NOW))
        assert fetch.calls == 1
        assert {r.value for r in results} == {"token-1"}  # type: ignore[union-attr]

    def test_waiters_share_a_short_lived_token_instead_of_fetching_again(self) -> None:
        store, fetch = InMemoryTokenStore(), Fetcher(expires_in_s=60, pause_s=0.1)
        results = _run_threads(8, lambda: store.obtain("cfg", fetch, refresh_before_s=600, now=NOW))
        assert fetch.calls == 1
        assert {r.value for r in results} == {"token-1"}  # type: ignore[union-attr]

    def test_waiters_share_the_error_of_a_failed_fetch(self) -> None:
        store, fetch = InMemoryTokenStore(), Fetcher(pause_s=0.2, error=RuntimeError("token endpoint down"))
        results = _run_threads(8, lambda: store.obtain("cfg", fetch, refresh_before_s=600, now=NOW))
        assert fetch.calls == 1
        assert all(isinstance(r, RuntimeError) for r in results)
