"""End-to-end benchmark of POST /v1/decisions, against a bare-stack ceiling. A script, not a test.

    .venv/bin/python bench/bench.py [--quick] [--db sqlite|postgres|both] [--duration S] [--workers W]
                                    [--threads T] [--cells AxC,...] [--production]
                                    [--no-info] [--profile] [--audit-cost]

For each database it builds a throwaway instance (temp folder; a fresh SQLite file or a fresh
PostgreSQL database bench_<run>), migrates it with `creditctl db upgrade`, writes 10,000 customers with
one credit account each (fresh balance snapshot of 100,000,000.00 so the approve path is what is
measured), creates an orders key with `creditctl keys create`, and starts two servers:

  service  `creditctl serve --port P --workers W` (gunicorn, creditctl's gthread worker with serve's
           --threads; CREDITCTL_LOG_LEVEL=WARNING)
  ceiling  bench/ceiling_app.py under gunicorn with the same argv (worker class, threads, config): the
           least an idempotent decision needs, in plain SQL (one connection per thread), against the
           same database and tables

--production measures the service as deployed instead: CREDITCTL_LOG_LEVEL=INFO (one JSON access line
per request, to the server's log file) with `creditctl worker` running beside it (outbox delivery, the
audit sealer, the anchor and backtest threads); the worker's CPU is reported apart. --cells picks the
cells, e.g. --cells 10000x32,10000x1,1x32 (accounts x clients; 1 account = one hot account).

wrk (bench/decide.lua: unique order ids, customers uniform over the first N accounts, amounts
1.00-99.99) drives them in turn at 1, 8 and 32 clients over 1, 100 and 10,000 accounts (--quick: 10,000
accounts, 1 and 32 clients, 4 s), and the script prints decisions/s, p50 and p99 for each, the
service/ceiling ratios, and the verdict on the goals (PostgreSQL, 10,000 accounts). Once per run the
service is also measured with INFO logging (production's level). Results are written to
bench/results/<timestamp>.json. --profile adds an unmeasured py-spy recording of the service on
PostgreSQL, 10,000 accounts, 32 clients (bench/results/<timestamp>-profile.{svg,txt}). --audit-cost
also serves the service from bench/no_audit (its audit insert a no-op) and measures it interleaved with
the service at 10,000 accounts, 1 and 32 clients: what the audit trail costs, as a ratio in one run.

Everything it starts is stopped, and every database and folder it made is removed, on success, failure
or Ctrl-C.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
LUA = BENCH / "decide.lua"
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, insert, select, text, update  # noqa: E402

from adapters.sql.tables import credit_accounts, customers, decisions, holds  # noqa: E402

VENV_BIN = Path(sys.executable).parent
CREDITCTL = str(VENV_BIN / "creditctl")
PY_SPY = str(VENV_BIN / "py-spy")
TOTAL_ACCOUNTS = 10_000
BALANCE = "100000000.00"
SALE_GROUP = "SG01"
HISTORY = 20_000  # decisions already made (a day ago) when a run starts: see Instance._seed_history
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
# Fallback only: the ceiling takes gunicorn's settings from `creditctl serve` itself (serve_argv below).
GUNICORN_ARGS = ["--worker-class", "adapters.web.gunicorn_worker.CreditctlThreadWorker", "--threads", "8",
                 "--timeout", "30", "--graceful-timeout", "10", "--keep-alive", "5",
                 "--config", "python:adapters.cli.gunicorn_conf", "--no-control-socket",
                 "--log-level", "info"]  # fmt: skip
GOALS = {"throughput_32": 0.5, "p99_32": 2.5, "p99_1": 3.0, "audit_32": 0.9}
# Issue 19's targets (PostgreSQL): reported beside the goals above, not instead of them.
ISSUE19 = [
    ("10,000 accounts, 32 clients: dec/s >= 0.9 x ceiling", TOTAL_ACCOUNTS, 32, "throughput", 0.9),
    ("10,000 accounts, 32 clients: p99 <= 1.2 x ceiling", TOTAL_ACCOUNTS, 32, "p99", 1.2),
    ("10,000 accounts, 1 client: p99 <= 1.3 x ceiling", TOTAL_ACCOUNTS, 1, "p99", 1.3),
    ("one hot account, 32 clients: dec/s >= 1.0 x ceiling", 1, 32, "throughput", 1.0),
]


# --- bookkeeping for cleanup -------------------------------------------------------------------


class Cleanup:
    """Everything this run started or made, undone in reverse order whatever happens."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.databases: list[str] = []
        self.dirs: list[Path] = []

    def stop(self, proc: subprocess.Popen[bytes], grace_s: float = 12.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # the whole group: gunicorn master and workers
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
                drop_pg_database(name)
                self.databases.remove(name)
            except Exception as exc:
                print(f"cleanup: could not drop database {name}: {exc}", file=sys.stderr)
        for d in list(self.dirs):
            shutil.rmtree(d, ignore_errors=True)
            self.dirs.remove(d)


CLEANUP = Cleanup()


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# --- small helpers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(port: int, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server on :{port} not healthy after {timeout_s}s:\n{log.read_text()[-3000:]}")


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def pg_connect_admin() -> Any:
    import psycopg

    return psycopg.connect(PG_ADMIN, autocommit=True)


def drop_pg_database(name: str) -> None:
    with pg_connect_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "loadavg_at_start": os.getloadavg(),
    }
    try:  # read-only: which code was measured
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True)  # fmt: skip
        changed = len(dirty.stdout.splitlines())
        info["code"] = f"{head.stdout.strip()}" + (f" + {changed} modified files" if changed else "")
    except OSError:
        info["code"] = "?"
    try:
        import gunicorn

        info["gunicorn"] = gunicorn.__version__
    except ImportError:
        pass
    try:
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=5)
        info["wrk"] = (out.stdout or out.stderr).splitlines()[0].strip()
    except (OSError, IndexError, subprocess.TimeoutExpired):
        info["wrk"] = "?"
    try:
        with pg_connect_admin() as conn:
            info["postgresql"] = conn.execute("SELECT version()").fetchone()[0]
            info["pg_autovacuum"] = conn.execute("SHOW autovacuum").fetchone()[0]
            info["pg_synchronous_commit"] = conn.execute("SHOW synchronous_commit").fetchone()[0]
    except Exception as exc:
        info["postgresql"] = f"unavailable: {exc}"
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def cpu_snapshot() -> dict[int, tuple[str, int, int]]:
    """pid -> (comm, process group, utime+stime ticks) for every process, from /proc."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            raw = (d / "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        f = raw[raw.rindex(")") + 2 :].split()
        out[int(d.name)] = (comm, int(f[2]), int(f[11]) + int(f[12]))
    return out


def cpu_split(before: dict[int, tuple[str, int, int]], after: dict[int, tuple[str, int, int]],
              server_pgid: int, seconds: float,
              worker_pgid: int | None = None) -> dict[str, float]:  # fmt: skip
    """CPU used during a run, in % of one core: the server under test, PostgreSQL, wrk, `creditctl
    worker` (--production), and the rest of the machine (other people's work: the noise this shared
    machine adds)."""
    tick = os.sysconf("SC_CLK_TCK")
    split = {"server": 0.0, "postgres": 0.0, "wrk": 0.0, "worker": 0.0, "other": 0.0}
    me = os.getpid()
    for pid, (comm, pgid, ticks) in after.items():
        delta = ticks - before.get(pid, (comm, pgid, 0))[2]
        if delta <= 0 or pid == me:
            continue
        if pgid == server_pgid:
            split["server"] += delta
        elif worker_pgid is not None and pgid == worker_pgid:
            split["worker"] += delta
        elif comm == "postgres":
            split["postgres"] += delta
        elif comm == "wrk":
            split["wrk"] += delta
        else:
            split["other"] += delta
    return {k: round(100 * v / tick / seconds, 1) for k, v in split.items()}


def serve_argv(env: dict[str, str], workers: int, threads: int | None = None) -> list[str] | None:
    """The gunicorn argv `creditctl serve --workers W` would exec (captured in-process, exec refused),
    so the ceiling runs under exactly the service's gunicorn settings, whatever they become."""
    import contextlib
    import io

    import adapters.bootstrap as composition

    captured: list[list[str]] = []

    def _capture(_file: str, args: list[str], _env: Any) -> None:
        captured.append(list(args))
        raise SystemExit(0)

    real_exec, real_argv, real_env = os.execvpe, sys.argv, dict(os.environ)
    os.execvpe = _capture  # type: ignore[assignment]
    try:
        os.environ.update(env)
        sys.argv = ["creditctl", "serve", "--port", "1", "--workers", str(workers),
                    *(["--threads", str(threads)] if threads else [])]  # fmt: skip
        with contextlib.redirect_stderr(io.StringIO()), contextlib.suppress(SystemExit):
            composition.main()
    except Exception as exc:
        print(f"  (could not capture creditctl serve's gunicorn argv: {exc}; using the fallback)")
    finally:
        os.execvpe, sys.argv = real_exec, real_argv  # type: ignore[assignment]
        os.environ.clear()
        os.environ.update(real_env)
    return captured[0] if captured else None


# --- one database under test ---------------------------------------------------------------------


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    command: list[str]


@dataclass
class Run:
    db: str
    target: str  # service | ceiling | service-info
    accounts: int
    clients: int
    duration_s: float
    requests: int
    decisions_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    outcomes: dict[str, int] = field(default_factory=dict)
    valid: bool = True
    note: str = ""
    loadavg_1m_before: float = 0.0
    cpu_pct: dict[str, float] = field(default_factory=dict)
    # With --repeat: the median of the cell's runs' p99s (median_run). One run's p99 swings with the
    # machine (the ceiling's ran 44.8-129.6 ms in one cell); the p99 goals compare these medians.
    p99_median_ms: float | None = None


class Instance:
    """A migrated database with 10,000 accounts, an orders key, and the servers on it."""

    def __init__(self, db: str, run_id: str, workers: int, threads: int | None = None) -> None:
        self.db = db
        self.workers = workers
        self.threads = threads
        self.worker_proc: subprocess.Popen[bytes] | None = None  # `creditctl worker` (--production)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"creditctl-bench-{db}-"))
        CLEANUP.dirs.append(self.tmp)
        if db == "postgres":
            self.pg_name = f"bench_{run_id}"
            with pg_connect_admin() as conn:
                conn.execute(f'CREATE DATABASE "{self.pg_name}"')
            CLEANUP.databases.append(self.pg_name)
            self.url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.pg_name}"
            self.ceiling_db = f"postgresql://postgres@127.0.0.1:5432/{self.pg_name}"
        else:
            self.url = f"sqlite:///{self.tmp / 'bench.db'}"
            self.ceiling_db = self.url
        self.balances_file = self.tmp / "balances.json"
        self.env = {
            **os.environ,
            "CREDITCTL_INSTANCE_PATH": str(self.tmp / "instance"),
            "CREDITCTL_DATABASE_URL": self.url,
            "CREDITCTL_BALANCE_PROVIDER": "fake",
            "CREDITCTL_FAKE_BALANCES": str(self.balances_file),
            "CREDITCTL_LOG_LEVEL": "WARNING",
            # wrk sends thousands of decisions a second with one key: exactly what the per-key rate limit
            # refuses. Its cost is measured on its own (bench/rate_limit.py).
            "CREDITCTL_RATE_LIMIT_PER_KEY": "off",
        }
        self.engine = create_engine(self.url)
        self.key = ""
        self.commands: list[str] = []
        self.refreshed_at = 0.0
        self.shim = False

    @staticmethod
    def code(i: int) -> str:
        return f"C{i:05d}"

    def prepare(self) -> None:
        data = {
            self.code(i): [
                {
                    "saleGroupCode": SALE_GROUP,
                    "saleGroupName": "Bench sales group",
                    "payerAccountCode": f"P{i:05d}",
                    "payerAccountName": f"Bench payer {i}",
                    "payerAccountBalance": BALANCE,
                }
            ]
            for i in range(1, TOTAL_ACCOUNTS + 1)
        }
        self.balances_file.write_text(json.dumps(data))
        self._cli(["db", "upgrade"])
        now = datetime.now(UTC)
        balance_fen = int(BALANCE.replace(".", ""))
        with self.engine.begin() as conn:
            conn.execute(
                insert(customers),
                [{"code": c, "name": f"Bench {c}", "created_at": now} for c in data],
            )
            conn.execute(
                insert(credit_accounts),
                [
                    {
                        "customer_code": c,
                        "sale_group_code": SALE_GROUP,
                        "sale_group_name": e[0]["saleGroupName"],
                        "payer_account_code": e[0]["payerAccountCode"],
                        "payer_account_name": e[0]["payerAccountName"],
                        "status": "active",
                        "exposure_fen": 0,
                        "balance_fen": balance_fen,
                        "balance_fetched_at": now,
                        "balance_source": "fake",
                        "params": None,
                        # The day's credit profile already computed, as on an account in use: the first
                        # decision of each UTC day recomputes it (a few statements, once per account per
                        # day), which a run of fresh accounts would otherwise pay on nearly every decision.
                        "profile_valid_until": now + timedelta(days=1),
                        "created_at": now,
                        "updated_at": now,
                    }
                    for c, e in data.items()
                ],
            )
            self._seed_history(conn, now)
        self.refreshed_at = time.monotonic()
        self.commands.append(
            f"(SQL) INSERT {TOTAL_ACCOUNTS} customers + credit_accounts, balance {BALANCE}, fetched now; "
            f"{HISTORY} decisions of yesterday with their holds released"
        )
        if self.db == "postgres":
            with self.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
        self.key = (
            self._cli(["keys", "create", "--role", "orders", "--name", "bench"]).strip().splitlines()[-1]
        )

    @staticmethod
    def _seed_history(conn: Any, now: datetime) -> None:
        """Yesterday's decisions, approved, their holds released (so no exposure): the tables a decision
        writes and reads hold rows before the first run, as in any deployment that has run a day.

        Why: the first ANALYZE otherwise sees empty decisions and holds, and plans made on those
        statistics (psycopg's prepared statements, the foreign keys' checks cached by each backend)
        read them by sequential scan until the next ANALYZE, at a cost that grows with every decision.
        The in-process tools (profile_decide, thread_cpu, count_statements, instructions) run no
        ANALYZE after their warm-up; without this they measured that growth, not the service."""
        rule_set_id, version = conn.execute(
            text("SELECT id, version FROM rule_sets WHERE version IS NOT NULL ORDER BY version DESC LIMIT 1")
        ).one()
        ids = select(credit_accounts.c.id).order_by(credit_accounts.c.id)
        accounts = [row[0] for row in conn.execute(ids)]
        at = now - timedelta(days=1)
        rows, held = [], []
        for i in range(HISTORY):
            account = accounts[i % len(accounts)]
            code = Instance.code(1 + i % len(accounts))
            decision_id = str(uuid.UUID(int=i + 1, version=4))
            rows.append({
                "id": decision_id, "order_id": f"history-{i}", "account_id": account, "customer_code": code,
                "sale_group_code": SALE_GROUP, "amount_fen": 10_000, "fingerprint": f"{i:064x}",
                "outcome": "approve", "state": "decided", "reasons": [], "actions": [], "facts": {},
                "balance_fen": int(BALANCE.replace(".", "")), "exposure_fen": 0, "available_fen": None,
                "credit_limit_fen": 0, "credit_grade": "A", "rule_set_id": rule_set_id,
                "rule_set_version": version, "decided_at": at, "rechecks": 0, "reason_codes": ",",
            })  # fmt: skip
            held.append({
                "id": uuid.UUID(int=i + 1, version=4).hex, "account_id": account, "decision_id": decision_id,
                "order_id": f"history-{i}", "amount_fen": 10_000, "status": "released", "counting": False,
                "created_at": at, "expires_at": at + timedelta(days=1), "ended_at": at, "settled_fen": 0,
            })  # fmt: skip
        conn.execute(insert(decisions), rows)
        conn.execute(insert(holds), held)

    def _cli(self, args: list[str]) -> str:
        self.commands.append(" ".join(["creditctl", *args]))
        out = subprocess.run(
            [CREDITCTL, *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300
        )
        if out.returncode != 0:
            raise RuntimeError(f"creditctl {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def refresh_snapshots(self, every_s: float = 120.0) -> None:
        """Keep every snapshot younger than refresh_after_s (300 s), so no run fetches balances; at most
        every `every_s` seconds (each refresh rewrites 10,000 rows)."""
        if time.monotonic() - self.refreshed_at < every_s:
            return
        with self.engine.begin() as conn:
            conn.execute(update(credit_accounts).values(balance_fetched_at=datetime.now(UTC)))
        self.refreshed_at = time.monotonic()

    def maintain(self) -> None:
        """PostgreSQL: VACUUM (ANALYZE) the tables decisions write, before every run, as autovacuum would.

        Without it (autovacuum is off on some test servers, and the first ANALYZE sees empty tables) the
        planner keeps believing decisions and holds are empty; psycopg's prepared statements then run
        generic plans with sequential scans whose cost grows with every decision. That measures stale
        statistics, not the service (the ceiling never reads those tables)."""
        if self.db != "postgres":
            return
        with self.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("VACUUM (ANALYZE) credit_accounts, decisions, holds, outbox, audit_events, audit_seals")
            )

    def outcomes(self, prefix: str) -> dict[str, int]:
        d = decisions.c
        stmt = select(d.outcome, func.count()).where(d.order_id.like(prefix + "-%")).group_by(d.outcome)
        with self.engine.connect() as conn:
            return {o: n for o, n in conn.execute(stmt)}

    def start_service(
        self,
        log_level: str = "WARNING",
        *,
        audit: bool = True,
        code: Path | None = None,
        threads: int | None = None,
    ) -> Server:
        """`creditctl serve`, from the repository (production wsgi.py) or, once the probe decision has
        shown the PostgreSQL rowcount bug, from bench/shim (the same app with preserve_rowcount).
        audit=False: from bench/no_audit (the same app with the audit insert a no-op), for --audit-cost.
        code: from another checkout of the project (its wsgi.py and packages first on the path), for
        --baseline; threads: other than the run's, for --baseline-threads."""
        port = free_port()
        threads = threads or self.threads
        cmd = [CREDITCTL, "serve", "--port", str(port), "--workers", str(self.workers),
               *(["--threads", str(threads)] if threads else [])]  # fmt: skip
        env = {**self.env, "CREDITCTL_LOG_LEVEL": log_level}
        label = "service" if log_level == "WARNING" else f"service-{log_level.lower()}"
        if self.worker_proc is not None:
            label += "+worker"
        folder = "shim" if self.shim else None
        if not audit:
            if self.shim:
                raise RuntimeError("--audit-cost cannot be measured through the rowcount shim")
            label, folder = "service-no-audit", "no_audit"
        cwd = BENCH / folder if folder else ROOT
        if code is not None:
            if self.shim:
                raise RuntimeError("--baseline cannot be measured through the rowcount shim")
            label, cwd = "baseline", code
            if code != ROOT:
                env["PYTHONPATH"] = str(code)
        self.commands.append(
            (f"(cd bench/{folder}) " if folder else "")
            + (f"(cd {code}; PYTHONPATH={code}) " if code else "")
            + f"CREDITCTL_LOG_LEVEL={log_level} "
            + " ".join(["creditctl", *cmd[1:]])
        )
        server = self._start(label, port, cmd, env, cwd=cwd)
        status, body = self.probe(server)
        if status == 201:
            return server
        CLEANUP.stop(server.proc)
        if self.shim or status != 409 or not audit:
            raise RuntimeError(f"the service does not decide: probe answered {status}: {body[:500]}")
        print(
            "  !! probe decision answered 409 on a fresh order id: SqlDecisionRepository.add_new\n"
            "     reads the rowcount of an INSERT, -1 on this SQLAlchemy/psycopg (see bench/shim/wsgi.py).\n"
            "     Measuring the service through bench/shim (preserve_rowcount=True): 'rowcount shim'.",
            flush=True,
        )
        self.shim = True
        return self.start_service(log_level, audit=audit)

    def probe(self, server: Server) -> tuple[int, str]:
        """One decision on a fresh order id (its exposure is released by nothing; 1.00 is nothing)."""
        body = json.dumps({"order_id": f"probe-{uuid.uuid4().hex}", "customer_code": self.code(1),
                           "sale_group_code": SALE_GROUP, "amount": "1.00"}).encode()  # fmt: skip
        req = urllib.request.Request(
            f"http://127.0.0.1:{server.port}/v1/decisions", data=body, method="POST",
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def start_ceiling(self) -> Server:
        port = free_port()
        argv = serve_argv(self.env, self.workers, self.threads)
        if argv and argv[-1] == "wsgi:app" and "--bind" in argv:
            cmd = [*argv[:-1], "--chdir", str(BENCH), "ceiling_app:app"]
            cmd[cmd.index("--bind") + 1] = f"127.0.0.1:{port}"
        else:
            cmd = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers",
                   str(self.workers), *GUNICORN_ARGS, "--chdir", str(BENCH), "ceiling_app:app"]  # fmt: skip
        env = {**self.env, "BENCH_CEILING_DB": self.ceiling_db}
        self.commands.append(f"BENCH_CEILING_DB={self.ceiling_db} python -m gunicorn " + " ".join(cmd[3:]))
        return self._start("ceiling", port, cmd, env)

    def start_worker(self, extra: Sequence[str] = ()) -> None:
        """`creditctl worker` beside the service, as production runs it: outbox delivery, the audit
        sealer (every second), the anchor thread (file sink in the instance folder), backtest jobs.
        `extra`: more of the worker's options (--worker-args), to measure its settings."""
        log = self.tmp / "worker.log"
        env = {**self.env, "CREDITCTL_LOG_LEVEL": "INFO"}
        argv = ["worker", *extra]
        self.commands.append(f"CREDITCTL_LOG_LEVEL=INFO creditctl {' '.join(argv)}  (beside the service)")
        with log.open("wb") as fh:
            proc = subprocess.Popen([CREDITCTL, *argv], cwd=ROOT, env=env, stdout=fh,
                                    stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        CLEANUP.procs.append(proc)
        time.sleep(3.0)
        if proc.poll() is not None:
            raise RuntimeError(f"creditctl worker exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        self.worker_proc = proc

    def unsealed_events(self) -> int | None:
        """Audit events not yet sealed into the chain (the worker keeps up, or not)."""
        try:
            with self.engine.connect() as conn:
                return int(conn.execute(text(
                    "SELECT count(*) FROM audit_events e WHERE NOT EXISTS "
                    "(SELECT 1 FROM audit_seals s WHERE s.seq = e.seq)")).scalar_one())  # fmt: skip
        except Exception:
            return None

    def _start(self, name: str, port: int, cmd: list[str], env: dict[str, str], cwd: Path = ROOT) -> Server:
        log = self.tmp / f"{name}-{port}.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
            )
        CLEANUP.procs.append(proc)
        wait_healthy(port, proc, log)
        return Server(name, port, proc, log, cmd)

    def close(self) -> None:
        self.engine.dispose()


# --- driving the load --------------------------------------------------------------------------


_SEQ = [0]


def wrk(
    inst: Instance,
    server: Server,
    accounts: int,
    clients: int,
    duration_s: float,
    run_id: str,
    *,
    record: bool = True,
) -> Run:
    """One wrk run; the decisions it made are counted by outcome afterwards (their ids share a prefix)."""
    _SEQ[0] += 1
    prefix = f"{run_id}{_SEQ[0]:03d}"
    inst.refresh_snapshots()
    inst.maintain()
    load_before = os.getloadavg()[0]
    worker_pgid = inst.worker_proc.pid if inst.worker_proc is not None else None
    cpu_before = cpu_snapshot()
    cmd = ["wrk", "-t", str(min(clients, 2)), "-c", str(clients), "-d", f"{duration_s:g}s",
           "--timeout", "10s", "--latency", "-s", str(LUA), f"http://127.0.0.1:{server.port}",
           "--", inst.key, str(accounts), prefix]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60)
    cpu_after = cpu_snapshot()
    m = re.search(r"^BENCH_JSON (\{.*\})$", out.stdout, re.M)
    if out.returncode != 0 or m is None:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    s = json.loads(m.group(1))
    seconds = s["duration_us"] / 1e6
    sock = s["connect"] + s["read"] + s["write"] + s["timeout"]
    ok = max(0, s["requests"] - s["status"])
    bad = s["status"] + sock
    run = Run(
        db=inst.db,
        target=server.name,
        accounts=accounts,
        clients=clients,
        duration_s=round(seconds, 2),
        requests=s["requests"],
        decisions_per_s=round(ok / seconds, 1) if seconds else 0.0,
        p50_ms=s["p50_us"] / 1000,
        p90_ms=s["p90_us"] / 1000,
        p99_ms=s["p99_us"] / 1000,
        mean_ms=round(s["mean_us"] / 1000, 3),
        max_ms=s["max_us"] / 1000,
        non_2xx=s["status"],
        socket_errors=sock,
        outcomes=inst.outcomes(prefix) if record else {},
        loadavg_1m_before=round(load_before, 2),
        cpu_pct=cpu_split(cpu_before, cpu_after, server.proc.pid, seconds, worker_pgid) if seconds else {},
    )
    if s["requests"] == 0 or bad > 0.01 * max(1, s["requests"]):
        run.valid = False
        run.note = f"INVALID: {s['status']} non-2xx, {sock} socket errors of {s['requests']}"
    return run


def median_run(runs: list[Run]) -> Run:
    """The run with the median decisions/s (the lower middle one for an even count); a single run as is."""
    ranked = sorted(runs, key=lambda r: r.decisions_per_s)
    chosen = ranked[(len(ranked) - 1) // 2]
    if len(runs) > 1:
        chosen.p99_median_ms = statistics.median(r.p99_ms for r in runs)
        chosen.note = (chosen.note + " " if chosen.note else "") + (
            f"median of {len(runs)}: dec/s {', '.join(f'{r.decisions_per_s:.0f}' for r in runs)}; "
            f"p99 ms {', '.join(f'{r.p99_ms:.1f}' for r in runs)}"
        )
    return chosen


def fmt_run(r: Run | None) -> str:
    if r is None:
        return f"{'-':>9} {'-':>7} {'-':>7}"
    flag = "!" if not r.valid else " "
    return f"{r.decisions_per_s:>8.0f}{flag} {r.p50_ms:>7.1f} {r.p99_ms:>7.1f}"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else round(a / b, 2)


def print_table(db: str, workers: str, duration: float, cells: list[tuple[Run, Run]], shim: bool) -> None:
    title = {"postgres": "PostgreSQL", "sqlite": "SQLite"}[db]
    variant = "service = creditctl serve" + (" via bench/shim (rowcount shim)" if shim else "")
    print(f"\n{title}: {workers}, {duration:g} s per run, {variant} (! = invalid run, >1% errors)")
    if any("median of" in s.note for s, _ in cells):
        print("  each figure is the run with the median decisions/s of its cell (all runs in the JSON)")
    print(
        f"{'accounts':>8} {'clients':>7} | {'service':^25} | {'ceiling':^25} | {'service/ceiling':^17} "
        "| approve % | other CPU %"
    )
    print(f"{'':>8} {'':>7} | {'dec/s':>9} {'p50 ms':>7} {'p99 ms':>7} | {'dec/s':>9} {'p50 ms':>7} "
          f"{'p99 ms':>7} | {'dec/s':>7} {'p99':>9} | svc  ceil | svc  ceil")  # fmt: skip
    for svc, ceil in cells:
        t = ratio(svc.decisions_per_s, ceil.decisions_per_s)
        p = ratio(svc.p99_ms, ceil.p99_ms)
        print(f"{svc.accounts:>8} {svc.clients:>7} | {fmt_run(svc)} | {fmt_run(ceil)} | "
              f"{_x(t):>7} {_x(p):>9} | {_approve(svc):>4} {_approve(ceil):>4} | "
              f"{_other(svc):>4} {_other(ceil):>4}")  # fmt: skip
    for svc, ceil in cells:
        if svc.p99_median_ms is not None and ceil.p99_median_ms is not None:
            _, detail = _p99_ratio(svc, ceil)
            print(f"  {svc.accounts:>6} x {svc.clients:<3} {detail} (what the p99 goals compare)")
    print(
        "  other CPU % = CPU used during the run by processes other than the server, PostgreSQL and wrk\n"
        "  (other people's work on this shared machine), in % of one core; 2 cores = 200 %."
    )


def _x(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _other(r: Run) -> str:
    return "-" if "other" not in r.cpu_pct else f"{r.cpu_pct['other']:.0f}"


def _approve(r: Run) -> str:
    total = sum(r.outcomes.values())
    return "-" if not total else f"{100 * r.outcomes.get('approve', 0) / total:.0f}"


def _p99_ratio(s: Run, c: Run) -> tuple[float | None, str]:
    """The service's p99 over the ceiling's: the medians of the cell's runs where there were several."""
    if s.p99_median_ms is not None and c.p99_median_ms is not None:
        r = ratio(s.p99_median_ms, c.p99_median_ms)
        return r, f"p99 median of runs {s.p99_median_ms:.1f} ms vs ceiling {c.p99_median_ms:.1f} ms = {_x(r)}"
    r = ratio(s.p99_ms, c.p99_ms)
    return r, f"p99 {s.p99_ms:.1f} ms vs ceiling {c.p99_ms:.1f} ms = {_x(r)}"


def verdicts(cells: list[tuple[Run, Run]]) -> list[dict[str, Any]]:
    """The goals, on PostgreSQL with 10,000 accounts."""
    by_clients = {s.clients: (s, c) for s, c in cells if s.db == "postgres" and s.accounts == TOTAL_ACCOUNTS}
    out = []
    specs = [
        ("decisions/s at 32 clients >= 0.5 x ceiling", 32, "throughput", GOALS["throughput_32"]),
        ("p99 at 32 clients <= 2.5 x ceiling", 32, "p99", GOALS["p99_32"]),
        ("p99 at 1 client <= 3 x ceiling", 1, "p99", GOALS["p99_1"]),
    ]
    for label, clients, kind, bound in specs:
        pair = by_clients.get(clients)
        if pair is None:
            out.append({"goal": label, "status": "NOT MEASURED"})
            continue
        s, c = pair
        if kind == "throughput":
            r = ratio(s.decisions_per_s, c.decisions_per_s)
            met = r is not None and r >= bound
            detail = f"{s.decisions_per_s:.0f}/s vs ceiling {c.decisions_per_s:.0f}/s = {_x(r)}"
        else:
            r, detail = _p99_ratio(s, c)
            met = r is not None and r <= bound
        status = "INVALID" if not (s.valid and c.valid) else ("MET" if met else "MISSED")
        out.append({"goal": label, "status": status, "ratio": r, "detail": detail})
    return out


def issue19_verdicts(cells: list[tuple[Run, Run]]) -> list[dict[str, Any]]:
    """Issue 19's targets, on PostgreSQL, for the cells measured."""
    by_cell = {(s.accounts, s.clients): (s, c) for s, c in cells if s.db == "postgres"}
    out = []
    for label, accounts, clients, kind, bound in ISSUE19:
        pair = by_cell.get((accounts, clients))
        if pair is None:
            out.append({"goal": "issue 19: " + label, "status": "NOT MEASURED"})
            continue
        s, c = pair
        if kind == "throughput":
            r = ratio(s.decisions_per_s, c.decisions_per_s)
            met = r is not None and r >= bound
            detail = f"{s.decisions_per_s:.0f}/s vs ceiling {c.decisions_per_s:.0f}/s = {_x(r)}"
        else:
            r, detail = _p99_ratio(s, c)
            met = r is not None and r <= bound
        status = "INVALID" if not (s.valid and c.valid) else ("MET" if met else "MISSED")
        out.append({"goal": "issue 19: " + label, "status": status, "ratio": r, "detail": detail})
    return out


# --- profiling (not measured) ---------------------------------------------------------------------


def profile_service(
    inst: Instance, server: Server, duration_s: float, run_id: str, stamp: str, *, one_worker: bool = False,
    clients: int = 32,
) -> dict[str, Any]:  # fmt: skip
    """py-spy over every worker while wrk drives `clients` over 10,000 accounts, three times: wall
    clock (--idle: waiting on PostgreSQL and for the CPU included), on-CPU only, and a flame graph
    (on-CPU). The raw recordings are summarised as inclusive and self % per function within requests."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {}
    # one worker (its pid, its threads) or the master and every worker
    target = ["--pid", str(children(server.proc.pid)[0])] if one_worker else ["--pid", str(server.proc.pid),
                                                                             "--subprocesses"]  # fmt: skip
    if one_worker:
        report["worker_pid"] = int(target[1])
    # "cpu" is --gil: only samples of a thread holding the GIL. Without it py-spy counts threads waiting
    # for the GIL as active, which with gthread's 8 threads per worker is most of them. --gil pauses the
    # process for each sample (no --nonblocking): without pausing it read the GIL's holder unreliably
    # (0 or 40 % of the expected samples in two runs of 10 and 30 s).
    for kind, fmt_, idle in (("wall", "raw", True), ("cpu", "raw", False), ("svg", "flamegraph", False)):
        path = RESULTS / f"{stamp}-profile-{kind}.{'svg' if fmt_ == 'flamegraph' else 'txt'}"
        cmd = [PY_SPY, "record", *target, "--rate", "100",
               "--duration", f"{int(duration_s)}", "--format", fmt_, "--output", str(path),
               *(["--nonblocking", "--idle"] if idle else ["--gil"])]  # fmt: skip
        spy_log = inst.tmp / f"py-spy-{kind}.log"
        with spy_log.open("wb") as fh:  # not a pipe nobody reads: py-spy would block once it filled
            spy = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        CLEANUP.procs.append(spy)
        time.sleep(1.0)
        run = wrk(inst, server, TOTAL_ACCOUNTS, clients, duration_s, run_id, record=False)
        try:
            spy.wait(duration_s + 30)
        finally:
            CLEANUP.stop(spy)
        if not path.exists() or path.stat().st_size < 1000:
            print(f"  py-spy {kind}: little or no output; its log:\n{spy_log.read_text()[-2000:]}")
        report[kind] = {
            "file": str(path.relative_to(ROOT)),
            "load": f"{run.decisions_per_s:.0f} dec/s, p99 {run.p99_ms:.1f} ms with py-spy attached",
            "cpu_per_decision_ms": _cpu_ms(asdict(run)),
            "loadavg_1m_before": run.loadavg_1m_before,
        }
        if fmt_ == "raw" and path.exists():
            report[kind].update(summarise_profile(path))
    return report


def summarise_profile(raw: Path, top: int = 40, start_marker: str = "handle_request (") -> dict[str, Any]:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    package: collections.Counter[str] = collections.Counter()
    busy: collections.Counter[str] = collections.Counter()  # as package, leaves blocked on I/O left out
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        # only time inside a request (the sync worker's handle_request), not waiting for connections
        try:
            start = next(i for i, f in enumerate(frames) if start_marker in f)
        except StopIteration:
            continue
        n = int(count)
        total += n
        frames = [_short(f) for f in frames[start:]]
        for f in set(frames):
            inclusive[f] += n
        own[frames[-1]] += n
        package[_package(frames[-1])] += n
        if not frames[-1].startswith(IO_LEAVES):
            busy[_package(frames[-1])] += n
    return {
        "request_samples": total,
        "inclusive": [(f, round(100 * n / total, 1)) for f, n in inclusive.most_common(top)] if total else [],
        "self": [(f, round(100 * n / total, 1)) for f, n in own.most_common(top)] if total else [],
        "self_by_package": [(f, round(100 * n / total, 1)) for f, n in package.most_common(20)]
        if total
        else [],
        "io_wait_pct": round(100 * (total - sum(busy.values())) / total, 1) if total else 0.0,
        "busy_by_package": [(f, round(100 * n / sum(busy.values()), 1)) for f, n in busy.most_common(20)]
        if busy
        else [],
    }


# leaf frames that are psycopg blocked on the server's socket (py-spy counts them as active)
IO_LEAVES = (
    "Connection.wait (psycopg/",
    "BaseCursor._send_query_prepared (psycopg/",
    "BaseCursor._execute_send (psycopg/",
    "BaseConnection._exec_command (psycopg/",
    "write (gunicorn/util.py)",
)


def _package(frame: str) -> str:
    """'f (sqlalchemy/engine/base.py)' -> 'sqlalchemy'; our own code by its second level: 'adapters/sql'."""
    m = re.match(r"^.*\((.*)\)$", frame)
    path = m.group(1) if m else frame
    parts = path.split("/")
    if parts[0] in ("adapters", "creditctl") and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0] if len(parts) > 1 else path


def _short(frame: str) -> str:
    """'func (/long/path/site-packages/pkg/mod.py:12)' -> 'func (pkg/mod.py)' — lines merged."""
    m = re.match(r"^(.*?) \((.*?)(?::\d+)?\)$", frame)
    if not m:
        return frame
    name, path = m.groups()
    for marker in ("site-packages/", f"{ROOT}/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


# --- main ------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10,000 accounts only, 1 and 32 clients, 4 s runs")
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--duration", type=float, default=None, help="seconds per run (default 10, --quick 4)")
    ap.add_argument("--workers", type=int, default=4, help="gunicorn workers for both servers")
    ap.add_argument(
        "--threads", type=int, default=None, help="threads per worker, both servers (default: serve's, 8)"
    )
    ap.add_argument("--cells", default=None, help="accounts x clients, e.g. 10000x32,10000x1,1x32")
    ap.add_argument(
        "--production",
        action="store_true",
        help="the service as deployed: INFO logging (access log) and creditctl worker beside it",
    )
    ap.add_argument(
        "--worker-args",
        default="",
        help="with --production: more options for creditctl worker, e.g. '--seal-every 0.2'",
    )
    ap.add_argument("--no-info", action="store_true", help="skip the INFO-logging measurement")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per cell, service and ceiling interleaved; the median counts",
    )
    ap.add_argument(
        "--profile", action="store_true", help="after the PostgreSQL runs, record the service with py-spy"
    )
    ap.add_argument(
        "--profile-ceiling", action="store_true", help="with --profile: record the ceiling the same way too"
    )
    ap.add_argument(
        "--profile-one-worker", action="store_true", help="with --profile: record one worker, not all of them"
    )
    ap.add_argument(
        "--profile-clients", type=int, default=32,
        help="with --profile: wrk's clients while recording (1: no thread waits for the GIL)",
    )  # fmt: skip
    ap.add_argument(
        "--audit-cost",
        action="store_true",
        help="also measure the service with its audit insert a no-op (bench/no_audit), interleaved with the "
        "service, at 10,000 accounts and 1 and 32 clients",
    )
    ap.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another checkout of this project (e.g. main, unpacked with git archive): also serve it on the "
        "same database and measure it interleaved with this one at 10,000 accounts (before/after in one run)",
    )
    ap.add_argument(
        "--baseline-threads",
        type=int,
        default=None,
        help="with --baseline: serve the baseline with this many threads per worker (a thread sweep: "
        "--baseline . --baseline-threads 4 compares 4 threads with --threads in one run)",
    )
    args = ap.parse_args()
    if args.baseline is not None:
        args.baseline = args.baseline.resolve()
    args.duration = args.duration or (4.0 if args.quick else 10.0)
    args.accounts = [TOTAL_ACCOUNTS] if args.quick else [1, 100, TOTAL_ACCOUNTS]
    args.clients = [1, 32] if args.quick else [1, 8, 32]
    args.dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    if args.cells:
        args.cells = [tuple(int(x) for x in c.lower().split("x")) for c in args.cells.split(",")]
        args.accounts = sorted({a for a, _ in args.cells})
        args.clients = sorted({c for _, c in args.cells})
    else:
        args.cells = [(a, c) for a in args.accounts for c in args.clients]
    return args


def print_header(args: argparse.Namespace, info: dict[str, Any]) -> None:
    print("creditctl decision benchmark")
    print(f"  command:    {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"  machine:    nproc {info['nproc']} ({info['cpu']}), load at start {info['loadavg_at_start']}")
    print(f"  code:       {info.get('code')}")
    print(f"  python:     {info['python']}  gunicorn {info.get('gunicorn')}  SQLite {info['sqlite']}")
    print(f"  postgresql: {info['postgresql']}")
    print(
        f"              autovacuum {info.get('pg_autovacuum')}, synchronous_commit "
        f"{info.get('pg_synchronous_commit')}; the bench runs VACUUM (ANALYZE) on the written tables before "
        "every run"
    )
    print(f"  wrk:        {info['wrk']}")
    print(
        f"  load:       {args.workers} workers x {args.threads or 'serve default'} threads per server; "
        f"{args.duration:g} s per run; cells (accounts x clients) {args.cells}; wrk threads "
        f"min(clients, 2); {args.repeat} run(s) per cell"
        + ("; PRODUCTION: INFO + creditctl worker" if args.production else "")
    )


def bench_database(
    db: str, args: argparse.Namespace, run_id: str, stamp: str, results: dict[str, Any]
) -> list[tuple[Run, Run]]:
    """Every cell on one database; the INFO-logging runs and the profile on the last one asked for."""
    print(f"\n== {db}: preparing {TOTAL_ACCOUNTS} accounts ...", flush=True)
    inst = Instance(db, run_id, args.workers, args.threads)
    try:
        inst.prepare()
        if args.production:
            inst.start_worker(shlex.split(args.worker_args))
            service = inst.start_service("INFO")
        else:
            service = inst.start_service()
        ceiling = inst.start_ceiling()
        for server in (service, ceiling):  # warm up: imports, pools, prepared statements
            wrk(inst, server, TOTAL_ACCOUNTS, 8, 2, run_id, record=False)
        cells: list[tuple[Run, Run]] = []
        for accounts, clients in args.cells:
            svcs, ceils = [], []
            for _ in range(args.repeat):  # interleaved, so both see the same noise
                svcs.append(wrk(inst, service, accounts, clients, args.duration, run_id))
                ceils.append(wrk(inst, ceiling, accounts, clients, args.duration, run_id))
                print(
                    f"   {accounts:>6} accounts {clients:>3} clients: service {fmt_run(svcs[-1])}"
                    f" | ceiling {fmt_run(ceils[-1])}  (other CPU {_other(svcs[-1])} / "
                    f"{_other(ceils[-1])} %; load {svcs[-1].loadavg_1m_before} / "
                    f"{ceils[-1].loadavg_1m_before}; CPU/decision {_cpu_ms(asdict(svcs[-1]))} / "
                    f"{_cpu_ms(asdict(ceils[-1]))})",
                    flush=True,
                )
            results["runs"] += [asdict(r) for r in svcs + ceils]
            cells.append((median_run(svcs), median_run(ceils)))
        if args.audit_cost:
            results.setdefault("audit_cost", {})[db] = measure_audit_cost(inst, service, args, run_id)
        if args.baseline:
            log_level = "INFO" if args.production else "WARNING"
            results.setdefault("baseline", {})[db] = measure_baseline(inst, service, log_level, args, run_id)
        info_runs: list[Run] = []
        if args.production:
            results.setdefault("unsealed_audit_events_at_end", {})[db] = inst.unsealed_events()
            results.setdefault("info_log_bytes", {})[db] = service.log.stat().st_size
        if not args.no_info and not args.production and db == args.dbs[-1]:
            CLEANUP.stop(service.proc)
            service = inst.start_service("INFO")
            wrk(inst, service, TOTAL_ACCOUNTS, 8, 2, run_id, record=False)
            for clients in (1, 32):
                info_runs.append(wrk(inst, service, TOTAL_ACCOUNTS, clients, args.duration, run_id))
            results["runs"] += [asdict(r) for r in info_runs]
            results["info_logging"] = [asdict(r) for r in info_runs]
            results["info_log_bytes"] = service.log.stat().st_size
        print_table(db, f"{args.workers} workers x {args.threads or 'serve default'} threads (gthread)"
                    + ("; service at INFO with creditctl worker beside it" if args.production else ""),
                    args.duration, cells, inst.shim)  # fmt: skip
        print_info_runs(cells, info_runs)
        results.setdefault("rowcount_shim", {})[db] = inst.shim
        if args.profile and db == "postgres":
            service = profile_servers(inst, service, ceiling, args, run_id, stamp, results)
        results["commands"][db] = [
            *inst.commands,
            f"wrk -t min(C,2) -c C -d {args.duration:g}s --timeout 10s --latency -s bench/decide.lua "
            "http://127.0.0.1:PORT -- $KEY ACCOUNTS RUNID",
        ]
        return cells
    finally:
        for p in list(CLEANUP.procs):
            CLEANUP.stop(p)
        inst.worker_proc = None
        inst.close()


def profile_servers(
    inst: Instance, service: Server, ceiling: Server, args: argparse.Namespace, run_id: str, stamp: str,
    results: dict[str, Any],
) -> Server:  # fmt: skip
    """--profile: py-spy over the service (and with --profile-ceiling the ceiling) under
    --profile-clients (32 by default; at 1 no thread waits for the GIL, so --gil's samples are CPU)."""
    clients = args.profile_clients
    print(f"\n== profiling the service (py-spy, {clients} clients, 10,000 accounts; not measured) ...")
    if service.proc.poll() is not None or not service.name.startswith("service"):
        CLEANUP.stop(service.proc)
        service = inst.start_service("INFO" if args.production else "WARNING")
    results["profile"] = profile_service(
        inst, service, max(args.duration, 10), run_id, stamp, one_worker=args.profile_one_worker,
        clients=clients,
    )  # fmt: skip
    print_profile(results["profile"])
    if args.profile_ceiling and ceiling.proc.poll() is None:
        print("\n== profiling the ceiling the same way (not measured) ...")
        results["profile_ceiling"] = profile_service(
            inst, ceiling, max(args.duration, 10), run_id, f"{stamp}-ceiling",
            one_worker=args.profile_one_worker, clients=clients,
        )  # fmt: skip
        print_profile(results["profile_ceiling"])
    return service


def measure_audit_cost(inst: Instance, service: Server, args: argparse.Namespace, run_id: str) -> list[dict]:
    """The service against itself without the audit insert, runs interleaved (on, off, on, off ...) so
    both see the same noise; the medians and their ratio, per client count, 10,000 accounts."""
    off = inst.start_service(audit=False)
    try:
        wrk(inst, off, TOTAL_ACCOUNTS, 8, 2, run_id, record=False)
        rows = []
        for clients in (1, 32):
            ons, offs = [], []
            for _ in range(max(args.repeat, 3)):
                ons.append(wrk(inst, service, TOTAL_ACCOUNTS, clients, args.duration, run_id))
                offs.append(wrk(inst, off, TOTAL_ACCOUNTS, clients, args.duration, run_id))
                print(
                    f"   audit cost, {clients:>3} clients: audit on {fmt_run(ons[-1])} | audit off "
                    f"{fmt_run(offs[-1])}  (other CPU {_other(ons[-1])} / {_other(offs[-1])} %)",
                    flush=True,
                )
            on, no = median_run(ons), median_run(offs)
            rows.append(
                {
                    "clients": clients,
                    "audit_on": asdict(on),
                    "audit_off": asdict(no),
                    "throughput_ratio": ratio(on.decisions_per_s, no.decisions_per_s),
                    "p99_ratio": ratio(on.p99_ms, no.p99_ms),
                    "valid": on.valid and no.valid,
                }
            )
        print(f"  audit on / audit off ({inst.db}, {TOTAL_ACCOUNTS} accounts, medians):")
        for r in rows:
            print(
                f"    {r['clients']:>3} clients: {r['audit_on']['decisions_per_s']:.0f} vs "
                f"{r['audit_off']['decisions_per_s']:.0f} dec/s = {_x(r['throughput_ratio'])}; p99 "
                f"{r['audit_on']['p99_ms']:.1f} vs {r['audit_off']['p99_ms']:.1f} ms = {_x(r['p99_ratio'])}; "
                f"CPU per decision (server + PostgreSQL) {_cpu_ms(r['audit_on'])} vs "
                f"{_cpu_ms(r['audit_off'])}"
            )
        return rows
    finally:
        CLEANUP.stop(off.proc)


def measure_baseline(
    inst: Instance, service: Server, log_level: str, args: argparse.Namespace, run_id: str
) -> list[dict]:
    """The service against the same service served from --baseline's checkout (same database, workers,
    threads, log level), runs interleaved (baseline, this, this, baseline ...) so both see the same noise,
    on every cell of --cells (one hot account too): the medians, their ratio, and the CPU per decision."""
    base = inst.start_service(log_level, code=args.baseline, threads=args.baseline_threads)
    try:
        wrk(inst, base, TOTAL_ACCOUNTS, 8, 2, run_id, record=False)
        rows = []
        for accounts, clients in sorted(set(args.cells), key=lambda cell: (-cell[0], -cell[1])):
            bases, news = [], []
            for i in range(max(args.repeat, 3)):
                if i % 2:  # this one first every other pair, so neither always follows the other
                    news.append(wrk(inst, service, accounts, clients, args.duration, run_id))
                bases.append(wrk(inst, base, accounts, clients, args.duration, run_id))
                if not i % 2:
                    news.append(wrk(inst, service, accounts, clients, args.duration, run_id))
                print(
                    f"   baseline vs this, {accounts:>5} accounts {clients:>3} clients: "
                    f"baseline {fmt_run(bases[-1])} | this "
                    f"{fmt_run(news[-1])}  (load {bases[-1].loadavg_1m_before} / "
                    f"{news[-1].loadavg_1m_before}; "
                    f"other CPU {_other(bases[-1])} / {_other(news[-1])} %; CPU/decision "
                    f"{_cpu_ms(asdict(bases[-1]))} / {_cpu_ms(asdict(news[-1]))})",
                    flush=True,
                )
            b, n = median_run(bases), median_run(news)
            rows.append({
                "accounts": accounts,
                "clients": clients,
                "baseline": asdict(b),
                "this": asdict(n),
                "runs": [[asdict(x), asdict(y)] for x, y in zip(bases, news, strict=True)],
                "throughput_ratio": ratio(n.decisions_per_s, b.decisions_per_s),
                "p99_ratio": ratio(n.p99_ms, b.p99_ms),
                "cpu_ratios": [_server_cpu_ratio(x, y) for x, y in zip(bases, news, strict=True)],
            })  # fmt: skip
        threads = f", {args.baseline_threads} threads" if args.baseline_threads else ""
        print(f"  this / baseline ({args.baseline}{threads}; {inst.db}, medians):")
        for r in rows:
            ratios = ", ".join(f"{x:.2f}" for x in r["cpu_ratios"] if x is not None)
            print(
                f"    {r['accounts']:>5} accounts {r['clients']:>3} clients: "
                f"{r['this']['decisions_per_s']:.0f} vs "
                f"{r['baseline']['decisions_per_s']:.0f} dec/s = {_x(r['throughput_ratio'])}; p99 "
                f"{r['this']['p99_ms']:.1f} vs {r['baseline']['p99_ms']:.1f} ms = {_x(r['p99_ratio'])}; "
                f"CPU per decision (server + PostgreSQL) {_cpu_ms(r['this'])} vs {_cpu_ms(r['baseline'])}; "
                f"server CPU per decision this/baseline, run by run: {ratios}"
            )
        return rows
    finally:
        CLEANUP.stop(base.proc)


def _server_cpu_ratio(base: Run, new: Run) -> float | None:
    """The server's CPU per decision in `new` over that in `base` (one interleaved pair)."""
    per = lambda r: r.cpu_pct.get("server", 0.0) * r.duration_s / r.requests if r.requests else 0.0  # noqa: E731
    return per(new) / per(base) if per(base) else None


def _cpu_ms(run: dict[str, Any]) -> str:
    """The server's and PostgreSQL's CPU per answered request, in ms: steadier than decisions/s on a
    shared machine (a neighbour's load lowers throughput far more than it changes the work per request)."""
    cpu, n = run["cpu_pct"], run["requests"]
    if not n or not cpu:
        return "-"
    ms = lambda k: cpu.get(k, 0.0) / 100 * run["duration_s"] / n * 1000  # noqa: E731
    worker = f" + worker {ms('worker'):.2f}" if cpu.get("worker") else ""
    return f"{ms('server'):.2f} + {ms('postgres'):.2f}{worker} ms"


def audit_verdict(results: dict[str, Any]) -> dict[str, Any] | None:
    rows = results.get("audit_cost", {}).get("postgres")
    if rows is None:
        return None
    goal = f"decisions/s at 32 clients with the audit >= {GOALS['audit_32']} x without it"
    r = next(row for row in rows if row["clients"] == 32)
    met = r["throughput_ratio"] is not None and r["throughput_ratio"] >= GOALS["audit_32"]
    status = "INVALID" if not r["valid"] else ("MET" if met else "MISSED")
    detail = (
        f"{r['audit_on']['decisions_per_s']:.0f}/s vs {r['audit_off']['decisions_per_s']:.0f}/s = "
        f"{_x(r['throughput_ratio'])}"
    )
    return {"goal": goal, "status": status, "ratio": r["throughput_ratio"], "detail": detail}


def print_info_runs(cells: list[tuple[Run, Run]], info_runs: list[Run]) -> None:
    if not info_runs:
        return
    warn = {s.clients: s for s, _ in cells if s.accounts == TOTAL_ACCOUNTS}
    print(
        f"  service with CREDITCTL_LOG_LEVEL=INFO (production's level; the access log goes to a file),"
        f" {TOTAL_ACCOUNTS} accounts:"
    )
    for r in info_runs:
        w = warn.get(r.clients)
        rel = (
            f"  ({r.decisions_per_s / w.decisions_per_s:.2f}x of WARNING)" if w and w.decisions_per_s else ""
        )
        print(
            f"    {r.clients:>3} clients: {r.decisions_per_s:.0f} dec/s, p50 {r.p50_ms:.1f} ms, "
            f"p99 {r.p99_ms:.1f} ms{rel}; other CPU {_other(r)} %"
        )


def main() -> int:
    args = parse_args()
    run_id = uuid.uuid4().hex[:8]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    info = machine_info()
    print_header(args, info)
    results: dict[str, Any] = {
        "run_id": run_id,
        "stamp": stamp,
        "machine": info,
        "argv": sys.argv,
        "workers": args.workers,
        "duration_s": args.duration,
        "runs": [],
        "commands": {},
        "verdicts": [],
        "profile": None,
        "cells": [],
    }
    all_cells: list[tuple[Run, Run]] = []
    try:
        for db in args.dbs:
            all_cells += bench_database(db, args, run_id, stamp, results)
        results["cells"] = [
            {
                "db": s.db,
                "accounts": s.accounts,
                "clients": s.clients,
                "service": asdict(s),
                "ceiling": asdict(c),
                "throughput_ratio": ratio(s.decisions_per_s, c.decisions_per_s),
                "p99_ratio": ratio(s.p99_ms, c.p99_ms),
            }
            for s, c in all_cells
        ]
        results["verdicts"] = verdicts(all_cells) + issue19_verdicts(all_cells)
        audit = audit_verdict(results)
        if audit is not None:
            results["verdicts"].append(audit)
        print_summary(results)
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted ({exc}); cleaning up", file=sys.stderr)
        return 130
    finally:
        CLEANUP.run()
        if results["runs"]:
            RESULTS.mkdir(parents=True, exist_ok=True)
            path = RESULTS / f"{stamp}.json"
            path.write_text(json.dumps(results, indent=2, default=str))
            print(f"\nresults: {path.relative_to(ROOT)}")
    return 0


def print_profile(p: dict[str, Any]) -> None:
    titles = (
        ("wall", "py-spy --idle (wall clock: waiting on PostgreSQL and for a CPU included)"),
        ("cpu", "py-spy --gil (only threads holding the GIL: Python's CPU)"),
    )
    for kind, title in titles:
        r = p.get(kind)
        if not r:
            continue
        cpu = r.get("cpu_per_decision_ms")
        print(f"  {title}: {r['file']} ({r['load']}; CPU/decision server + PostgreSQL {cpu}); "
              f"{r.get('request_samples', 0)} samples in requests")  # fmt: skip
        print("    inclusive %:")
        for f, pct in r.get("inclusive", [])[:30]:
            print(f"      {pct:5.1f}  {f}")
        print("    self %:")
        for f, pct in r.get("self", [])[:15]:
            print(f"      {pct:5.1f}  {f}")
        print("    self % by package/module:")
        for f, pct in r.get("self_by_package", [])[:15]:
            print(f"      {pct:5.1f}  {f}")
        print(
            f"    {r.get('io_wait_pct', 0):.1f} % of samples are blocked on a socket (PostgreSQL or the "
            "client); the rest, by package:"
        )
        for f, pct in r.get("busy_by_package", [])[:15]:
            print(f"      {pct:5.1f}  {f}")
    if p.get("svg"):
        print(f"  flame graph (py-spy --gil): {p['svg']['file']} ({p['svg']['load']})")


def print_summary(results: dict[str, Any]) -> None:
    print("\nGoals (PostgreSQL, 10,000 accounts):")
    for v in results["verdicts"]:
        print(f"  [{v['status']:>6}] {v['goal']}: {v.get('detail', '')}")
    print("\nCommands (per database; $KEY is the orders key printed by `keys create`):")
    for db, cmds in results["commands"].items():
        print(f"  {db}:")
        for c in cmds:
            print(f"    {c}")


if __name__ == "__main__":
    sys.exit(main())
