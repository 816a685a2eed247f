"""Memory of one `creditctl serve` worker over a million decisions. A script, not a test.

    .venv/bin/python bench/memory_bench.py [--decisions N] [--clients C] [--interval S] [--chunk S]
                                           [--bound-mb MB] [--tracemalloc] [--with-worker]

One `creditctl serve --workers 1` (creditctl's gthread worker, CREDITCTL_LOG_LEVEL=INFO: production's
access log, to a file) on a throwaway PostgreSQL database with 10,000 accounts, built exactly as
bench/bench.py builds it (its Instance: migrated, 10,000 customers with a fresh 100,000,000.00 snapshot,
an orders key, the per-key rate limit off since wrk sends with one key). wrk (bench/decide.lua: unique
order ids, customers uniform over the 10,000 accounts) drives it in --chunk-second runs until N decisions
(default 1,000,000) were answered 2xx; between runs the snapshots are kept fresh and the tables vacuumed,
as bench.py does. Every --interval seconds a sampler reads the worker process's RSS (/proc/PID/status)
its USS (Private_Clean + Private_Dirty of /proc/PID/smaps_rollup; it moves when other processes map
the same library files) and its anonymous memory (Anonymous: heap and stacks, where a leak shows) beside
the decisions stored so far.

It prints the table decisions -> RSS/USS and a verdict: RSS growth from the first sample at or past 10 %
of N to the last sample is below --bound-mb (default 10 MB). Why 10 MB: the worker's RSS after warm-up
is about 100-150 MB, of which a few MB move with the allocator's arenas and the thread stacks; a leak of
one small object per decision (a dict entry, about 100 bytes) would add about 90 MB over 900,000
decisions, and even 11 bytes per decision would cross 10 MB. A bound in MB rather than in % keeps the
verdict the same whatever the baseline becomes. The results go to bench/results/<stamp>-memory.json.

--tracemalloc serves the same app from bench/memtrace (tracemalloc on in the worker; snapshots on
request at 10 % and at the end) and prints the top growing allocation sites: what grows, when something
does (slower, and tracemalloc's own memory inflates RSS: read the plain run for how much).
--with-worker runs `creditctl worker` beside the service, as production does.

Everything started is stopped and the database dropped, on success, failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_main", HERE / "bench.py")
assert _spec is not None and _spec.loader is not None
B = importlib.util.module_from_spec(_spec)
sys.modules["bench_main"] = B
_spec.loader.exec_module(B)

from sqlalchemy import text  # noqa: E402


@dataclass
class Sample:
    t_s: float
    decisions: int
    rss_kb: int
    uss_kb: int | None
    anon_kb: int | None
    loadavg_1m: float


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def smaps_rollup(pid: int) -> dict[str, int]:
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
        return {line.split(":")[0]: int(line.split()[1]) for line in lines}
    except (OSError, ValueError, IndexError):
        return {}


def uss_kb(rollup: dict[str, int]) -> int | None:
    """Private_Clean + Private_Dirty: the pages only this process maps. Moves when another process maps
    the same files (a second creditctl from this .venv shares its libraries' pages): read with care."""
    return rollup["Private_Clean"] + rollup["Private_Dirty"] if "Private_Clean" in rollup else None


class Sampler(threading.Thread):
    """Every `interval` seconds: the worker's RSS and USS and the decisions stored so far."""

    def __init__(self, inst: Any, pid: int, interval: float) -> None:
        super().__init__(name="memory-sampler", daemon=True)
        self.inst, self.pid, self.interval = inst, pid, interval
        self.samples: list[Sample] = []
        self.stop = threading.Event()
        self.t0 = time.monotonic()

    def count(self) -> int:
        with self.inst.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM decisions")).scalar_one())

    def take(self) -> Sample:
        s = Sample(
            round(time.monotonic() - self.t0, 1),
            self.count(),
            rss_kb(self.pid),
            uss_kb(rollup := smaps_rollup(self.pid)),
            rollup.get("Anonymous"),  # the heap and thread stacks: what a leak adds to
            round(os.getloadavg()[0], 2),
        )
        self.samples.append(s)
        return s

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            self.take()


def worker_pid(master_pid: int) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        kids = B.children(master_pid)
        if len(kids) == 1:
            return kids[0]
        time.sleep(0.2)
    raise RuntimeError(f"expected one gunicorn worker under {master_pid}, found {B.children(master_pid)}")


def verdict(samples: list[Sample], target: int, bound_mb: float) -> dict[str, Any]:
    first = next((s for s in samples if s.decisions >= target // 10), None)
    last = samples[-1] if samples else None
    if first is None or last is None or last is first:
        return {"verdict": "NOT MEASURED", "why": "no sample at or past 10 % and after it"}
    growth_mb = (last.rss_kb - first.rss_kb) / 1024
    per_decision = (last.rss_kb - first.rss_kb) * 1024 / max(1, last.decisions - first.decisions)
    uss_growth = (last.uss_kb - first.uss_kb) / 1024 if last.uss_kb and first.uss_kb else None
    anon_growth = (last.anon_kb - first.anon_kb) / 1024 if last.anon_kb and first.anon_kb else None
    peak = max(s.rss_kb for s in samples if s.decisions >= first.decisions) / 1024
    return {
        "verdict": "FLAT" if growth_mb < bound_mb else "GROWS",
        "bound_mb": bound_mb,
        "from": asdict(first),
        "to": asdict(last),
        "rss_growth_mb": round(growth_mb, 2),
        "uss_growth_mb": round(uss_growth, 2) if uss_growth is not None else None,
        "anon_growth_mb": round(anon_growth, 2) if anon_growth is not None else None,
        "rss_peak_after_10pct_mb": round(peak, 1),
        "bytes_per_decision": round(per_decision, 2),
        "reached_target": last.decisions >= target,
    }


def print_table(samples: list[Sample], rows: int = 25) -> None:
    print(f"\n{'decisions':>10} {'t s':>7} {'RSS MB':>8} {'USS MB':>8} {'anon MB':>8} {'load':>6}")
    step = max(1, len(samples) // rows)
    shown = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
    for s in shown:
        uss = f"{s.uss_kb / 1024:8.1f}" if s.uss_kb is not None else f"{'-':>8}"
        anon = f"{s.anon_kb / 1024:8.1f}" if s.anon_kb is not None else f"{'-':>8}"
        print(f"{s.decisions:>10,} {s.t_s:>7.0f} {s.rss_kb / 1024:>8.1f} {uss} {anon} {s.loadavg_1m:>6.2f}")


def tracemalloc_top(folder: Path, first: str, last: str, top: int = 15) -> list[str]:
    import tracemalloc

    a = tracemalloc.Snapshot.load(str(folder / f"{first}.snapshot"))
    b = tracemalloc.Snapshot.load(str(folder / f"{last}.snapshot"))
    lines = []
    for stat in b.compare_to(a, "traceback")[:top]:
        newest = list(stat.traceback)[::-1][:4]  # the allocation site first, then its callers
        frames = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in newest)
        lines.append(f"{stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+8d} blocks  {frames}")
    return lines


def request_snapshot(folder: Path, name: str, timeout_s: float = 120) -> bool:
    (folder / f"{name}.request").write_text("")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (folder / f"{name}.snapshot").exists():
            return True
        time.sleep(0.5)
    return False


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--decisions", type=int, default=1_000_000, help="stop once this many were stored")
    p.add_argument("--clients", type=int, default=16, help="wrk connections (default 16)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between samples (default 5)")
    p.add_argument("--chunk", type=float, default=60.0, help="seconds per wrk run (default 60)")
    p.add_argument("--bound-mb", type=float, default=10.0, help="allowed RSS growth (default 10 MB)")
    p.add_argument("--max-minutes", type=float, default=0, help="stop after this long even if short of N")
    p.add_argument("--tracemalloc", action="store_true", help="serve from bench/memtrace, diff snapshots")
    p.add_argument("--with-worker", action="store_true", help="`creditctl worker` beside the service")
    return p.parse_args()


def start_server(inst: Any, args: argparse.Namespace) -> tuple[Any, Path | None]:
    """`creditctl serve --workers 1` at INFO: from the repository, or from bench/memtrace (--tracemalloc)."""
    if args.with_worker:
        inst.start_worker()
    if not args.tracemalloc:
        return inst.start_service("INFO"), None
    trace_dir = inst.tmp / "tracemalloc"
    trace_dir.mkdir()
    inst.env["BENCH_TRACEMALLOC_DIR"] = str(trace_dir)
    port = B.free_port()
    cmd = [B.CREDITCTL, "serve", "--port", str(port), "--workers", "1"]
    env = {**inst.env, "CREDITCTL_LOG_LEVEL": "INFO"}
    server = inst._start("service-tracemalloc", port, cmd, env, cwd=HERE / "memtrace")
    inst.commands.append("(cd bench/memtrace) CREDITCTL_LOG_LEVEL=INFO creditctl serve --workers 1")
    return server, trace_dir


def drive(inst: Any, server: Any, sampler: Sampler, args: argparse.Namespace, run_id: str,
          results: dict[str, Any], trace_dir: Path | None) -> bool:  # fmt: skip
    """wrk runs until N decisions are stored (or --max-minutes); True if the 10 % snapshot was taken."""
    started = time.monotonic()
    snap_first = False
    while True:
        done = sampler.count()
        if done >= args.decisions:
            return snap_first
        if args.max_minutes and time.monotonic() - started > args.max_minutes * 60:
            print(f"stopped by --max-minutes at {done:,} decisions", flush=True)
            return snap_first
        if trace_dir is not None and not snap_first and done >= args.decisions // 10:
            snap_first = request_snapshot(trace_dir, "at10")
        # The last run shortened so the count lands near N (at the previous run's rate); wrk takes whole s.
        rate = results["chunks"][-1]["decisions_per_s"] if results["chunks"] else 0
        chunk = round(
            args.chunk if not rate else max(5.0, min(args.chunk, (args.decisions - done) / rate + 2))
        )
        run = B.wrk(inst, server, B.TOTAL_ACCOUNTS, args.clients, chunk, run_id, record=False)
        results["chunks"].append(asdict(run))
        s = sampler.samples[-1]
        elapsed = time.monotonic() - started
        print(f"  {elapsed:7.0f} s  {run.decisions_per_s:6.0f}/s  p99 {run.p99_ms:6.1f} ms  "
              f"{'ok' if run.valid else run.note}  | {s.decisions:>9,} decisions  "
              f"RSS {s.rss_kb / 1024:.1f} MB  anon {(s.anon_kb or 0) / 1024:.1f} MB  load {s.loadavg_1m}",
              flush=True)  # fmt: skip


def print_verdict(v: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"\nverdict: {v['verdict']}", end="")
    if "rss_growth_mb" not in v:
        print(f" ({v['why']})")
        return
    print(f" (RSS {v['from']['rss_kb'] / 1024:.1f} MB at {v['from']['decisions']:,} decisions -> "
          f"{v['to']['rss_kb'] / 1024:.1f} MB at {v['to']['decisions']:,}: "
          f"{v['rss_growth_mb']:+.2f} MB, bound {args.bound_mb:g} MB; anon {v['anon_growth_mb']:+.2f} MB; "
          f"{v['bytes_per_decision']:+.2f} bytes/decision; "
          f"peak {v['rss_peak_after_10pct_mb']} MB)")  # fmt: skip
    if not v["reached_target"]:
        print(f"  NOTE: stopped at {v['to']['decisions']:,} of {args.decisions:,} decisions")


def main() -> int:
    args = parse_args()
    run_id = uuid.uuid4().hex[:8]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    signal.signal(signal.SIGTERM, B._terminate)
    signal.signal(signal.SIGHUP, B._terminate)
    info = B.machine_info()
    print(
        f"memory bench {stamp}: code {info.get('code')}, load average {info['loadavg_at_start']}, "
        f"target {args.decisions:,} decisions, {args.clients} clients",
        flush=True,
    )
    results: dict[str, Any] = {
        "stamp": stamp,
        "machine": info,
        "argv": sys.argv,
        "target": args.decisions,
        "clients": args.clients,
        "samples": [],
        "chunks": [],
    }
    sampler: Sampler | None = None
    try:
        inst = B.Instance("postgres", run_id, workers=1)
        inst.prepare()
        server, trace_dir = start_server(inst, args)
        pid = worker_pid(server.proc.pid)
        results["commands"] = inst.commands
        print(f"service: gunicorn master {server.proc.pid}, worker {pid}; log {server.log}", flush=True)
        sampler = Sampler(inst, pid, args.interval)
        first = sampler.take()
        print(f"start: {first.decisions} decisions, RSS {first.rss_kb / 1024:.1f} MB", flush=True)
        sampler.start()
        snap_first = drive(inst, server, sampler, args, run_id, results, trace_dir)
        sampler.stop.set()
        sampler.join()
        sampler.take()
        results["samples"] = [asdict(s) for s in sampler.samples]
        results["verdict"] = verdict(sampler.samples, args.decisions, args.bound_mb)
        if trace_dir is not None:
            if snap_first and request_snapshot(trace_dir, "end"):
                results["tracemalloc_top"] = tracemalloc_top(trace_dir, "at10", "end")
            else:
                results["tracemalloc_top"] = ["(no snapshot pair: the run did not reach 10 % or timed out)"]
        print_table(sampler.samples)
        print_verdict(results["verdict"], args)
        for line in results.get("tracemalloc_top", []):
            print("  " + line)
        print(f"load average at the end: {os.getloadavg()}")
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted ({exc}); cleaning up", file=sys.stderr)
        if sampler is not None:
            results["samples"] = [asdict(s) for s in sampler.samples]
            results["verdict"] = verdict(sampler.samples, args.decisions, args.bound_mb)
        return 130
    finally:
        if sampler is not None:
            sampler.stop.set()
            sampler.join(30)
        B.CLEANUP.run()
        if results["samples"]:
            B.RESULTS.mkdir(parents=True, exist_ok=True)
            path = B.RESULTS / f"{stamp}-memory.json"
            path.write_text(json.dumps(results, indent=2, default=str))
            print(f"\nresults: {path.relative_to(B.ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
