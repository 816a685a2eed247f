"""Upstream benchmark: decisions/s with the Haier emulator as the balance upstream, beside the fake
provider, and how many upstream balance calls 1,000 decisions cost. A script, not a test.

    .venv/bin/python bench/upstream_bench.py [--db sqlite|postgres|both] [--clients N] [--duration S]
                                             [--workers W] [--refresh-after S] [--max-age S]

For each database (SQLite always; PostgreSQL when reachable at 127.0.0.1:5432) and each provider it
builds a throwaway instance (temp folder; a fresh SQLite file or a fresh PostgreSQL database
upstream_bench_<run>_<provider>), and:

  haier  starts the emulator (`creditctl haier emulate --port P`), adds 20 customers C00001..C00020 to it
         with their passwords (POST /_emulator/balances; one payer account SG01 each, 100,000,000.00),
         `creditctl db upgrade`, `creditctl haier configure bench --file` (base_url the emulator, the 20
         customers and passwords), CREDITCTL_BALANCE_PROVIDER=haier, CREDITCTL_ALLOW_LOOPBACK_URLS=true;
  fake   CREDITCTL_BALANCE_PROVIDER=fake with CREDITCTL_FAKE_BALANCES: a file with the same 20 customers;

then registers the 20 customers (the service call `creditctl customer` makes, in this process), creates
an orders key (`creditctl keys create`), publishes a rule set whose params say refresh_after_s=2 (so
balances are refreshed during the run) with `creditctl rules export` / `rules import`, starts
`creditctl serve --workers W`, opens every account with one GET /v1/balances/<code>?refresh=true, and
drives POST /v1/decisions for --duration seconds with wrk (one thread, --clients connections,
bench/decide.lua: unique order ids, customers uniform over the 20, amounts 1.00-99.99). It prints
decisions/s, p50 and p99, outcomes (from the database), and for the emulator the balance and token
calls it counted during the run (GET /_emulator/stats) per 1,000 decisions, next to the service's own
count of upstream calls (/metrics).

Reading the figures: the service reuses a customer's stored balance report for 10 s
(SharedBalanceProvider.reuse_s) whatever refresh_after_s says, so each customer is fetched at most every
10 s: in steady state about 20 / 10 s = 2 balance calls per second, i.e. 2,000 / (decisions/s) per
1,000 decisions. The 20 accounts are opened together just before the run, so refreshes come as a burst
of 20 about every 10 s. The fake provider has no shared reports: every decision whose snapshot is older
than refresh_after_s fetches again (in process, no network) and rewrites the snapshot.

Everything it starts is stopped and everything it made is removed, on success, failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select, text  # noqa: E402

from adapters.bootstrap import bootstrap, load_settings  # noqa: E402
from adapters.sql.engine import make_engine  # noqa: E402
from adapters.sql.tables import decisions  # noqa: E402
from creditctl.services.customers import register_customer  # noqa: E402

VENV_BIN = Path(sys.executable).parent
CREDITCTL = str(VENV_BIN / "creditctl")
LUA = ROOT / "bench" / "decide.lua"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CUSTOMERS = 20
SALE_GROUP = "SG01"  # what decide.lua sends
BALANCE = "100000000.00"  # so the approve path is what is measured


def code(i: int) -> str:
    return f"C{i:05d}"  # what decide.lua sends


def password(i: int) -> str:
    return f"bench-pw-{i:02d}"


def entry(i: int) -> dict[str, str]:
    return {
        "saleGroupCode": SALE_GROUP,
        "saleGroupName": "Bench sales group",
        "payerAccountCode": f"P{i:05d}",
        "payerAccountName": f"Bench payer {i}",
        "payerAccountBalance": BALANCE,
    }


# --- cleanup -------------------------------------------------------------------------------------


class Cleanup:
    """Everything this run started or made, undone in reverse order whatever happens."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.databases: list[str] = []
        self.dirs: list[Path] = []

    def stop(self, proc: subprocess.Popen[bytes], grace_s: float = 12.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # its own session: gunicorn master and workers
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if proc in self.procs:
            self.procs.remove(proc)

    def run(self) -> None:
        for proc in reversed(list(self.procs)):
            try:
                self.stop(proc)
            except Exception as exc:  # keep cleaning
                print(f"cleanup: could not stop pid {proc.pid}: {exc}", file=sys.stderr)
        for name in list(self.databases):
            try:
                admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
                self.databases.remove(name)
            except Exception as exc:
                print(f"cleanup: could not drop database {name}: {exc}", file=sys.stderr)
        for d in list(self.dirs):
            shutil.rmtree(d, ignore_errors=True)
            self.dirs.remove(d)


CLEANUP = Cleanup()


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# --- helpers -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_ok(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if http("GET", url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout_s}s:\n{log.read_text()[-3000:]}")


def postgres_reachable() -> bool:
    try:
        engine = create_engine(PG_ADMIN)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def percentile_ms(us: float) -> float:
    return round(us / 1000, 1)


@dataclass
class Result:
    db: str
    provider: str
    clients: int
    duration_s: float
    requests: int
    decisions: int
    decisions_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    outcomes: dict[str, int]
    balance_calls: int | None = None  # counted by the emulator during the run
    token_calls: int | None = None
    service_upstream_calls: dict[str, int] = field(default_factory=dict)  # the service's /metrics
    warmup_balance_calls: int | None = None
    warmup_token_calls: int | None = None
    loadavg_1m: float = 0.0

    @property
    def calls_per_1000(self) -> float | None:
        if self.balance_calls is None or not self.decisions:
            return None
        return 1000 * self.balance_calls / self.decisions


# --- one instance --------------------------------------------------------------------------------


class Instance:
    """A fresh database and instance folder, set up for one provider, with the service on it."""

    def __init__(self, db: str, provider: str, run_id: str, args: argparse.Namespace) -> None:
        self.db, self.provider, self.args = db, provider, args
        self.tmp = Path(tempfile.mkdtemp(prefix=f"creditctl-upstream-bench-{db}-{provider}-"))
        CLEANUP.dirs.append(self.tmp)
        if db == "postgres":
            name = f"upstream_bench_{run_id}_{provider}"
            admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            admin.dispose()
            CLEANUP.databases.append(name)
            self.url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        else:
            self.url = f"sqlite:///{self.tmp / 'bench.db'}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("CREDITCTL_", "PROMETHEUS_"))}
        self.env |= {
            "CREDITCTL_INSTANCE_PATH": str(self.tmp / "instance"),
            "CREDITCTL_DATABASE_URL": self.url,
            "CREDITCTL_BALANCE_PROVIDER": provider,
            "CREDITCTL_LOG_LEVEL": "WARNING",
        }
        self.emulator = ""
        self.service = ""
        self.key = ""
        self.params: dict[str, Any] = {}
        self.commands: list[str] = []

    def _cli(self, *args: str) -> str:
        self.commands.append(" ".join(["creditctl", *args]))
        out = subprocess.run(
            [CREDITCTL, *args], cwd=self.tmp, env=self.env, capture_output=True, text=True, timeout=300
        )
        if out.returncode != 0:
            raise RuntimeError(f"creditctl {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def _spawn(self, name: str, args: list[str]) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.tmp / f"{name}.log"
        self.commands.append(" ".join(["creditctl", *args]))
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                [CREDITCTL, *args],
                cwd=self.tmp,
                env=self.env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        CLEANUP.procs.append(proc)
        return proc, log

    def prepare(self) -> None:
        if self.provider == "haier":
            self._start_emulator()
        else:
            balances = self.tmp / "balances.json"
            balances.write_text(json.dumps({code(i): [entry(i)] for i in range(1, CUSTOMERS + 1)}))
            self.env["CREDITCTL_FAKE_BALANCES"] = str(balances)
        self._cli("db", "upgrade")
        if self.provider == "haier":
            config = {
                "base_url": self.emulator,
                "auth": "client_credentials",
                "client_id": "demo-client",
                "client_secret": "demo-secret",
                "auth_scheme": "Bearer",
                "customers": {code(i): password(i) for i in range(1, CUSTOMERS + 1)},
                "is_active": True,
            }
            (self.tmp / "haier.json").write_text(json.dumps(config))
            self._cli("haier", "configure", "bench", "--file", str(self.tmp / "haier.json"))
        self._register_customers()
        self.key = self._cli("keys", "create", "--role", "orders", "--name", "bench").strip().splitlines()[-1]
        document = json.loads(self._cli("rules", "export"))
        document["params"] |= {
            "refresh_after_s": self.args.refresh_after,
            "max_balance_age_s": self.args.max_age,
        }
        (self.tmp / "rules.json").write_text(json.dumps(document))
        self._cli("rules", "import", str(self.tmp / "rules.json"))
        self.params = document["params"]

    def _start_emulator(self) -> None:
        port = free_port()
        proc, log = self._spawn("emulator", ["haier", "emulate", "--port", str(port)])
        self.emulator = f"http://127.0.0.1:{port}"
        self.env["CREDITCTL_ALLOW_LOOPBACK_URLS"] = "true"
        wait_ok(f"{self.emulator}/_emulator/stats", proc, log)
        for i in range(1, CUSTOMERS + 1):
            status, body = http(
                "POST",
                f"{self.emulator}/_emulator/balances",
                {"customerCode": code(i), "customerPassword": password(i), **entry(i)},
            )
            if status != 200:
                raise RuntimeError(f"emulator refused customer {code(i)}: {status} {body}")
        self.commands.append(f"POST {self.emulator}/_emulator/balances  x{CUSTOMERS} (customer, password)")

    def _register_customers(self) -> None:
        """`creditctl customer CODE` for the 20 customers, in this process (20 interpreter start-ups)."""
        engine = make_engine(self.url)
        try:
            context = bootstrap(load_settings(self.env), engine=engine)
            for i in range(1, CUSTOMERS + 1):
                register_customer(code(i), uow=context.uow(), clock=context.clock)
        finally:
            engine.dispose()
        self.commands.append(f"(in process) register_customer x{CUSTOMERS}, as `creditctl customer CODE`")

    def serve(self) -> None:
        port = free_port()
        proc, log = self._spawn(
            "service", ["serve", "--port", str(port), "--workers", str(self.args.workers)]
        )
        self.service = f"http://127.0.0.1:{port}"
        wait_ok(f"{self.service}/readyz", proc, log)
        headers = {"Authorization": f"Bearer {self.key}"}
        for i in range(1, CUSTOMERS + 1):  # open every account from a first fetch
            status, body = http("GET", f"{self.service}/v1/balances/{code(i)}?refresh=true", headers=headers)
            if status != 200:
                raise RuntimeError(f"opening {code(i)} failed: {status} {body}\n{log.read_text()[-2000:]}")

    def emulator_stats(self) -> dict[str, Any]:
        status, body = http("GET", f"{self.emulator}/_emulator/stats")
        if status != 200:
            raise RuntimeError(f"emulator stats: {status} {body}")
        return dict(json.loads(body))

    def upstream_metrics(self) -> dict[str, int]:
        """The service's own count of calls it sent upstream, by operation and outcome."""
        _, body = http("GET", f"{self.service}/metrics")
        out: dict[str, int] = {}
        pattern = r'^creditctl_upstream_calls_total\{operation="(\w+)",outcome="([^"]+)"\} (\S+)$'
        for m in re.finditer(pattern, body, re.M):
            out[f"{m.group(1)}:{m.group(2)}"] = int(float(m.group(3)))
        return out

    def outcomes(self) -> dict[str, int]:
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(select(decisions.c.outcome, func.count()).group_by(decisions.c.outcome))
                return {o: n for o, n in rows}
        finally:
            engine.dispose()


def drive(inst: Instance, run_id: str) -> Result:
    args = inst.args
    before = inst.emulator_stats() if inst.provider == "haier" else None
    metrics_before = inst.upstream_metrics() if inst.provider == "haier" else {}
    wrk = ["wrk", "-t1", f"-c{args.clients}", f"-d{args.duration}s", "--timeout", "10s", "--latency"]
    wrk += ["-s", str(LUA), inst.service, "--"]
    cmd = [*wrk, inst.key, str(CUSTOMERS), f"{run_id}{inst.db[0]}{inst.provider[0]}"]
    inst.commands.append(" ".join([*wrk, "<orders key>", str(CUSTOMERS), "<run id>"]))
    load = os.getloadavg()[0]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out.stdout}\n{out.stderr}")
    w = json.loads(line.removeprefix("BENCH_JSON "))
    outcomes = inst.outcomes()
    decided = sum(outcomes.values())
    seconds = w["duration_us"] / 1e6
    result = Result(
        db=inst.db,
        provider=inst.provider,
        clients=args.clients,
        duration_s=round(seconds, 1),
        requests=w["requests"],
        decisions=decided,
        decisions_per_s=round(decided / seconds, 1),
        p50_ms=percentile_ms(w["p50_us"]),
        p99_ms=percentile_ms(w["p99_us"]),
        non_2xx=w["status"],
        socket_errors=w["connect"] + w["read"] + w["write"] + w["timeout"],
        outcomes=outcomes,
        loadavg_1m=round(load, 2),
    )
    if before is not None:
        after = inst.emulator_stats()
        result.balance_calls = after["balance_calls"] - before["balance_calls"]
        result.token_calls = after["token_calls"] - before["token_calls"]
        result.warmup_balance_calls = before["balance_calls"]
        result.warmup_token_calls = before["token_calls"]
        metrics_after = inst.upstream_metrics()
        result.service_upstream_calls = {
            k: v - metrics_before.get(k, 0) for k, v in metrics_after.items() if v - metrics_before.get(k, 0)
        }
    return result


# --- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--clients", type=int, default=8, help="wrk connections (one wrk thread)")
    parser.add_argument("--duration", type=int, default=25, help="seconds of load per run")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of the service")
    parser.add_argument("--refresh-after", type=int, default=2, help="rule param refresh_after_s")
    parser.add_argument("--max-age", type=int, default=30, help="rule param max_balance_age_s")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed (apt-get install wrk)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    if "postgres" in dbs and not postgres_reachable():
        print("PostgreSQL is not reachable at 127.0.0.1:5432: SQLite only")
        dbs.remove("postgres")
    run_id = uuid.uuid4().hex[:8]
    results: list[Result] = []
    shown_params = False
    print(
        f"upstream bench {run_id}: {CUSTOMERS} customers, {args.clients} clients (wrk -t1), "
        f"{args.duration} s per run, {args.workers} workers, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    try:
        for db in dbs:
            for provider in ("haier", "fake"):
                inst = Instance(db, provider, run_id, args)
                print(f"-- {db} / {provider}: preparing", flush=True)
                inst.prepare()
                if not shown_params:
                    print(f"   rule params: {json.dumps(inst.params, sort_keys=True)}")
                    shown_params = True
                inst.serve()
                result = drive(inst, run_id)
                results.append(result)
                print(f"   {describe(result)}", flush=True)
                for c in inst.commands:
                    print(f"     $ {c}")
                for proc in list(CLEANUP.procs):
                    CLEANUP.stop(proc)
        print_table(results)
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        CLEANUP.run()
    return 0


def describe(r: Result) -> str:
    text_ = (
        f"{r.decisions} decisions in {r.duration_s} s = {r.decisions_per_s}/s, p50 {r.p50_ms} ms, "
        f"p99 {r.p99_ms} ms, non-2xx {r.non_2xx}, socket errors {r.socket_errors}, outcomes {r.outcomes}"
    )
    if r.balance_calls is not None and r.calls_per_1000 is not None:
        text_ += (
            f"\n   emulator: {r.balance_calls} balance calls ({r.calls_per_1000:.1f} per 1,000 decisions), "
            f"{r.token_calls} token calls; before the run, opening the accounts: "
            f"{r.warmup_balance_calls} balance calls, {r.warmup_token_calls} token call(s)"
            f"\n   service /metrics, upstream calls during the run: {r.service_upstream_calls}"
        )
    return text_


def print_table(results: list[Result]) -> None:
    print()
    head = f"{'db':<9}{'provider':<14}{'clients':>8}{'decisions':>10}{'dec/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
    head += f"{'non-2xx':>8}{'balance calls':>14}{'per 1,000':>10}{'token calls':>12}{'load 1m':>9}"
    print(head)
    print("-" * len(head))
    for r in results:
        calls = "-" if r.balance_calls is None else str(r.balance_calls)
        per = "-" if r.calls_per_1000 is None else f"{r.calls_per_1000:.1f}"
        tokens = "-" if r.token_calls is None else str(r.token_calls)
        label = "haier emulator" if r.provider == "haier" else "fake"
        print(f"{r.db:<9}{label:<14}{r.clients:>8}{r.decisions:>10}{r.decisions_per_s:>9}{r.p50_ms:>9}"
              f"{r.p99_ms:>9}{r.non_2xx:>8}{calls:>14}{per:>10}{tokens:>12}{r.loadavg_1m:>9}")  # fmt: skip
    for db in dict.fromkeys(r.db for r in results):
        pair = {r.provider: r for r in results if r.db == db}
        if "haier" in pair and "fake" in pair and pair["fake"].decisions_per_s:
            ratio = pair["haier"].decisions_per_s / pair["fake"].decisions_per_s
            print(f"{db}: emulator upstream at {ratio:.0%} of the fake provider's decisions/s")


if __name__ == "__main__":
    sys.exit(main())
