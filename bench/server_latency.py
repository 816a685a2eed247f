"""Where a decision's latency is spent under load: the client's view (wrk) against the server's own
(`duration_ms` of each access line: from the moment the request reached the app to its access line).

    .venv/bin/python bench/server_latency.py [--clients 32] [--duration 15] [--workers 4]

Why: at 32 clients the p99 is several times the p50 while a decision takes under a millisecond of CPU.
If the server's own times are short, the time is spent before the app (gunicorn's queue, the kernel's
backlog); if they are long, inside it (waiting for a core, the GIL, PostgreSQL). It builds an instance
like bench/bench.py (PostgreSQL, 10,000 accounts, an orders key), runs `creditctl serve` at INFO with
`creditctl worker` beside it, warms up, drives wrk (bench/decide.lua) and prints both sets of percentiles.
A script, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench


def served_load(
    inst: bench.Instance,
    *,
    clients: int,
    duration: int,
    workers: int,
    worker_args: Sequence[str] = (),
    settle_s: float = 0.0,
) -> tuple[str, list[dict[str, Any]]]:
    """`creditctl serve` at INFO with `creditctl worker` (`worker_args`) beside it on a prepared instance,
    warmed, then `clients` wrk clients for `duration` s; `settle_s` more before both stop. Returns wrk's
    output and the access lines of the decisions made under the measured load."""
    port = bench.free_port()
    env = {**os.environ, **inst.env, "CREDITCTL_LOG_LEVEL": "INFO"}
    log_path = inst.tmp / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [bench.CREDITCTL, "serve", "--port", str(port), "--workers", str(workers)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        bench.CLEANUP.procs.append(server)
        worker = subprocess.Popen(
            [bench.CREDITCTL, "worker", *worker_args], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        bench.CLEANUP.procs.append(worker)
        time.sleep(6)
        url = f"http://127.0.0.1:{port}"
        wrk = ["wrk", f"-t{min(clients, 2)}", "--timeout", "10s", "-s", str(bench.BENCH / "decide.lua")]
        subprocess.run([*wrk, "-c8", "-d2s", url, "--", inst.key, "10000", "warm"], capture_output=True)
        skip = sum(1 for _ in log_path.open(errors="replace"))
        run = subprocess.run(
            [*wrk, f"-c{clients}", f"-d{duration}s", "--latency", url, "--", inst.key, "10000",
             f"lat{uuid.uuid4().hex[:6]}"], capture_output=True, text=True,
        )  # fmt: skip
        time.sleep(settle_s)
        bench.CLEANUP.stop(server)
        bench.CLEANUP.stop(worker)
    lines = []
    for number, line in enumerate(log_path.open(errors="replace")):
        if number >= skip and '"creditctl.access"' in line and "POST /v1/decisions 201" in line:
            lines.append(json.loads(line))
    return run.stdout, lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--duration", type=int, default=15, help="seconds of measured load")
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()
    inst = bench.Instance("postgres", f"lat{uuid.uuid4().hex[:6]}", args.workers)
    try:
        inst.prepare()
        wrk_out, lines = served_load(inst, clients=args.clients, duration=args.duration, workers=args.workers)
        durations = [float(line["duration_ms"]) for line in lines]
        print(
            f"{args.clients} clients, {args.duration} s, {args.workers} workers (PostgreSQL, INFO, a worker)"
        )
        print("wrk (the client's view):")
        for line in wrk_out.splitlines():
            if line.strip().startswith(("50%", "75%", "90%", "99%", "Requests/sec")):
                print("  " + line.strip())
        if len(durations) < 100:
            print(f"too few access lines ({len(durations)})")
            return 1
        q = statistics.quantiles(durations, n=100)
        print(f"the server's own time, {len(durations)} decisions (lane start to access line):")
        print(f"  50% {q[49]:.2f} ms  90% {q[89]:.2f} ms  99% {q[98]:.2f} ms  max {max(durations):.1f} ms")
    finally:
        inst.close()
        bench.CLEANUP.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
