"""Two `creditctl serve` instances on one PostgreSQL database, the recording Haier emulator as their upstream,
and many clients ordering for a few customers across both: how many balance calls each customer costs per
refresh window. Shared by tests/e2e/test_upstream_economy.py (bounded) and bench/upstream_economy.py.

The economy to hold: at most one balance call per customer per refresh window, whatever the load and the
number of instances. The refresh window is max(refresh_after_s of the rule set, SharedBalanceProvider's
reuse_s): a snapshot younger than refresh_after_s is used as it is, and a stored report younger than
reuse_s is shared by every instance (leased, so one instance fetches while the others wait for its answer).

Windows are counted per customer from the calls themselves, as the emulator saw them arrive: a window
opens with a call and holds every call of that customer that arrives less than (window - SLACK_S) later;
the next call after that opens the next window. SLACK_S covers the jitter between the moment a fetch is
stamped (the database's clock, before anything is sent) and its call arriving (a token, connecting): a
second fetch in the same window, from the other instance or the same one, lands within milliseconds.
"""

from __future__ import annotations

import inspect
import itertools
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, text

from adapters.bootstrap import bootstrap, load_settings
from adapters.sql.engine import make_engine
from creditctl.services.customers import register_customer
from creditctl.services.shared_balances import SharedBalanceProvider

CREDITCTL = Path(sys.executable).with_name("creditctl")
RECORDING_EMULATOR = Path(__file__).with_name("recording_emulator.py")
ROOT = Path(__file__).resolve().parents[2]
REUSE_S = float(inspect.signature(SharedBalanceProvider).parameters["reuse_s"].default)
SLACK_S = 0.5
BALANCE = "100000000.00"
SALE_GROUP = "1001"


@dataclass
class Settings:
    customers: int = 3
    clients: int = 16
    instances: int = 2
    workers: int = 2
    refresh_after_s: int = 2
    windows: int = 6
    seed: int = 0

    @property
    def window_s(self) -> float:
        return max(float(self.refresh_after_s), REUSE_S)


@dataclass
class Result:
    settings: Settings
    load_s: float
    answers: dict[str, int]  # "instance-N 201 approve": count
    calls: list[dict[str, Any]]  # the emulator's record of every balance call during the load
    counted: int  # the emulator's own counter of balance calls during the load
    windows: dict[str, list[int]]  # customer -> calls in each of its windows, in order
    min_gap_s: dict[str, float | None]  # customer -> shortest time between two of its calls
    upstream_calls_by_instance: list[float]  # creditctl_upstream_calls_total{operation="balance"}
    decisions_stored: int
    loadavg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    log_dir: str = ""

    @property
    def max_per_window(self) -> int:
        return max((max(w) for w in self.windows.values() if w), default=0)

    def decisions_by_instance(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for label, n in self.answers.items():
            instance, status = label.split()[:2]
            if status in ("200", "201"):
                out[instance] += n
        return dict(out)


def windows_of(
    calls: list[dict[str, Any]], window_s: float
) -> tuple[dict[str, list[int]], dict[str, float | None]]:
    """Per customer: the number of calls in each of its windows, and the shortest gap between calls."""
    by_customer: dict[str, list[float]] = defaultdict(list)
    for c in calls:
        by_customer[c["customer"]].append(c["at"])
    windows: dict[str, list[int]] = {}
    gaps: dict[str, float | None] = {}
    for customer, ats in by_customer.items():
        ats.sort()
        counts: list[int] = []
        opened = None
        for at in ats:
            if opened is None or at - opened >= window_s - SLACK_S:
                opened = at
                counts.append(1)
            else:
                counts[-1] += 1
        windows[customer] = counts
        gaps[customer] = min((b - a for a, b in itertools.pairwise(ats)), default=None)
    return windows, gaps


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stack:
    """The emulator and the instances, on a fresh PostgreSQL database; close() stops and drops everything."""

    def __init__(self, settings: Settings, pg_url: str, tmp: Path | None = None) -> None:
        self.s = settings
        self.tmp = tmp or Path(tempfile.mkdtemp(prefix="creditctl-economy-"))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.base_url = pg_url
        self.db_name = f"creditctl_economy_{uuid.uuid4().hex[:10]}"
        self.database_url = pg_url.rsplit("/", 1)[0] + "/" + self.db_name
        self.customers = [f"88009000{i:02d}" for i in range(1, settings.customers + 1)]
        self.urls: list[str] = []
        self.logs: list[Path] = []
        self.key = ""
        self.emulator = ""
        self._created = False

    # --- processes ----------------------------------------------------------------------------

    def env(self, instance: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CREDITCTL_", "PROMETHEUS_"))}
        return env | {
            # One folder per instance, as on separate hosts; the same secret key, to read the Haier config.
            "CREDITCTL_INSTANCE_PATH": str(self.tmp / f"instance-{instance}"),
            "CREDITCTL_SECRET_KEYS": self._secret,
            "CREDITCTL_DATABASE_URL": self.database_url,
            "CREDITCTL_BALANCE_PROVIDER": "haier",
            "CREDITCTL_ALLOW_LOOPBACK_URLS": "true",
            "CREDITCTL_RATE_LIMIT_PER_KEY": "off",  # every client sends with one key
            "CREDITCTL_LOG_LEVEL": "WARNING",
        }

    def _spawn(self, command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command, env=env, cwd=self.tmp, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.processes.append(proc)
        return proc

    def _cli(self, *args: str) -> str:
        done = subprocess.run(
            [str(CREDITCTL), *args],
            env=self.env(0),
            cwd=self.tmp,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"creditctl {' '.join(args)}: {done.stdout}\n{done.stderr}")
        return done.stdout

    def _wait(self, url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{url} not ready within {timeout_s} s:\n{log.read_text()[-3000:]}")

    def start(self) -> None:
        """Side by side where the order allows (each command spends a second or more starting Python)."""
        self._secret = secrets.token_urlsafe(32)
        admin = create_engine(self.base_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.db_name}"'))
        admin.dispose()
        self._created = True

        port = _free_port()
        self.emulator = f"http://127.0.0.1:{port}"
        log = self.tmp / "emulator.log"
        emu = self._spawn([sys.executable, str(RECORDING_EMULATOR), "--port", str(port)], self.env(0), log)
        self._cli("db", "upgrade")  # while the emulator starts
        self._wait(f"{self.emulator}/_emulator/stats", emu, log)
        passwords = {code: f"pw-{code[-2:]}" for code in self.customers}
        for code, password in passwords.items():
            entry = {"customerCode": code, "customerPassword": password, "saleGroupCode": SALE_GROUP,
                     "saleGroupName": "economy", "payerAccountName": f"payer {code}",
                     "payerAccountBalance": BALANCE}  # fmt: skip
            requests.post(f"{self.emulator}/_emulator/balances", json=entry, timeout=5).raise_for_status()
        config = {"base_url": self.emulator, "auth": "client_credentials", "client_id": "demo-client",
                  "client_secret": "demo-secret", "auth_scheme": "Bearer", "customers": passwords,
                  "timeouts": {"connect_s": 1, "read_s": 5}, "is_active": True}  # fmt: skip
        (self.tmp / "haier.json").write_text(json.dumps(config))
        self._cli("haier", "configure", "main", "--file", str(self.tmp / "haier.json"))

        for i in range(self.s.instances):  # they boot meanwhile
            port = _free_port()
            log = self.tmp / f"instance-{i}.log"
            cmd = [str(CREDITCTL), "serve", "--port", str(port), "--workers", str(self.s.workers)]
            self._spawn(cmd, self.env(i), log)
            self.urls.append(f"http://127.0.0.1:{port}")
            self.logs.append(log)
        key_cmd = self._popen_cli("keys", "create", "--role", "orders", "--name", "economy")
        export_cmd = self._popen_cli("rules", "export")
        self._register_customers()
        self.key = self._finish(key_cmd).strip().splitlines()[-1]
        document = json.loads(self._finish(export_cmd))
        document["params"] |= {"refresh_after_s": self.s.refresh_after_s,
                               "max_balance_age_s": self.s.refresh_after_s + 30}  # fmt: skip
        (self.tmp / "rules.json").write_text(json.dumps(document))
        self._cli("rules", "import", str(self.tmp / "rules.json"))
        for url, proc, log in zip(self.urls, self.processes[1:], self.logs, strict=True):
            self._wait(f"{url}/readyz", proc, log)
        time.sleep(1.1)  # a worker that read the active rule set before the import forgets it within 1 s

    def _popen_cli(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([str(CREDITCTL), *args], env=self.env(0), cwd=self.tmp, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip

    @staticmethod
    def _finish(proc: subprocess.Popen[str]) -> str:
        out, err = proc.communicate(timeout=180)
        if proc.returncode != 0:
            raise RuntimeError(f"{proc.args}: {out}\n{err}")
        return out

    def _register_customers(self) -> None:
        """What `creditctl customer CODE` does, for each customer, in this process (fetches its balance)."""
        engine = make_engine(self.database_url)
        try:
            context = bootstrap(load_settings(self.env(0)), engine=engine)
            for code in self.customers:
                if not register_customer(code, uow=context.uow(), clock=context.clock):
                    raise RuntimeError(f"could not register {code}")
        finally:
            engine.dispose()

    def make_stale(self) -> None:
        """Every snapshot and every shared report an hour old: the first orders all need a fetch at once."""
        engine = create_engine(self.database_url)
        try:
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "UPDATE credit_accounts SET balance_fetched_at = "
                        "balance_fetched_at - interval '1 hour'"
                    )
                )
                conn.execute(
                    text(
                        "UPDATE balance_reports SET fetched_at = fetched_at - interval '1 hour' "
                        "WHERE fetched_at IS NOT NULL"
                    )
                )
        finally:
            engine.dispose()

    def close(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
                except ProcessLookupError:
                    pass
        if self._created:
            admin = create_engine(self.base_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'))
            admin.dispose()

    # --- measuring ----------------------------------------------------------------------------

    def balance_calls(self) -> list[dict[str, Any]]:
        return list(requests.get(f"{self.emulator}/_e2e/balance_calls", timeout=10).json())

    def counted_calls(self) -> int:
        return int(requests.get(f"{self.emulator}/_emulator/stats", timeout=10).json()["balance_calls"])

    def upstream_calls(self, url: str) -> float:
        metrics = requests.get(f"{url}/metrics", timeout=10).text
        pattern = r'^creditctl_upstream_calls_total\{[^}]*operation="balance"[^}]*\} (\S+)$'
        return sum(float(v) for v in re.findall(pattern, metrics, re.M))

    def run(self) -> Result:
        """Stale snapshots, then the clients for `windows` refresh windows; the calls counted meanwhile."""
        rng = random.Random(self.s.seed)
        seeds = [rng.randrange(1 << 30) for _ in range(self.s.clients)]
        metrics_before = [self.upstream_calls(u) for u in self.urls]
        counted_before = self.counted_calls()
        answers: Counter[str] = Counter()
        guard = threading.Lock()
        stop = threading.Event()
        run_id = uuid.uuid4().hex[:8]

        def client(n: int) -> None:
            r = random.Random(seeds[n])
            instance = n % len(self.urls)
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {self.key}"
            sent = 0
            while not stop.is_set():
                sent += 1
                body = {
                    "order_id": f"{run_id}-{n}-{sent}",
                    "customer_code": r.choice(self.customers),
                    "sale_group_code": SALE_GROUP,
                    "amount": f"{r.randint(1, 99)}.{r.randint(0, 99):02d}",
                }
                try:
                    resp = session.post(f"{self.urls[instance]}/v1/decisions", json=body, timeout=30)
                    label = f"instance-{instance} {resp.status_code}"
                    if resp.status_code in (200, 201):
                        label += f" {resp.json()['outcome']}"
                except requests.RequestException as exc:
                    label = f"instance-{instance} error {type(exc).__name__}"
                with guard:
                    answers[label] += 1

        self.make_stale()
        started_at = time.time()
        started = time.monotonic()
        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(self.s.clients)]
        for t in threads:
            t.start()
        time.sleep(self.s.windows * self.s.window_s)
        stop.set()
        for t in threads:
            t.join(timeout=40)
        load_s = time.monotonic() - started
        time.sleep(0.5)  # a fetch begun by the last orders lands at the emulator
        calls = [c for c in self.balance_calls() if c["at"] >= started_at]
        windows, gaps = windows_of(calls, self.s.window_s)
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                stored = int(
                    conn.execute(
                        text("SELECT count(*) FROM decisions WHERE order_id LIKE :p"), {"p": f"{run_id}-%"}
                    ).scalar_one()
                )
        finally:
            engine.dispose()
        return Result(
            settings=self.s,
            load_s=round(load_s, 2),
            answers=dict(answers),
            calls=calls,
            counted=self.counted_calls() - counted_before,
            windows=windows,
            min_gap_s=gaps,
            upstream_calls_by_instance=[
                self.upstream_calls(u) - b for u, b in zip(self.urls, metrics_before, strict=True)
            ],
            decisions_stored=stored,
            loadavg=os.getloadavg(),
            log_dir=str(self.tmp),
        )


def describe(r: Result) -> list[str]:
    """The figures, as lines to print."""
    s = r.settings
    lines = [
        f"{s.instances} instances x {s.workers} workers, {s.clients} clients, {s.customers} customers, "
        f"refresh window {s.window_s:g} s (refresh_after_s {s.refresh_after_s}, reuse_s {REUSE_S:g}), "
        f"load {r.load_s:.1f} s = {r.load_s / s.window_s:.1f} windows",
        f"answers: {dict(sorted(r.answers.items()))}",
        f"decisions stored: {r.decisions_stored:,} ({r.decisions_stored / r.load_s:.0f}/s); by instance "
        f"{r.decisions_by_instance()}",
        f"balance calls: {len(r.calls)} recorded, {r.counted} counted by the emulator; by instance "
        f"(their /metrics): {[round(x) for x in r.upstream_calls_by_instance]}",
        f"{'customer':<12} {'calls':>5} {'windows':>7} {'max/window':>10} {'min gap s':>9}  calls per window",
    ]
    for customer in sorted(r.windows):
        w = r.windows[customer]
        gap = r.min_gap_s[customer]
        lines.append(
            f"{customer:<12} {sum(w):>5} {len(w):>7} {max(w):>10} "
            f"{gap if gap is None else round(gap, 3)!s:>9}  {w}"
        )
    lines.append(
        f"max calls per customer per window: {r.max_per_window} (must be 1); "
        f"load average {tuple(round(x, 2) for x in r.loadavg)}"
    )
    return lines
