"""In-process profile of one decision: no HTTP server, no load generator, one client, so what is left is
the service time of POST /v1/decisions itself (the issue's "single-client latency").

    .venv/bin/python bench/profile_decide.py [--db postgres|sqlite] [-n 2000]

Builds a throwaway instance exactly like bench/bench.py (10,000 accounts, orders key), then through
Flask's test client, sequentially on fresh order ids:
  1. the service (adapters.bootstrap.create_wsgi_app, CREDITCTL_LOG_LEVEL=WARNING) and the ceiling
     (bench/ceiling_app.py): mean and p50/p99 time per decision, SQL statements and transactions per
     decision (SQLAlchemy / DB-API events);
  2. the service again under pyinstrument: the call tree, written to
     bench/results/<timestamp>-pyinstrument.txt and its top printed.
Cleans up like bench.py.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench


def _body(i: int, run: str) -> dict[str, str]:
    return {
        "order_id": f"{run}-{i}",
        "customer_code": bench.Instance.code(1 + (i * 7919) % bench.TOTAL_ACCOUNTS),
        "sale_group_code": bench.SALE_GROUP,
        "amount": f"{1 + i % 99}.{i % 100:02d}",
    }


def _drive(client: Any, key: str, n: int, run: str) -> list[float]:
    headers = {"Authorization": f"Bearer {key}"}
    times = []
    for i in range(n):
        t = time.perf_counter()
        r = client.post("/v1/decisions", json=_body(i, run), headers=headers)
        times.append(time.perf_counter() - t)
        if r.status_code != 201:
            raise RuntimeError(f"decision {i}: {r.status_code} {r.get_data(as_text=True)[:300]}")
    return times


def _backend_cpu_s(db: str) -> float:
    """CPU seconds used so far by the PostgreSQL backends connected to database `db` (local server)."""
    if not db:
        return 0.0
    with bench.pg_connect_admin() as conn:
        pids = [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (db,))]
    ticks = 0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(f[11]) + int(f[12])
        except (OSError, IndexError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


SPLIT: dict[str, tuple[float, float]] = {}


def _measure(client: Any, key: str, n: int, run: str, db: str) -> tuple[list[float], float, float]:
    """Wall times per decision, and CPU ms per decision of this process and of PostgreSQL's backends
    (this process's CPU split into user and system time is kept in SPLIT[run])."""
    pg0, t0 = _backend_cpu_s(db), os.times()
    times = _drive(client, key, n, run)
    t1, pg1 = os.times(), _backend_cpu_s(db)
    user, system = 1000 * (t1.user - t0.user) / n, 1000 * (t1.system - t0.system) / n
    SPLIT[run] = (user, system)
    return times, user + system, 1000 * (pg1 - pg0) / n


def _summary(
    name: str, times: list[float], statements: int, commits: int, n: int, cpu_ms: float, pg_ms: float
) -> str:
    q = statistics.quantiles(times, n=100)
    return (
        f"  {name:<8} wall mean {1000 * statistics.fmean(times):6.2f} ms  p50 {1000 * q[49]:6.2f} ms  "
        f"p99 {1000 * q[98]:6.2f} ms | CPU/decision: this process {cpu_ms:5.2f} ms "
        f"(user {SPLIT.get(name, (0, 0))[0]:4.2f} + system {SPLIT.get(name, (0, 0))[1]:4.2f}), "
        f"PostgreSQL {pg_ms:5.2f} ms | "
        f"SQL statements/decision {statements / n:4.1f}, transactions/decision {commits / n:4.1f}"
    )


def _cprofile_table(stats: Any, n: int, top: int = 45) -> str:
    """Cumulative and own CPU % per function, for functions of this project and the layers around it."""
    total = max(ct for (_f, _l, _n), (_cc, _nc, _tt, ct, _c) in stats.stats.items())
    rows = []
    for (f, line, name), (_cc, nc, tt, ct, _callers) in stats.stats.items():
        short = f.split("site-packages/")[-1].replace(str(bench.ROOT) + "/", "")
        rows.append((ct, tt, nc, f"{name} ({short}:{line})"))
    out = ["  cum %   own %    calls/decision  function"]
    for ct, tt, nc, label in sorted(rows, reverse=True)[:top]:
        out.append(f"  {100 * ct / total:5.1f}  {100 * tt / total:5.1f}  {nc / n:>14.1f}  {label}")
    out.append("  own % (top 20):")
    for ct, tt, nc, label in sorted(rows, key=lambda r: -r[1])[:20]:
        out.append(f"  {100 * ct / total:5.1f}  {100 * tt / total:5.1f}  {nc / n:>14.1f}  {label}")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    ap.add_argument("-n", type=int, default=2000, help="decisions per measurement")
    args = ap.parse_args()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run = uuid.uuid4().hex[:8]
    inst = bench.Instance(args.db, f"prof{run}", 1)
    try:
        inst.prepare()
        os.environ.update({k: v for k, v in inst.env.items() if k.startswith("CREDITCTL_")})
        os.environ["BENCH_CEILING_DB"] = inst.ceiling_db

        from sqlalchemy import event

        import adapters.bootstrap as composition

        service = composition.create_wsgi_app()
        engine = composition._ENGINES[inst.url]
        counts = {"sql": 0, "tx": 0}
        event.listen(
            engine, "before_cursor_execute", lambda *a, **k: counts.__setitem__("sql", counts["sql"] + 1)
        )
        event.listen(engine, "begin", lambda *a: counts.__setitem__("tx", counts["tx"] + 1))
        ceiling_mod = importlib.import_module("ceiling_app")
        ceiling = ceiling_mod.app

        print(f"in-process, one client, {args.db}, {args.n} decisions each (after 200 warm-up):")
        svc_client, ceil_client = service.test_client(), ceiling.test_client()
        _drive(svc_client, inst.key, 200, f"{run}w")
        _drive(ceil_client, inst.key, 200, f"{run}cw")
        counts.update(sql=0, tx=0)
        pg_db = getattr(inst, "pg_name", "")
        svc_times, svc_cpu, svc_pg = _measure(svc_client, inst.key, args.n, f"{run}s", pg_db)
        SPLIT["service"] = SPLIT[f"{run}s"]
        print(_summary("service", svc_times, counts["sql"], counts["tx"], args.n, svc_cpu, svc_pg))
        ceil_times, ceil_cpu, ceil_pg = _measure(ceil_client, inst.key, args.n, f"{run}c", pg_db)
        SPLIT["ceiling"] = SPLIT[f"{run}c"]
        # the ceiling's statements are fixed: SELECT ... FOR UPDATE, INSERT decision, INSERT hold,
        # UPDATE exposure (BEGIN IMMEDIATE first on SQLite), one transaction
        print(_summary("ceiling", ceil_times, 4 * args.n, args.n, args.n, ceil_cpu, ceil_pg))
        print(
            f"  service/ceiling: wall {statistics.fmean(svc_times) / statistics.fmean(ceil_times):.2f}x, "
            f"this process's CPU {svc_cpu / ceil_cpu:.2f}x, "
            f"PostgreSQL CPU {svc_pg / ceil_pg if ceil_pg else 0:.2f}x, "
            f"total CPU {(svc_cpu + svc_pg) / (ceil_cpu + ceil_pg):.2f}x"
        )

        # py-spy on this very process without --idle (psycopg's waits still count as active)
        spy_raw = bench.RESULTS / f"{stamp}-pyspy-inprocess-cpu.txt"
        bench.RESULTS.mkdir(parents=True, exist_ok=True)
        spy = subprocess.Popen(
            [bench.PY_SPY, "record", "--pid", str(os.getpid()), "--rate", "250", "--format", "raw",
             "--output", str(spy_raw), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        bench.CLEANUP.procs.append(spy)
        time.sleep(1.0)
        _drive(svc_client, inst.key, args.n, f"{run}y")
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        spy.wait(30)
        bench.CLEANUP.procs.remove(spy)
        cpu = bench.summarise_profile(spy_raw, start_marker="Client.post (")
        print(
            f"\npy-spy (no --idle) of the service in-process ({cpu['request_samples']} samples): "
            f"{spy_raw.relative_to(bench.ROOT)}"
        )
        print("  self % by package/module:")
        for f, pct in cpu["self_by_package"][:15]:
            print(f"    {pct:5.1f}  {f}")
        print(f"  {cpu['io_wait_pct']:.1f} % blocked on PostgreSQL's socket; the rest by package:")
        for f, pct in cpu["busy_by_package"][:15]:
            print(f"    {pct:5.1f}  {f}")
        print("  inclusive % (top 45):")
        for f, pct in cpu["inclusive"][:45]:
            print(f"    {pct:5.1f}  {f}")
        print("  self % (top 25):")
        for f, pct in cpu["self"][:25]:
            print(f"    {pct:5.1f}  {f}")

        # cProfile with a CPU clock: deterministic, and time blocked on PostgreSQL does not count
        import cProfile
        import io
        import pstats

        cprof = cProfile.Profile(time.process_time)
        cprof.enable()
        _drive(svc_client, inst.key, args.n, f"{run}k")
        cprof.disable()
        prof_path = bench.RESULTS / f"{stamp}-cprofile-cpu.prof"
        cprof.dump_stats(prof_path)
        print(
            "\ncProfile, CPU time (process_time) of the service in-process: "
            f"{prof_path.relative_to(bench.ROOT)}"
        )
        print(_cprofile_table(pstats.Stats(cprof, stream=io.StringIO()), args.n))

        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
        _drive(svc_client, inst.key, args.n, f"{run}p")
        profiler.stop()
        bench.RESULTS.mkdir(parents=True, exist_ok=True)
        txt = bench.RESULTS / f"{stamp}-pyinstrument.txt"
        text = profiler.output_text(unicode=False, color=False, show_all=False)
        txt.write_text(text)
        (bench.RESULTS / f"{stamp}-pyinstrument-all.txt").write_text(
            profiler.output_text(unicode=False, color=False, show_all=True)
        )
        flat = profiler.output_text(unicode=False, color=False, flat=True)
        print(f"\npyinstrument call tree of the service: {txt.relative_to(bench.ROOT)} top:")
        print("\n".join(text.splitlines()[:90]))
        print("\nself time by function (pyinstrument flat view), top 30:")
        print("\n".join(flat.splitlines()[:36]))
        engine.dispose()
        if args.db == "postgres":
            ceiling_mod.close_this_thread()
    finally:
        inst.close()
        bench.CLEANUP.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
