"""Scale-out, measured: two `creditctl serve` instances behind nginx against one, on PostgreSQL, and
decisions/s while the upstream fails (breaker open) against healthy. A script, not a test.

    .venv/bin/python bench/scale_out.py [--duration 8] [--clients 32] [--workers 2] [--threads 8]
                                        [--repeat 2] [--direct] [--skip-upstream]

Part 1, instances. A throwaway database on the shared PostgreSQL with bench/bench.py's 10,000 accounts
(fresh snapshots: no balance fetch during the runs), two instances started exactly as bench.py starts the
service (`creditctl serve --workers W --threads T` each), and two nginx from deploy/nginx/creditctl.conf on
their own ports: one in front of instance 1 only, one in front of both, so both sides pay the same proxy.
wrk (bench/decide.lua) drives each proxy in turn, interleaved, --repeat times, at --clients over 10,000
accounts and over one hot account; the median run is shown. The instances reach PostgreSQL through
PgBouncer (deploy/pgbouncer/pgbouncer.ini, transaction pooling, 20 server connections), as in production,
which also keeps the shared server's connections bounded (four gunicorn processes may hold 30 each);
--direct connects them straight to PostgreSQL instead.

Part 2, the upstream. A second throwaway database with 50 customers whose balances come from the Haier
emulator (`creditctl haier emulate`'s app, tests/e2e/recording_emulator.py), the rule set's refresh_after_s
1 s (each customer is fetched about every second while orders come), one instance behind nginx. wrk runs
while the emulator is healthy, then while it answers 503 to everything, once the breakers are open
(decisions fall back at once: CIRCUIT_OPEN).

For every run: decisions/s, p50 and p99, outcomes, and the CPU each part used in % of one core (the
instances, PostgreSQL, nginx, PgBouncer, wrk, the emulator, the rest of the machine) with the load average
before it. Everything started is stopped, every database made is dropped."""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import requests  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

import bench as B  # noqa: E402
from adapters.bootstrap import bootstrap, load_settings  # noqa: E402
from adapters.sql.engine import make_engine  # noqa: E402
from adapters.sql.tables import decisions  # noqa: E402
from creditctl.services.customers import register_customer  # noqa: E402
from tests.proxies import nginx, pgbouncer  # noqa: E402

EMULATOR = ROOT / "tests" / "e2e" / "recording_emulator.py"
UPSTREAM_CUSTOMERS = 50


def cpu_split(
    before: dict[int, Any], after: dict[int, Any], groups: dict[str, set[int]], seconds: float
) -> dict:
    """% of one core per part: processes by session (`groups`: name -> process group ids), else by name."""
    tick = os.sysconf("SC_CLK_TCK")
    split: dict[str, float] = {name: 0.0 for name in groups} | {
        "postgres": 0.0, "nginx": 0.0, "pgbouncer": 0.0, "wrk": 0.0, "other": 0.0,
    }  # fmt: skip
    me = os.getpid()
    for pid, (comm, pgid, ticks) in after.items():
        delta = ticks - before.get(pid, (comm, pgid, 0))[2]
        if delta <= 0 or pid == me:
            continue
        named = next((name for name, pgids in groups.items() if pgid in pgids), None)
        if named is None:
            named = comm if comm in ("postgres", "nginx", "pgbouncer", "wrk") else "other"
        split[named] += delta
    return {k: round(100 * v / tick / seconds, 1) for k, v in split.items()}


def run_wrk(url: str, key: str, accounts: int, clients: int, duration_s: float, prefix: str,
            groups: dict[str, set[int]]) -> dict[str, Any]:  # fmt: skip
    load = os.getloadavg()[0]
    before = B.cpu_snapshot()
    cmd = ["wrk", "-t", str(min(clients, 2)), "-c", str(clients), "-d", f"{duration_s:g}s",
           "--timeout", "10s", "--latency", "-s", str(B.LUA), url,
           "--", key, str(accounts), prefix]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60)
    after = B.cpu_snapshot()
    m = re.search(r"^BENCH_JSON (\{.*\})$", out.stdout, re.M)
    if out.returncode != 0 or m is None:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    s = json.loads(m.group(1))
    seconds = s["duration_us"] / 1e6
    bad = s["status"] + s["connect"] + s["read"] + s["write"] + s["timeout"]
    return {
        "decisions_per_s": round(max(0, s["requests"] - s["status"]) / seconds, 1),
        "p50_ms": s["p50_us"] / 1000,
        "p99_ms": s["p99_us"] / 1000,
        "requests": s["requests"],
        "errors": bad,
        "loadavg_before": round(load, 2),
        "cpu": cpu_split(before, after, groups, seconds),
        "prefix": prefix,
    }


def outcomes(inst: B.Instance, prefix: str) -> dict[str, int]:
    d = decisions.c
    stmt = select(d.outcome, func.count()).where(d.order_id.like(prefix + "-%")).group_by(d.outcome)
    with inst.engine.connect() as conn:
        return dict(conn.execute(stmt).all())


def fmt(label: str, r: dict[str, Any]) -> str:
    cpu = " ".join(f"{k} {v:.0f}" for k, v in r["cpu"].items() if v >= 0.5)
    return (f"  {label:<34} {r['decisions_per_s']:>8.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f}"
            f"  errors {r['errors']:<4} load {r['loadavg_before']:<5}  CPU%: {cpu}")  # fmt: skip


def median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ranked = sorted(runs, key=lambda r: r["decisions_per_s"])
    chosen = dict(ranked[(len(ranked) - 1) // 2])
    chosen["all"] = [r["decisions_per_s"] for r in runs]
    return chosen


def part_instances(args: argparse.Namespace, stack: ExitStack, run_id: str) -> dict[str, Any]:
    inst = B.Instance("postgres", run_id, args.workers, args.threads)
    stack.callback(inst.close)
    inst.prepare()
    if not args.direct:
        bouncer = stack.enter_context(pgbouncer(5432, {"postgres": "bench"}, dbname=inst.pg_name))
        inst.env |= {"CREDITCTL_DATABASE_URL": bouncer.url("postgres", "bench"),
                     "CREDITCTL_DATABASE_POOLER": "transaction"}  # fmt: skip
    one, two = inst.start_service(), inst.start_service()
    groups = {"instance 1": {one.proc.pid}, "instance 2": {two.proc.pid}}
    proxies = {
        "1 instance": stack.enter_context(nginx([one.port])),
        "2 instances": stack.enter_context(nginx([one.port, two.port])),
    }
    for proxy in proxies.values():  # warm: every gunicorn worker, every pooled connection
        run_wrk(proxy.url, inst.key, B.TOTAL_ACCOUNTS, 8, 2, f"w{run_id}{uuid.uuid4().hex[:4]}", groups)
    results: dict[str, Any] = {}
    for accounts in (B.TOTAL_ACCOUNTS, 1):
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in proxies}
        for _ in range(args.repeat):
            for name, proxy in proxies.items():
                inst.refresh_snapshots()
                inst.maintain()
                prefix = f"s{run_id}{uuid.uuid4().hex[:6]}"
                r = run_wrk(proxy.url, inst.key, accounts, args.clients, args.duration, prefix, groups)
                r["outcomes"] = outcomes(inst, prefix)
                runs[name].append(r)
        for name, rs in runs.items():
            results[f"{accounts} accounts, {name}"] = median(rs)
    for server in (one, two):  # their connections go before the next part opens its own
        B.CLEANUP.stop(server.proc)
    return results


def part_upstream(args: argparse.Namespace, stack: ExitStack, run_id: str) -> dict[str, Any]:
    inst = B.Instance("postgres", run_id + "u", args.workers, args.threads)
    stack.callback(inst.close)
    port = B.free_port()
    emulator = f"http://127.0.0.1:{port}"
    log = inst.tmp / "emulator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(EMULATOR), "--port", str(port)], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)  # fmt: skip
    B.CLEANUP.procs.append(proc)
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"{emulator}/_emulator/stats", timeout=1)
            break
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    customers = {inst.code(i): f"pw-{i}" for i in range(1, UPSTREAM_CUSTOMERS + 1)}
    for code, password in customers.items():
        requests.post(f"{emulator}/_emulator/balances", timeout=5, json={
            "customerCode": code, "customerPassword": password, "saleGroupCode": B.SALE_GROUP,
            "payerAccountBalance": B.BALANCE}).raise_for_status()  # fmt: skip
    inst.env |= {"CREDITCTL_BALANCE_PROVIDER": "haier", "CREDITCTL_ALLOW_LOOPBACK_URLS": "true"}
    config = {"base_url": emulator, "auth": "client_credentials", "client_id": "demo-client",
              "client_secret": "demo-secret", "auth_scheme": "Bearer", "customers": customers,
              "rate_limit_per_s": 100,
              "timeouts": {"connect_s": 1, "read_s": 2}, "is_active": True}  # fmt: skip
    (inst.tmp / "haier.json").write_text(json.dumps(config))
    inst._cli(["db", "upgrade"])
    inst._cli(["haier", "configure", "main", "--file", str(inst.tmp / "haier.json")])
    document = json.loads(inst._cli(["rules", "export"]))
    document["params"] |= {"refresh_after_s": 1, "max_balance_age_s": 3}
    (inst.tmp / "rules.json").write_text(json.dumps(document))
    inst._cli(["rules", "import", str(inst.tmp / "rules.json")])
    engine = make_engine(inst.url)
    context = bootstrap(load_settings(inst.env), engine=engine)
    for code in customers:
        register_customer(code, uow=context.uow(), clock=context.clock)
    engine.dispose()
    inst.key = inst._cli(["keys", "create", "--role", "orders", "--name", "bench"]).strip().splitlines()[-1]
    server = inst.start_service()
    groups = {"instance": {server.proc.pid}, "emulator": {proc.pid}}
    proxy = stack.enter_context(nginx([server.port]))
    results: dict[str, Any] = {}
    run_wrk(proxy.url, inst.key, UPSTREAM_CUSTOMERS, 8, 2, f"w{run_id}{uuid.uuid4().hex[:4]}", groups)
    for state, mode in (("upstream healthy", "none"), ("upstream failing, breaker open", "503")):
        requests.post(f"{emulator}/_emulator/faults", json={"mode": mode}, timeout=5).raise_for_status()
        run_wrk(proxy.url, inst.key, UPSTREAM_CUSTOMERS, 8, 3, f"w{run_id}{uuid.uuid4().hex[:4]}", groups)
        prefix = f"u{run_id}{uuid.uuid4().hex[:6]}"
        calls = requests.get(f"{emulator}/_emulator/stats", timeout=5).json()["balance_calls"]
        r = run_wrk(proxy.url, inst.key, UPSTREAM_CUSTOMERS, args.clients, args.duration, prefix, groups)
        r["outcomes"] = outcomes(inst, prefix)
        r["upstream_calls"] = (
            requests.get(f"{emulator}/_emulator/stats", timeout=5).json()["balance_calls"] - calls
        )
        results[f"{UPSTREAM_CUSTOMERS} accounts, {state}"] = r
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers per instance")
    ap.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    ap.add_argument("--repeat", type=int, default=2, help="runs per cell (the median is shown)")
    ap.add_argument(
        "--direct", action="store_true", help="the instances straight to PostgreSQL, no PgBouncer"
    )
    ap.add_argument("--skip-upstream", action="store_true")
    args = ap.parse_args()
    run_id = uuid.uuid4().hex[:8]
    print(f"scale-out: {os.cpu_count()} cores, load {os.getloadavg()}, {args.clients} clients, "
          f"{args.duration:g} s runs, {args.workers} workers x {args.threads} threads per instance"
          f"{', straight to PostgreSQL' if args.direct else ', through PgBouncer'}")  # fmt: skip
    results: dict[str, Any] = {}
    try:
        with ExitStack() as stack:
            results |= part_instances(args, stack, run_id)
            report(results)
            if not args.skip_upstream:
                upstream = part_upstream(args, stack, run_id)
                report(upstream)
                results |= upstream
            B.CLEANUP.run()  # the servers before their proxies go
    finally:
        B.CLEANUP.run()
    loads = [r["loadavg_before"] for r in results.values()]
    print(f"  load average before the runs: median {statistics.median(loads)}, max {max(loads)}")
    return 0


def report(results: dict[str, Any]) -> None:
    print(f"  {'':<34} {'dec/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for label, r in results.items():
        print(fmt(label, r))
        extra = {k: r[k] for k in ("outcomes", "upstream_calls", "all") if k in r}
        print(f"  {'':<34} {extra}")
    cells = [("10000 accounts, 1 instance", "10000 accounts, 2 instances"),
             ("1 accounts, 1 instance", "1 accounts, 2 instances")]  # fmt: skip
    pairs = [(a, b) for a, b in cells if a in results]
    for a, b in pairs:
        print(f"  {b} / {a}: {results[b]['decisions_per_s'] / results[a]['decisions_per_s']:.2f}x")
    h, f = "50 accounts, upstream healthy", "50 accounts, upstream failing, breaker open"
    if h in results:
        print(
            f"  breaker open / healthy: {results[f]['decisions_per_s'] / results[h]['decisions_per_s']:.2f}x"
        )


if __name__ == "__main__":
    sys.exit(main())
