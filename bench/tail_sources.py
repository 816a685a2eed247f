"""What the slowest decisions coincide with: the sealer's passes, or something that comes every second.

    .venv/bin/python bench/tail_sources.py [--clients 1] [--duration 20] [--worker-args '--seal-every 1']

Why: at one client the p99 is set by a few dozen decisions in a run, and those were not slow at random.
This script builds an instance like bench/bench.py (PostgreSQL, 10,000 accounts, an orders key), runs
`creditctl serve` at INFO with `creditctl worker` beside it, drives wrk (bench/decide.lua), then puts
each decision's own time (the access line: its end and `duration_ms`) beside the sealer's passes (the
distinct `sealed_at` of the seals: each batch of a pass is stamped with the database's time when its
transaction began). It prints:

- the client's and the server's percentiles;
- how many of the slowest 2 % ran within 50 ms of a pass, against the fastest half (the same share in
  both: the passes do not matter);
- where in the second the slowest 2 % ended (ten 100 ms bins, from the first decision): something that
  runs once a second in one phase piles them into one bin (a cache read each second did, until it
  was refreshed in a thread of its own);
- the slowest decisions' times (seconds from the start, and ms), to read beside the passes'.

A script, not a test: figures vary with the machine; compare runs made one after the other.
"""

from __future__ import annotations

import argparse
import bisect
import shlex
import statistics
import sys
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from server_latency import served_load

import bench

NEAR_S = 0.05


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--duration", type=int, default=20, help="seconds of measured load")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--worker-args", default="", help="more options for creditctl worker")
    args = ap.parse_args()
    inst = bench.Instance("postgres", f"tail{uuid.uuid4().hex[:6]}", args.workers)
    try:
        inst.prepare()
        wrk_out, lines = served_load(
            inst, clients=args.clients, duration=args.duration, workers=args.workers,
            worker_args=shlex.split(args.worker_args),
            settle_s=1.5,  # the worker's next pass stamps what it seals of the run's end
        )  # fmt: skip
        decisions = []  # (start, end, ms)
        for entry in lines:
            end = datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()
            ms = float(entry["duration_ms"])
            decisions.append((end - ms / 1000, end, ms))
        with inst.engine.connect() as conn:
            stamps = conn.execute(text("SELECT DISTINCT sealed_at FROM audit_seals ORDER BY 1")).scalars()
            passes = sorted(s.timestamp() for s in stamps)
        report(wrk_out, decisions, passes, args)
    finally:
        inst.close()
        bench.CLEANUP.run()
    return 0


def report(
    wrk_out: str, decisions: list[tuple[float, float, float]], passes: list[float], args: argparse.Namespace
) -> None:
    print(f"{args.clients} clients, {args.duration} s, {args.workers} workers (PostgreSQL, INFO, a worker "
          f"{args.worker_args or 'with its defaults'})")  # fmt: skip
    print("wrk (the client's view):")
    for line in wrk_out.splitlines():
        if line.strip().startswith(("50%", "90%", "99%", "Requests/sec")):
            print("  " + line.strip())
    if len(decisions) < 200:
        print(f"too few access lines ({len(decisions)})")
        return
    times = sorted(d[2] for d in decisions)
    q = statistics.quantiles(times, n=100)
    print(f"the server's own time, {len(decisions)} decisions: p50 {q[49]:.2f} ms  p90 {q[89]:.2f} ms  "
          f"p99 {q[98]:.2f} ms  max {times[-1]:.1f} ms")  # fmt: skip
    slow = [d for d in decisions if d[2] >= q[97]]
    fast = [d for d in decisions if d[2] < q[49]]

    def near_a_pass(d: tuple[float, float, float]) -> bool:
        i = bisect.bisect_left(passes, d[0] - NEAR_S)
        return i < len(passes) and passes[i] <= d[1] + NEAR_S

    def share(group: list[tuple[float, float, float]]) -> float:
        return sum(near_a_pass(d) for d in group) / len(group)

    print(f"sealer passes: {len(passes)} batches stamped during the run and before it")
    print(f"within {NEAR_S * 1000:.0f} ms of a pass: the slowest 2 % ({len(slow)}) {share(slow):.0%}, "
          f"the fastest half {share(fast):.0%}")  # fmt: skip
    t0 = min(d[0] for d in decisions)
    bins = Counter(int(((d[1] - t0) % 1.0) * 10) for d in slow)
    print("where in the second the slowest 2 % ended (100 ms bins from the first decision; ~10 % each when "
          "nothing comes once a second):")  # fmt: skip
    print("  " + "  ".join(f"{b / 10:.1f}s {bins[b] / len(slow):.0%}" for b in range(10)))
    print("the slowest 2 % (s from the start: ms):")
    print("  " + " ".join(f"{d[1] - t0:.2f}:{d[2]:.0f}" for d in sorted(slow, key=lambda d: d[1])))
    print("the passes (s from the start):")
    print("  " + " ".join(f"{p - t0:.2f}" for p in passes if p >= t0 - 1))


if __name__ == "__main__":
    raise SystemExit(main())
