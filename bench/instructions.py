"""Instructions per decision in the serving worker, the service against the ceiling, counted by valgrind's
callgrind: the same count for the same code, whatever else the machine is doing. Wall-clock CPU figures
on this shared machine move 10-15 % from run to run (docs/performance.md), more than most changes to the
hot path; an instruction count resolves well under 1 %. Instructions are not time (a cache miss costs
more than an add), so this ranks and compares, and the wall-clock benches (bench.py) still judge.

    .venv/bin/python bench/instructions.py [-n 300] [--warm 200] [--baseline PATH] [--top 0]

One throwaway PostgreSQL instance (bench.Instance: 10,000 accounts, an orders key). Each server runs
alone under `valgrind --tool=callgrind`, with the gunicorn argv `creditctl serve --workers 1` execs
(bench.serve_argv; a long --timeout, as a worker under valgrind is some 50x slower): the service at INFO
(its access log written, as in production), the ceiling as bench.py runs it (ceiling_app.py). Per server:
--warm decisions, one at a time on a keep-alive connection; the worker's counters zeroed
(callgrind_control -z); n decisions; a dump (callgrind_control -d). Then the same wall time idle, zeroed
and dumped again: threads that tick with the clock (the rule-set cache's refresh, gunicorn's heartbeat)
run 50x more often per decision under valgrind than without it, so their idle count is taken off.
Printed: instructions per decision of each server (and of --baseline, another checkout's service), the
ratio to the ceiling, and with --top K the K functions of the service with the most instructions of
their own (callgrind_annotate: C functions; the interpreter's time is in _PyEval_EvalFrameDefault).
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

TOTALS = re.compile(r"^(?:summary|totals):\s+(\d+)", re.M)


@dataclass
class Count:
    name: str
    per_decision: float  # instructions, idle taken off
    raw_per_decision: float
    idle_per_decision: float
    seconds: float  # wall time of the n decisions under valgrind
    dump: Path


def _worker_pid(master: int, timeout_s: float = 120) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        kids = bench.children(master)
        if kids:
            return kids[0]
        time.sleep(0.2)
    raise RuntimeError(f"no gunicorn worker under pid {master}")


def _control(flag: str, pid: int) -> None:
    out = subprocess.run(["callgrind_control", flag, str(pid)], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"callgrind_control {flag} {pid}: {out.stdout} {out.stderr}")


def _dump(pid: int, folder: Path) -> tuple[int, Path]:
    before = set(folder.glob(f"callgrind.out.{pid}*"))
    _control("-d", pid)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        new = sorted(set(folder.glob(f"callgrind.out.{pid}*")) - before, key=lambda p: p.stat().st_mtime)
        if new:
            text = new[-1].read_text(errors="replace")
            found = TOTALS.search(text)
            if found:
                return int(found.group(1)), new[-1]
        time.sleep(0.2)
    raise RuntimeError(f"no callgrind dump of pid {pid} in {folder}")


def _decide(conn: http.client.HTTPConnection, key: str, order_id: str, account: int) -> None:
    body = json.dumps({"order_id": order_id, "customer_code": bench.Instance.code(account),
                       "sale_group_code": bench.SALE_GROUP, "amount": "1.00"})  # fmt: skip
    conn.request("POST", "/v1/decisions", body, {"Authorization": f"Bearer {key}",
                                                  "Content-Type": "application/json"})  # fmt: skip
    answer = conn.getresponse()
    text = answer.read()
    if answer.status != 201:
        raise RuntimeError(f"{answer.status}: {text[:300]!r}")


def count(inst: bench.Instance, name: str, cmd: list[str], env: dict[str, str], cwd: Path,
          n: int, warm: int, port: int) -> Count:  # fmt: skip
    folder = inst.tmp / f"callgrind-{name}"
    folder.mkdir()
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/callgrind.out.%p",
                "--vgdb=yes", "--vgdb-error=999999"]  # fmt: skip
    log = inst.tmp / f"{name}.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen([*valgrind, *cmd], cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    bench.CLEANUP.procs.append(proc)
    try:
        bench.wait_healthy(port, proc, log, timeout_s=600)
        worker = _worker_pid(proc.pid)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        run = uuid.uuid4().hex[:6]
        for i in range(warm):
            _decide(conn, inst.key, f"{name}-{run}-w{i}", 1 + (i * 7919) % bench.TOTAL_ACCOUNTS)
        _control("-z", worker)
        started = time.monotonic()
        for i in range(n):
            _decide(conn, inst.key, f"{name}-{run}-{i}", 1 + (i * 104729) % bench.TOTAL_ACCOUNTS)
        seconds = time.monotonic() - started
        busy, dump = _dump(worker, folder)
        _control("-z", worker)
        time.sleep(seconds)
        idle, _ = _dump(worker, folder)
        conn.close()
    finally:
        bench.CLEANUP.stop(proc, grace_s=60)
    return Count(name, (busy - idle) / n, busy / n, idle / n, seconds, dump)


def service_cmd(inst: bench.Instance, port: int) -> list[str]:
    argv = bench.serve_argv(inst.env, 1)
    if not argv or "--bind" not in argv:
        raise RuntimeError("could not capture creditctl serve's gunicorn argv")
    argv = list(argv)
    argv[argv.index("--bind") + 1] = f"127.0.0.1:{port}"
    if "--timeout" in argv:
        argv[argv.index("--timeout") + 1] = "3600"
    else:
        argv[-1:-1] = ["--timeout", "3600"]
    return argv


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=300, help="decisions counted per server")
    ap.add_argument("--warm", type=int, default=200, help="decisions before counting")
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout's service, counted too")
    ap.add_argument("--top", type=int, default=0, help="the service's K costliest functions (self)")
    args = ap.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind (with callgrind_control) is needed: apt-get install valgrind")
        return 2
    inst = bench.Instance("postgres", f"ir{uuid.uuid4().hex[:6]}", workers=1)
    counts: list[Count] = []
    try:
        inst.prepare()
        port = bench.free_port()
        argv = service_cmd(inst, port)
        service_env = {**inst.env, "CREDITCTL_LOG_LEVEL": "INFO"}
        counts.append(count(inst, "service", argv, service_env, bench.ROOT, args.n, args.warm, port))
        if args.baseline is not None:
            port = bench.free_port()
            argv = service_cmd(inst, port)
            env = {**service_env, "PYTHONPATH": str(args.baseline)}
            counts.append(count(inst, "baseline", argv, env, args.baseline, args.n, args.warm, port))
        port = bench.free_port()
        argv = service_cmd(inst, port)
        ceiling = [*argv[:-1], "--chdir", str(bench.BENCH), "ceiling_app:app"]
        env = {**inst.env, "BENCH_CEILING_DB": inst.ceiling_db}
        counts.append(count(inst, "ceiling", ceiling, env, bench.ROOT, args.n, args.warm, port))
        base = counts[-1].per_decision
        print(f"instructions per decision in the serving worker ({args.n} decisions after {args.warm}, "
              "PostgreSQL, one worker, one client; idle = the same wall time without requests)")  # fmt: skip
        print(
            f"{'server':>9} | {'per decision':>13} | {'raw':>11} | {'idle':>9} | vs ceiling | wall (valgrind)"
        )
        for c in counts:
            print(f"{c.name:>9} | {c.per_decision:>13,.0f} | {c.raw_per_decision:>11,.0f} | "
                  f"{c.idle_per_decision:>9,.0f} | {c.per_decision / base:>9.2f}x | "
                  f"{c.seconds:.0f} s")  # fmt: skip
        if args.top:
            out = subprocess.run(["callgrind_annotate", "--inclusive=no", str(counts[0].dump)],
                                 capture_output=True, text=True)  # fmt: skip
            rows = [line for line in out.stdout.splitlines() if re.match(r"^\s*[\d,]+ \(", line)]
            print(f"the service's {args.top} costliest functions (instructions of their own, all decisions):")
            for line in rows[: args.top]:
                print("  " + line.strip())
    finally:
        inst.close()
        bench.CLEANUP.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
