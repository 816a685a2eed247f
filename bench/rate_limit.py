"""What the per-key rate limit costs on the request path (adapters/web/rate_limit.py).

Prints, in one run: the cost of one take, in process (`TokenBuckets`) and from the instance's shared table
(`SharedTokenBuckets`, what `creditctl serve` uses: flock + a memory-mapped file), one key and 1,000 keys
in turn, beside the cost of the key-cache lookup every authenticated request already makes
(KeyCache.get), as the baseline; then the shared take from --threads threads, and from --processes
forked processes, at once (contended).

    .venv/bin/python bench/rate_limit.py [--n 300000] [--threads 8] [--processes 4]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from adapters.web.auth import KeyCache
from adapters.web.rate_limit import SharedTokenBuckets, TokenBuckets, parse_rate
from creditctl.domain.api_key import ApiKey, Role


def per_call_us(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--processes", type=int, default=4)
    args = parser.parse_args()
    n = args.n
    huge = parse_rate("1000000000/s")  # never refuses: measures the bookkeeping, not the refusals
    local = TokenBuckets(huge)
    shared = SharedTokenBuckets(huge, Path(tempfile.mkdtemp()) / "rate-limit.table")
    cache = KeyCache()
    key = ApiKey(1, "bench", Role.ORDERS, None, datetime.now(UTC))
    cache.put("h" * 64, key)
    print(f"load average {os.getloadavg()[0]:.2f}, n={n}")
    for round_ in range(2):  # interleaved twice, the second figures are the ones to read
        base = per_call_us(lambda i: cache.get("h" * 64), n)
        one = per_call_us(lambda i: local.take(1), n)
        many = per_call_us(lambda i: local.take(i % 1000), n)
        s_one = per_call_us(lambda i: shared.take(1), n)
        s_many = per_call_us(lambda i: shared.take(i % 1000), n)
        print(
            f"round {round_ + 1}: KeyCache.get (baseline) {base:.3f} us; in process: one key {one:.3f} us, "
            f"1,000 keys {many:.3f} us; shared table: one key {s_one:.3f} us, 1,000 keys {s_many:.3f} us"
        )

    def spin(count: int) -> None:
        for _ in range(count):
            shared.take(1)

    threads = [threading.Thread(target=spin, args=(n // args.threads,)) for _ in range(args.threads)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    print(f"shared table, {args.threads} threads on one key: {elapsed / n * 1e6:.3f} us per take (wall)")
    fork = multiprocessing.get_context("fork")
    procs = [fork.Process(target=spin, args=(n // args.processes,)) for _ in range(args.processes)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - start
    print(f"shared table, {args.processes} processes on one key: {elapsed / n * 1e6:.3f} us per take (wall)")


if __name__ == "__main__":
    main()
