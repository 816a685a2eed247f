"""A per-key rate limit: a token bucket per API key (OWASP API4, unrestricted resource consumption).

The decision path must not gain a database or network round trip for it. `creditctl serve` (gunicorn,
through bootstrap.create_wsgi_app) uses SharedTokenBuckets: one table in a small memory-mapped file in the
instance folder, shared by every worker process of the instance, so the instance admits a key at `rate`
whatever worker its requests reach; N instances (each its own instance folder, or host) admit it at N x
`rate`. An app made by create_app without that file (tests, another WSGI server) keeps TokenBuckets, per
process: then W worker processes admit between `rate` and W x `rate`. Either is a guard against a runaway
client, not a quota to bill by. A key over its rate is answered 429 problem+json with Retry-After (whole
seconds until a token is back) and nothing changes; other keys have their own buckets and are unaffected.
The cost is a few microseconds a request (bench/rate_limit.py).

Hand-written rather than Flask-Limiter/limits: those keep a moving window per key in a storage object
(in process, or Redis/memcached: a network round trip); a token bucket is the whole algorithm here, and
sharing it between a host's processes is the part no such library does without a server.
"""

from __future__ import annotations

import fcntl
import math
import mmap
import os
import re
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_RATE = "100/s"  # per key and instance: far above what an order system sends
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
    size = float(burst) if burst not in (None, "") else max(1.0, 2 * rate)  # not money: requests
    if size < 1:
        raise ValueError(f"a burst must be at least 1 request, not {burst!r}")
    return RateLimitPolicy(rate, size)


class RateLimited(Exception):
    """The key has used its rate; try again after `retry_after_s` whole seconds."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"rate limited for {retry_after_s}s")
        self.retry_after_s = retry_after_s


class TokenBuckets:
    """One bucket per key id in this process, thread-safe; bounded (cleared when `max_keys` keys have
    buckets). For an app made without the instance's shared table (tests, another WSGI server)."""

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


_SLOT = struct.Struct("=qdd")  # key id + 1 (0: free), tokens, at (time.monotonic: one clock for the host)
_PROBES = 16


class SharedTokenBuckets:
    """The same buckets, shared by every process that serves from one instance folder (the gunicorn
    workers of an instance): the instance as a whole admits a key at `rate`, however its requests spread
    over the workers. A small file there (`path`, 96 KiB) is mapped into each process's memory and holds
    a fixed table of (key id, tokens, time) slots, open addressing; each process locks it with flock on its
    own descriptor, so the kernel releases the lock of a worker that dies holding it (a SIGKILLed worker
    never wedges the others); a thread lock orders one process's threads first. No database round trip:
    two flock calls and a few struct reads (bench/rate_limit.py). A full probe window clears the table:
    full buckets for everyone, generous, never wrong-footed. Times are time.monotonic(), one clock for
    every process of the host; an entry from before a reboot (a later time than now) starts afresh."""

    def __init__(
        self,
        policy: RateLimitPolicy,
        path: str | os.PathLike[str],
        *,
        slots: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.path = os.fspath(path)
        self._clock = clock
        self._slots = slots
        self._local = threading.Lock()
        self._opened: tuple[int, int, mmap.mmap] | None = None  # (pid, descriptor, map): one per process

    def _table(self) -> tuple[int, mmap.mmap]:
        opened = self._opened
        if opened is None or opened[0] != os.getpid():  # first use, or a forked child: open its own
            size = self._slots * _SLOT.size
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_size != size:
                    os.ftruncate(fd, 0)
                    os.ftruncate(fd, size)  # a new or resized table: all slots free
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            opened = self._opened = (os.getpid(), fd, mmap.mmap(fd, size))
        return opened[1], opened[2]

    def take(self, key: int) -> None:
        """Spend one token of `key`'s bucket (an API key id), or raise RateLimited (spending nothing)."""
        policy = self.policy
        if not policy.enabled:
            return
        now = self._clock()
        with self._local:
            fd, mem = self._table()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                tokens = self._spend(mem, int(key) + 1, now)  # +1: 0 marks a free slot
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        if tokens is not None:
            raise RateLimited(max(1, math.ceil((1.0 - tokens) / policy.rate_per_s)))

    def _spend(self, mem: mmap.mmap, slot_key: int, now: float) -> float | None:
        """Under the lock: spend a token of `slot_key`; None when spent, else the tokens there were."""
        policy, size = self.policy, _SLOT.size
        start = slot_key % self._slots
        for probe in range(_PROBES):
            offset = ((start + probe) % self._slots) * size
            found, tokens, at = _SLOT.unpack_from(mem, offset)
            if found == 0 or (found == slot_key and at > now):
                tokens, at = policy.burst, now  # a free slot, or one written before a reboot
            elif found != slot_key:
                continue
            tokens = min(policy.burst, tokens + (now - at) * policy.rate_per_s)
            spent = tokens >= 1.0
            _SLOT.pack_into(mem, offset, slot_key, tokens - 1.0 if spent else tokens, now)
            return None if spent else tokens
        mem[:] = bytes(len(mem))  # the window is full: start afresh
        return self._spend(mem, slot_key, now)
