"""Collapse concurrent identical work into one call whose result (or error) every caller shares.

Fifty order requests for one customer arriving together must make one upstream call, not fifty.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Flight(Generic[T]):
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None
        self.waiters = 0


class SingleFlight(Generic[T]):
    """Per-key single flight inside one process; nothing is cached once the flight lands."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight[T]] = {}

    def do(
        self,
        key: Hashable,
        fn: Callable[[], T],
        *,
        wait_s: float,
        on_timeout: Callable[[], BaseException],
    ) -> T:
        """Run `fn` unless a call for `key` is in flight; then wait up to `wait_s` for its outcome.

        A waiter that runs out of time raises `on_timeout()`; the flight itself goes on.
        """
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
            else:
                flight.waiters += 1
        if leader:
            return self._lead(key, flight, fn)
        if not flight.done.wait(timeout=max(0.0, wait_s)):
            raise on_timeout()
        if flight.error is not None:
            raise flight.error
        return flight.result  # type: ignore[return-value]

    def waiters(self, key: Hashable) -> int:
        """How many callers are waiting on the flight for `key` (0 when none is in flight)."""
        with self._lock:
            flight = self._flights.get(key)
            return 0 if flight is None else flight.waiters

    def _lead(self, key: Hashable, flight: _Flight[T], fn: Callable[[], T]) -> T:
        try:
            flight.result = fn()
            return flight.result
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()
