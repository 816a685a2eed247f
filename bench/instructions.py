"""Instructions per decision in the serving worker, the service against the ceiling, counted by valgrind:
the same count for the same code, whatever else the machine is doing. Wall-clock CPU figures on this
shared machine move 10-15 % from run to run (docs/performance.md), more than most changes to the hot
path; an instruction count does not. Instructions are not time (a cache miss costs more than an add), so
this ranks and compares, and the wall-clock benches (bench.py) still judge.

    .venv/bin/python bench/instructions.py [-n 1000] [--warm 100] [--baseline PATH]

One throwaway PostgreSQL instance (bench.Instance: 10,000 accounts, an orders key). Each server runs
under `valgrind --tool=cachegrind --cache-sim=no` with the gunicorn argv that `creditctl serve
--workers 1 --threads 1` execs (bench.serve_argv; a long --timeout, as a worker under valgrind is
some 50x slower): the service at INFO
(its access log written, as in production), the ceiling (ceiling_app.py) under the same argv. Twice per
server: --warm decisions then n, or --warm then 2n, one at a time on a keep-alive connection, then the
server is stopped and valgrind reports the worker's instructions ("I refs") at its exit. The difference
of the two runs over n is the instructions of a decision: start-up, warm-up and exit cancel out.
(callgrind's client requests do not zero a forked, threaded worker's counters: tried, they counted
the whole process.) Threads that tick with the clock (the rule-set cache's refresh, gunicorn's heartbeat)
run some 50x more often per decision under valgrind; their share is small and printed as the idle rate.
PYTHONHASHSEED is fixed so both runs hash alike.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench


@dataclass
class Count:
    name: str
    per_decision: float  # instructions: (2n run - n run) / n
    seconds: float  # the extra n decisions' wall time under valgrind


def _worker_pid(master: int, timeout_s: float = 120) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        kids = bench.children(master)
        if kids:
            return kids[0]
        time.sleep(0.2)
    raise RuntimeError(f"no gunicorn worker under pid {master}")


IREFS = re.compile(r"^==(\d+)== I\s+refs:\s+([\d,]+)", re.M)


def _irefs(log: Path, pid: int) -> int:
    """The instructions valgrind reported at the exit of `pid`."""
    for found in IREFS.finditer(log.read_text(errors="replace")):
        if int(found.group(1)) == pid:
            return int(found.group(2).replace(",", ""))
    raise RuntimeError(f"valgrind reported no instructions for pid {pid} in {log}")


def _decide(conn: http.client.HTTPConnection, key: str, order_id: str, account: int) -> None:
    body = json.dumps({"order_id": order_id, "customer_code": bench.Instance.code(account),
                       "sale_group_code": bench.SALE_GROUP, "amount": "1.00"})  # fmt: skip
    conn.request("POST", "/v1/decisions", body, {"Authorization": f"Bearer {key}",
                                                  "Content-Type": "application/json"})  # fmt: skip
    answer = conn.getresponse()
    text = answer.read()
    if answer.status != 201:
        raise RuntimeError(f"{answer.status}: {text[:300]!r}")


def one_run(inst: bench.Instance, name: str, cmd: list[str], env: dict[str, str], decisions: int,
            warm: int) -> tuple[int, float]:  # fmt: skip
    """The worker's instructions from start to exit, --warm then `decisions` decisions; and the wall time
    of those decisions."""
    port = bench.free_port()
    cmd = [*cmd]
    cmd[cmd.index("--bind") + 1] = f"127.0.0.1:{port}"
    tag = uuid.uuid4().hex[:6]
    log = inst.tmp / f"valgrind-{name}-{tag}.log"
    valgrind = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                f"--log-file={log}"]  # fmt: skip
    out = inst.tmp / f"{name}-{tag}.out"
    with out.open("wb") as fh:
        proc = subprocess.Popen([*valgrind, *cmd], cwd=bench.ROOT, env={**env, "PYTHONHASHSEED": "0"},
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    bench.CLEANUP.procs.append(proc)
    try:
        bench.wait_healthy(port, proc, out, timeout_s=600)
        worker = _worker_pid(proc.pid)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for i in range(warm):
            _decide(conn, inst.key, f"{name}-{tag}-w{i}", 1 + (i * 7919) % bench.TOTAL_ACCOUNTS)
        started = time.monotonic()
        for i in range(decisions):
            _decide(conn, inst.key, f"{name}-{tag}-{i}", 1 + (i * 104729) % bench.TOTAL_ACCOUNTS)
        seconds = time.monotonic() - started
        conn.close()
    finally:
        bench.CLEANUP.stop(proc, grace_s=120)
    return _irefs(log, worker), seconds


def count(inst: bench.Instance, name: str, cmd: list[str], env: dict[str, str], n: int, warm: int) -> Count:
    short, short_s = one_run(inst, name, cmd, env, n, warm)
    long, long_s = one_run(inst, name, cmd, env, 2 * n, warm)
    print(f"  {name}: {short:,} instructions with {n} decisions, {long:,} with {2 * n}", flush=True)
    return Count(name, (long - short) / n, long_s - short_s)


def gunicorn_argv(inst: bench.Instance) -> list[str]:
    """`creditctl serve --workers 1 --threads 1`'s gunicorn argv, with a long timeout."""
    argv = bench.serve_argv(inst.env, 1, 1)
    if not argv or "--bind" not in argv or argv[-1] != "wsgi:app":
        raise RuntimeError(f"could not capture creditctl serve's gunicorn argv: {argv}")
    argv = list(argv)
    if "--timeout" in argv:
        argv[argv.index("--timeout") + 1] = "3600"
    else:
        argv[-1:-1] = ["--timeout", "3600"]
    return argv


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=1000, help="decisions counted per server")
    ap.add_argument("--warm", type=int, default=100, help="decisions before counting")
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout's service, counted too")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is needed: apt-get install valgrind")
        return 2
    inst = bench.Instance("postgres", f"ir{uuid.uuid4().hex[:6]}", workers=1, threads=1)
    counts: list[Count] = []
    try:
        inst.prepare()
        argv = gunicorn_argv(inst)
        service_env = {**inst.env, "CREDITCTL_LOG_LEVEL": "INFO"}
        servers = [("service", argv, service_env)]
        if args.baseline is not None:
            path = str(args.baseline.resolve())
            servers.append(
                ("baseline", [*argv[:-1], "--chdir", path, "wsgi:app"], {**service_env, "PYTHONPATH": path})
            )
        ceiling = [*argv[:-1], "--chdir", str(bench.BENCH), "ceiling_app:app"]
        servers.append(("ceiling", ceiling, {**inst.env, "BENCH_CEILING_DB": inst.ceiling_db}))
        for name, cmd, env in servers:
            counts.append(count(inst, name, cmd, env, args.n, args.warm))
            print(f"  {name}: {counts[-1].per_decision:,.0f} instructions a decision", flush=True)
        base = counts[-1].per_decision
        print(f"instructions a decision in the serving worker ((run of {2 * args.n} - run of {args.n}) / "
              f"{args.n}, after {args.warm}; PostgreSQL, one worker, one thread, one client)")  # fmt: skip
        print(f"{'server':>9} | {'a decision':>12} | vs ceiling | {args.n} decisions under valgrind")
        for c in counts:
            print(
                f"{c.name:>9} | {c.per_decision:>12,.0f} | {c.per_decision / base:>9.2f}x | {c.seconds:.0f} s"
            )
    finally:
        inst.close()
        bench.CLEANUP.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
