"""Never send more than the platform's per-second limit from one instance.

A token bucket in which every spent token comes back exactly one window after it was spent (a
sliding-window log): unlike a refilling bucket it cannot burst to twice the rate across a second
boundary, so "at most N calls in any second" holds strictly.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from adapters.haier.errors import local_error


class RateLimiter:
    """Thread-safe limiter: `acquire` reserves a send slot, waiting for it if the caller has time."""

    def __init__(
        self,
        rate_per_s: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self.capacity = max(1, math.floor(rate_per_s))
        self.window_s = self.capacity / rate_per_s
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        self._slots: deque[float] = deque(maxlen=self.capacity)  # send times, sorted, some in the future

    def acquire(self, max_wait_s: float) -> None:
        """Take a slot now, or wait for one if it comes within `max_wait_s`.

        Raises UpstreamError RATE_LIMITED (sent=False, retry_after_s set) when the wait would be longer.
        """
        with self._lock:
            now = self._monotonic()
            at = now
            if len(self._slots) == self.capacity:
                at = max(now, self._slots[0] + self.window_s)
            wait = at - now
            if wait > max_wait_s:
                raise local_error(
                    "RATE_LIMITED",
                    f"over {self.capacity} calls per {self.window_s:g} s to the upstream; not sent",
                    retry_after_s=wait,
                )
            self._slots.append(at)  # reserve it now, so concurrent callers queue behind us
        if wait > 0:
            self._sleep(wait)
