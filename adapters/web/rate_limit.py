"""A per-key rate limit: a token bucket per API key, in the worker process (OWASP API4, resource use).

Why in process: the decision path must not gain a database or network round trip for it; a bucket costs a
lock and a few float operations (about a microsecond, bench/rate_limit.py). The price is its scope: each
gunicorn worker process keeps its own buckets, so an instance with W workers admits a key between `rate`
(its requests all reach one worker) and W x `rate` (spread evenly), and N instances multiply that by N.
It protects the service from one runaway order system; it is not a quota to bill by. A key over its rate is
answered 429 problem+json with Retry-After (whole seconds until a token is back) and nothing changes; other
keys have their own buckets and are unaffected.

Hand-written rather than Flask-Limiter/limits: those keep a moving window per key in a storage object
with several dict operations and time lookups per hit; a token bucket is the whole algorithm here.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_RATE = "100/s"  # per key, per worker process: far above what an order system sends
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute)\s*$")
_PER_S = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}


@dataclass(frozen=True)
class RateLimitPolicy:
    """`rate_per_s` tokens a second, at most `burst` saved up; rate 0 turns the limit off."""

    rate_per_s: float
    burst: float

    @property
    def enabled(self) -> bool:
        return self.rate_per_s > 0


def parse_rate(text: str, burst: str | None = None) -> RateLimitPolicy:
    """ "100/s", "6000/min" or "off"; burst defaults to two seconds' worth (at least 1)."""
    if text.strip().lower() in ("off", "0", "none"):
        return RateLimitPolicy(0.0, 0.0)
    match = _RATE.match(text.lower())
    if not match:
        raise ValueError(f"a rate is like '100/s' or '6000/min' (or 'off'), not {text!r}")
    rate = float(match.group(1)) / _PER_S[match.group(2)]
    if rate <= 0:
        raise ValueError(f"a rate must be above zero (or 'off'), not {text!r}")
    size = float(burst) if burst not in (None, "") else max(1.0, 2 * rate)
    if size < 1:
        raise ValueError(f"a burst must be at least 1 request, not {burst!r}")
    return RateLimitPolicy(rate, size)


class RateLimited(Exception):
    """The key has used its rate; try again after `retry_after_s` whole seconds."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"rate limited for {retry_after_s}s")
        self.retry_after_s = retry_after_s


class TokenBuckets:
    """One bucket per key id, thread-safe; bounded (cleared when `max_keys` keys have buckets)."""

    def __init__(
        self,
        policy: RateLimitPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[object, list[float]] = {}  # key -> [tokens, at]
        self._lock = threading.Lock()

    def take(self, key: object) -> None:
        """Spend one token of `key`'s bucket, or raise RateLimited (spending nothing)."""
        policy = self.policy
        if not policy.enabled:
            return
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self._max_keys:
                    self._buckets.clear()  # full buckets for everyone: generous, never wrong-footed
                bucket = self._buckets[key] = [policy.burst, now]
            tokens = min(policy.burst, bucket[0] + (now - bucket[1]) * policy.rate_per_s)
            bucket[1] = now
            if tokens >= 1.0:
                bucket[0] = tokens - 1.0
                return
            bucket[0] = tokens
        raise RateLimited(max(1, math.ceil((1.0 - tokens) / policy.rate_per_s)))
