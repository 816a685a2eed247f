"""The caller's time budget: every wait and every HTTP timeout is cut to what is left of it."""

from __future__ import annotations

import time
from collections.abc import Callable


class Deadline:
    """A point on a monotonic clock by which the caller wants its answer."""

    def __init__(self, timeout_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self.timeout_s = timeout_s
        self._end = monotonic() + max(0.0, timeout_s)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self._end - self._monotonic())

    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def http_timeout(self, connect_s: float, read_s: float) -> tuple[float, float]:
        """(connect, read) timeouts for one attempt, each shrunk to the time left."""
        left = self.remaining()
        return (min(connect_s, left), min(read_s, left))
