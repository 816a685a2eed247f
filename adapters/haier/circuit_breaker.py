"""Stop calling an upstream that keeps failing, then let exactly one probe find out if it is back.

Hand-written because pybreaker (1.4) holds one lock for the whole wrapped call, which serialises
every caller (20 concurrent callers would queue behind the probe instead of failing fast), and it
reads the wall clock. Here the lock guards only the state, half-open admits exactly one probe while
the others fail fast, the tripping call keeps its own error, and the clock is injected.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; after `cooldown_s` one probe may pass.

    Callers ask `allow()` before a call and report it with exactly one of `record_success()`
    (any answer that says the upstream is alive), `record_failure()` (timeouts, 5xx, network,
    malformed) or `record_neutral()` (nothing was learned: the call was never sent).
    """

    def __init__(
        self,
        *,
        threshold: int = 3,
        cooldown_s: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
        on_change: Callable[[str], None] = lambda state: None,
    ) -> None:
        self._threshold = threshold
        self._cooldown_s = cooldown_s
        self._monotonic = monotonic
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> str:
        """The state: closed, open or half_open (an open breaker past its cooldown reads half_open)."""
        with self._lock:
            if self._state == OPEN and self._cooled_down():
                return HALF_OPEN
            return self._state

    def retry_after_s(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when not open)."""
        with self._lock:
            if self._state != OPEN:
                return 0.0
            return max(0.0, self._opened_at + self._cooldown_s - self._monotonic())

    def allow(self) -> bool:
        """True if this call may go upstream; in half-open only the one probe gets True."""
        with self._lock:
            if self._state == CLOSED:
                return True
            if self._state == OPEN:
                if not self._cooled_down():
                    return False
                self._set(HALF_OPEN)
            if self._probing:
                return False
            self._probing = True
            return True

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._probing = False
            self._set(CLOSED)

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._state == HALF_OPEN or self._failures >= self._threshold:
                self._opened_at = self._monotonic()
                self._probing = False
                self._set(OPEN)

    def record_neutral(self) -> None:
        with self._lock:
            if self._state == HALF_OPEN:
                self._probing = False

    def _cooled_down(self) -> bool:
        return self._monotonic() - self._opened_at >= self._cooldown_s

    def _set(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self._on_change(state)
