"""What the per-key rate limit costs on the request path (adapters/web/rate_limit.py).

Prints, in one run: the cost of one `TokenBuckets.take` (one key, and 1,000 keys in turn), beside the
cost of the key-cache lookup every authenticated request already makes (KeyCache.get), as the baseline;
and, with --threads N, the same take from N threads at once (the lock is shared by a worker's threads).

    .venv/bin/python bench/rate_limit.py [--n 1000000] [--threads 8]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from datetime import UTC, datetime

from adapters.web.auth import KeyCache
from adapters.web.rate_limit import TokenBuckets, parse_rate
from creditctl.domain.api_key import ApiKey, Role


def per_call_us(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    n = args.n
    huge = parse_rate("1000000000/s")  # never refuses: measures the bookkeeping, not the refusals
    buckets = TokenBuckets(huge)
    cache = KeyCache()
    key = ApiKey(1, "bench", Role.ORDERS, None, datetime.now(UTC))
    cache.put("h" * 64, key)
    print(f"load average {os.getloadavg()[0]:.2f}, n={n}")
    for round_ in range(2):  # interleaved twice, the second figures are the ones to read
        base = per_call_us(lambda i: cache.get("h" * 64), n)
        one = per_call_us(lambda i: buckets.take(1), n)
        many = per_call_us(lambda i: buckets.take(i % 1000), n)
        print(
            f"round {round_ + 1}: KeyCache.get (baseline) {base:.3f} us; take, one key {one:.3f} us; "
            f"take, 1,000 keys {many:.3f} us"
        )

    def spin() -> None:
        for _ in range(n // args.threads):
            buckets.take(1)

    threads = [threading.Thread(target=spin) for _ in range(args.threads)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    print(f"{args.threads} threads on one key: {elapsed / n * 1e6:.3f} us per take (wall, all threads)")


if __name__ == "__main__":
    main()
