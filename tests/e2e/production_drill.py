"""The production drill: creditctl run the way a distributor's IT department runs it, while things break.

    .venv/bin/python deploy/drill.py [--cycles N] [--threads N] [--seed S]      (the long form)
    .venv/bin/pytest -s tests/e2e/test_production_shape.py                       (one cycle, in CI)

What runs, each a process of its own, all on loopback and free ports, all stopped at the end:
  * a private PostgreSQL (tests/private_postgres.py: never the shared server), migrated by its owner;
  * PgBouncer in transaction pooling in front of it, from deploy/pgbouncer/pgbouncer.ini; every creditctl
    process connects through it as the service's role (`creditctl db roles`), with
    CREDITCTL_DATABASE_POOLER=transaction;
  * two instances, `creditctl serve` each (gunicorn), behind nginx from deploy/nginx/creditctl.conf;
  * two `creditctl worker`s (webhooks, audit sealing and anchoring);
  * the Haier emulator as the upstream (tests/e2e/recording_emulator.py: it records every balance call),
    its limit lowered to 20 calls/s and the service configured with rate_limit_per_s 9 per instance;
  * the load generator (tests/e2e/drill_load.py), order systems keeping their own log of every answer;
  * a webhook receiver (tests/webhook_receiver.py) subscribed to every topic.

Each cycle, under load: the upstream answers 503 for longer than the breaker's cooldown (30 s); meanwhile
one instance is killed with SIGKILL and started again, slow clients open connections to the proxy and
send half a request, one worker is killed with SIGKILL and started again, and PostgreSQL is stopped and
started again (every other process keeps running). Then the upstream heals.

Afterwards `check` holds the run against what must be true (see Report.problems) and `Report.figures`
prints requests, errors by kind during each fault and the recovery times."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import Engine, select, text

from adapters.bootstrap import bootstrap, load_settings
from adapters.haier.emulator_state import TOKEN_LIFETIME_S
from adapters.sql.engine import make_engine
from adapters.sql.tables import credit_accounts, decisions, outbox
from creditctl.domain.webhook import EVENT_TYPES
from creditctl.services.customers import refresh_balances, register_customer
from creditctl.services.webhooks import create_subscription
from rules import Outcome
from tests.e2e.served import CREDITCTL, clean_env, free_port
from tests.invariants import _active_params, _credit_limit_fen, check_invariants
from tests.ledger_upstream import LedgerUpstream
from tests.outside_checker import OutsideBooks
from tests.private_postgres import private_postgres
from tests.proxies import Nginx, nginx, pgbouncer
from tests.webhook_receiver import Receiver, running

HERE = Path(__file__).resolve().parent
RECORDING_EMULATOR = HERE / "recording_emulator.py"
LOAD = HERE / "drill_load.py"
APP_ROLE, APP_PASSWORD = "creditctl_app", "drill-app-password"
BREAKER_COOLDOWN_S = 30.0  # adapters/haier/circuit_breaker.py's default, which the service uses
# The upstream's limit, lowered from the platform's 100/s so that the customers' refreshes want more than
# it: the services' own limiters must keep them under it. Each instance's rate_limit_per_s is a little
# under half of it (calls arrive with some jitter after their send slot).
EMULATOR_RATE_LIMIT = 20  # calls per second per interface
INSTANCE_RATE_LIMIT = 9
# The emulator's tokens live an hour; the config's token_refresh_before_s makes the service take a new one
# after TOKEN_USED_FOR_S, so that a run sees several: one fetch per such period, across both instances.
TOKEN_USED_FOR_S = 10
READY_TIMEOUT_S = 60.0
UNAVAILABLE_DB = "https://creditctl.dev/problems/unavailable/database"
UNAVAILABLE_INSTANCE = "https://creditctl.dev/problems/unavailable/instance"  # nginx's (creditctl.conf)
WEBHOOK_TIMEOUT_S = 2.0
WEBHOOK_LEASE_S = 5.0
SLOW_CLOSED_WITHIN_S = 5.0 + 2.0  # nginx's client_header_timeout (deploy/nginx/creditctl.conf), and slack

# The upstream's accounts (emulator demo data plus five more), with the amounts the clients ask for (fen).
EXTRA = [f"88007100{i:02d}" for i in range(1, 26)]  # 26 customers, each due every second under load
# Not the emulator's 8800633176 (balance -1,520.75): tests/invariants.py counts an account whose upstream
# balance is below minus its credit limit as overspent even with no hold on it.
PASSWORDS = {"8800633175": "demo-175"} | {c: f"pw-{c[-2:]}" for c in EXTRA}
STARTING = {
    ("8800633175", "1001"): "1250000.00",
    ("8800633175", "1002"): "38000.50",
} | {(c, "1001"): "200000.00" for c in EXTRA}
AMOUNTS_FEN = {
    ("8800633175", "1001"): (10_000, 500_000),
    ("8800633175", "1002"): (50_000, 300_000),
}
DEFAULT_AMOUNTS_FEN = (10_000, 200_000)


@dataclass
class Options:
    cycles: int = 1
    threads: int = 4  # load generator threads (order systems sending at once)
    seed: int = 0
    upstream_down_s: float = BREAKER_COOLDOWN_S + 5.0
    pg_down_s: float = 5.0
    slow_clients: int = 30
    slow_hold_s: float = 7.0  # longer than nginx's client_header_timeout (5 s)
    instance_threads: int = 8
    warm_s: float = 4.0
    tail_s: float = 3.0


@dataclass
class Phase:
    name: str
    start: float  # Unix time
    end: float = 0.0
    marks: dict[str, float] = field(default_factory=dict)


@dataclass
class Proc:
    name: str
    args: list[str]
    command: list[str]
    log: Path
    popen: subprocess.Popen[bytes]


class Drill:
    """Every process of the run, started in `run` and stopped however it ends."""

    def __init__(self, folder: Path, options: Options) -> None:
        self.folder, self.o = folder, options
        self.procs: dict[str, Proc] = {}
        self.phases: list[Phase] = []
        self.slow_closed_after: list[float | None] = []
        self.restarts: Counter[str] = Counter()

    # --- processes ----------------------------------------------------------------------------------

    def spawn(self, name: str, args: list[str], *, command: list[str] | None = None) -> Proc:
        log = self.folder / f"{name}.{self.restarts[name]}.log"
        command = command or [str(CREDITCTL)]
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [*command, *args],
                env=self.env,
                cwd=self.folder,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = Proc(name, args, command, log, popen)
        return self.procs[name]

    def kill(self, name: str) -> None:
        """SIGKILL to the process and everything in its session (an instance's gunicorn workers too)."""
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, signal.SIGKILL)
        proc.popen.wait(timeout=10)

    def restart(self, name: str) -> Proc:
        self.restarts[name] += 1
        old = self.procs[name]
        return self.spawn(name, old.args, command=old.command)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGTERM)
                try:
                    proc.popen.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.popen.pid, signal.SIGKILL)
                    proc.popen.wait(timeout=10)

    def wait_ready(self, url: str, name: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        proc = self.procs[name]
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.popen.returncode}:\n{_tail(proc.log)}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(url, timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{name} was not ready within {READY_TIMEOUT_S}s:\n{_tail(proc.log)}")

    def creditctl(self, *args: str) -> str:
        done = subprocess.run(
            [str(CREDITCTL), *args],
            env=self.env,
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"creditctl {' '.join(args)}: {done.stdout}\n{done.stderr}")
        return done.stdout

    # --- the run ------------------------------------------------------------------------------------

    def run(self) -> Report:
        with ExitStack() as stack:
            self.pg = stack.enter_context(private_postgres())
            self.bouncer = stack.enter_context(pgbouncer(self.pg.port, {APP_ROLE: APP_PASSWORD}))
            self.ports = {"a": free_port(), "b": free_port()}
            self.proxy: Nginx = stack.enter_context(nginx(list(self.ports.values())))
            self.receiver = stack.enter_context(running(Receiver("")))
            stack.callback(self.stop_all)  # the processes first, then the proxies and the database
            self._set_up()
            self.direct = make_engine(self.pg.url, pool_size=2, max_overflow=2)
            stack.callback(self.direct.dispose)
            self._start_service()
            load = self._start_load()
            try:
                time.sleep(self.o.warm_s)
                for cycle in range(1, self.o.cycles + 1):
                    self._cycle(cycle)
                time.sleep(self.o.tail_s)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    load.popen.send_signal(signal.SIGTERM)
                load.popen.wait(timeout=60)
            return self._collect()

    def _set_up(self) -> None:
        instance = self.folder / "instance"
        self.env = clean_env(
            CREDITCTL_INSTANCE_PATH=str(instance),
            CREDITCTL_DATABASE_URL=self.bouncer.url(APP_ROLE, APP_PASSWORD),
            CREDITCTL_DATABASE_POOLER="transaction",
            CREDITCTL_MIGRATE_DATABASE_URL=self.pg.url,
            CREDITCTL_BALANCE_PROVIDER="haier",
            CREDITCTL_ALLOW_LOOPBACK_URLS="true",
            CREDITCTL_DECISION_DEADLINE_S="1.0",
            CREDITCTL_WORKERS="1",
            CREDITCTL_THREADS=str(self.o.instance_threads),
            CREDITCTL_TRUSTED_PROXIES="1",
            CREDITCTL_LOG_LEVEL="WARNING",
            CREDITCTL_RATE_LIMIT_PER_KEY="off",  # the load generator's clients share one key
            CREDITCTL_WEBHOOK_TIMEOUT_S=str(WEBHOOK_TIMEOUT_S),
            CREDITCTL_WEBHOOK_LEASE_S=str(WEBHOOK_LEASE_S),
            CREDITCTL_WEBHOOK_BACKOFF_S="0.2",
            CREDITCTL_AUDIT_ANCHOR=f"file:{self.folder / 'anchors.jsonl'}",
            CREDITCTL_AUDIT_ANCHOR_EVERY_S="1",
        )
        emulator_port = free_port()
        self.emulator = f"http://127.0.0.1:{emulator_port}"
        self.spawn(
            "emulator",
            ["--port", str(emulator_port), "--rate-limit", str(EMULATOR_RATE_LIMIT)],
            command=[sys.executable, str(RECORDING_EMULATOR)],
        )
        self.creditctl("db", "upgrade")  # as the owner, straight to PostgreSQL
        self.creditctl("db", "roles")  # the service's role, which PgBouncer's userlist names
        self.wait_ready(f"{self.emulator}/_emulator/stats", "emulator")
        for code in EXTRA:
            requests.post(
                f"{self.emulator}/_emulator/balances",
                timeout=5,
                json={
                    "customerCode": code,
                    "customerPassword": PASSWORDS[code],
                    "saleGroupCode": "1001",
                    "payerAccountBalance": STARTING[(code, "1001")],
                },
            ).raise_for_status()
        config = {
            "base_url": self.emulator,
            "auth": "client_credentials",
            "client_id": "demo-client",
            "client_secret": "demo-secret",
            "auth_scheme": "Bearer",
            "customers": PASSWORDS,
            "timeouts": {"connect_s": 1, "read_s": 2},
            "rate_limit_per_s": INSTANCE_RATE_LIMIT,
            "token_refresh_before_s": TOKEN_LIFETIME_S - TOKEN_USED_FOR_S,
            "is_active": True,
        }
        (self.folder / "haier.json").write_text(json.dumps(config))
        self.creditctl("haier", "configure", "main", "--file", str(self.folder / "haier.json"))
        document = json.loads(self.creditctl("rules", "export"))
        document["params"] |= {"refresh_after_s": 1, "max_balance_age_s": 3}
        (self.folder / "rules.json").write_text(json.dumps(document))
        self.creditctl("rules", "import", str(self.folder / "rules.json"))
        self.key = (
            self.creditctl("keys", "create", "--role", "orders", "--name", "drill").strip().splitlines()[-1]
        )
        # In this process, through PgBouncer like the service: customers, and the receiver's subscription.
        self.context = bootstrap(load_settings(self.env))
        for code in PASSWORDS:  # registered, and their accounts opened from a first balance (a customer
            # first seen while the upstream is down cannot be decided: 503 upstream/unavailable)
            register_customer(code, uow=self.context.uow(), clock=self.context.clock)
            refresh_balances(
                code,
                scope=None,
                uow=self.context.uow(),
                balances=self.context.balances,
                clock=self.context.clock,
            )
        tools = self.context.webhooks
        assert tools is not None
        self.receiver.secret = create_subscription(
            self.receiver.url,
            sorted(EVENT_TYPES),
            store=tools.store,
            box=tools.box,
            check_url=tools.check_url,
        ).secret

    def _start_service(self) -> None:
        for name, port in self.ports.items():
            self.spawn(name, ["serve", "--host", "127.0.0.1", "--port", str(port)])
        for name in ("w1", "w2"):
            self.spawn(name, ["worker", "--idle-s", "0.1", "--seal-every", "0.5"])
        for name, port in self.ports.items():
            self.wait_ready(f"http://127.0.0.1:{port}/readyz", name)
        self.wait_ready(f"{self.proxy.url}/readyz", "a")

    def _start_load(self) -> Proc:
        accounts = [[c, g, *AMOUNTS_FEN.get((c, g), DEFAULT_AMOUNTS_FEN)] for c, g in STARTING]
        (self.folder / "accounts.json").write_text(json.dumps(accounts))
        self.client_log = self.folder / "client.jsonl"
        return self.spawn(
            "load",
            [
                "--url",
                self.proxy.url,
                "--key",
                self.key,
                "--accounts",
                str(self.folder / "accounts.json"),
                "--log",
                str(self.client_log),
                "--threads",
                str(self.o.threads),
                "--seed",
                str(self.o.seed),
            ],
            command=[sys.executable, str(LOAD)],
        )

    def fault(self, mode: str) -> None:
        requests.post(f"{self.emulator}/_emulator/faults", json={"mode": mode}, timeout=5).raise_for_status()

    def phase(self, name: str) -> Phase:
        self.phases.append(Phase(name, time.time()))
        return self.phases[-1]

    def _cycle(self, n: int) -> None:
        """The upstream down past the breaker's cooldown; inside it the other faults, one after another."""
        upstream = self.phase(f"upstream down (cycle {n})")
        self.fault("503")
        time.sleep(2.0)

        kill = self.phase(f"instance a SIGKILL and restart (cycle {n})")
        self.kill("a")
        kill.marks["killed"] = time.time()
        self.restart("a")
        self.wait_ready(f"http://127.0.0.1:{self.ports['a']}/readyz", "a")
        kill.marks["ready"] = time.time()
        time.sleep(2.0)  # nginx's fail_timeout: it sends to the instance again
        kill.end = time.time()

        slow = self.phase(f"slow clients (cycle {n})")
        self.slow_closed_after = self._slow_clients(self.o.slow_clients, self.o.slow_hold_s)
        slow.end = time.time()

        worker = self.phase(f"worker w1 SIGKILL and restart (cycle {n})")
        self.kill("w1")
        time.sleep(1.0)
        self.restart("w1")
        time.sleep(1.0)
        worker.end = time.time()

        pg = self.phase(f"PostgreSQL restart (cycle {n})")
        self.pg.stop()
        pg.marks["down"] = time.time()
        time.sleep(self.o.pg_down_s)
        pg.marks["starting"] = time.time()
        self.pg.start()
        pg.marks["up"] = time.time()
        self._wait_for_2xx_after(pg.marks["up"], 30.0)
        for name in ("w1", "w2"):
            pg.marks[f"{name} working"] = self._worker_working_again(name, pg.marks["up"], 30.0)
        pg.end = time.time()

        left = upstream.start + self.o.upstream_down_s - time.time()
        if left > 0:
            time.sleep(left)
        self.fault("none")
        upstream.marks["healed"] = time.time()
        healed = self.phase(f"upstream healed, breakers closing (cycle {n})")
        self._wait_for_fresh_approval(upstream.marks["healed"], BREAKER_COOLDOWN_S + 15.0)
        upstream.end = healed.end = time.time()

    def _slow_clients(self, n: int, hold_s: float) -> list[float | None]:
        """`n` connections to the proxy, each sending half a request and then nothing; after how long
        the proxy closed each (None: still open after hold_s)."""
        socks, opened = [], time.monotonic()
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", self.proxy.port), timeout=5)
            s.sendall(b"POST /v1/decisions HTTP/1.1\r\nHost: drill\r\nContent-Type: application/json\r\n")
            socks.append(s)
        closed: list[float | None] = [None] * n
        deadline = opened + hold_s
        while time.monotonic() < deadline and any(c is None for c in closed):
            for i, s in enumerate(socks):
                if closed[i] is not None:
                    continue
                s.settimeout(0.01)
                try:
                    while s.recv(4096):
                        pass
                    closed[i] = time.monotonic() - opened
                except TimeoutError:
                    pass
                except OSError:
                    closed[i] = time.monotonic() - opened
            time.sleep(0.1)
        for s in socks:
            s.close()
        return closed

    def _worker_working_again(self, name: str, up: float, timeout_s: float) -> float:
        """When the worker's last loop that logged an outage logged "works again" (Unix time); NaN when
        none did within timeout_s."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            failed, again = _outage_lines(self.procs[name].log, up - self.o.pg_down_s - 1)
            if failed and set(failed) <= set(again):
                return max(again.values())
            time.sleep(0.2)
        return float("nan")

    def answers(self) -> list[dict[str, Any]]:
        if not self.client_log.exists():
            return []
        out = []
        for line in self.client_log.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):  # the last line may be half written
                out.append(json.loads(line))
        return out

    def _wait_for_2xx_after(self, t: float, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(a["sent"] > t and 200 <= a["status"] < 300 for a in self.answers()):
                return
            time.sleep(0.1)
        raise AssertionError(f"no decision answered 2xx within {timeout_s}s")

    def _wait_for_fresh_approval(self, t: float, timeout_s: float) -> None:
        """An approval sent after `t` + max_balance_age_s: only a balance fetched after the upstream
        healed can approve it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(a["sent"] > t + 3 and a.get("outcome") == "approve" for a in self.answers()):
                return
            time.sleep(0.2)
        raise AssertionError(f"no approval on a fresh balance within {timeout_s}s of the upstream healing")

    # --- afterwards ---------------------------------------------------------------------------------

    def _final_outcomes(self, answers: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Per order answered 2xx, what its order system knows in the end: the outcome it was told, or for
        a deferral, the decision read back through the proxy (creditctl re-checks a deferred order by
        itself when a newer balance comes: it may be approved or blocked since)."""
        final: dict[str, dict[str, Any]] = {}
        for a in answers:
            if 200 <= a["status"] < 300 and a["order_id"] not in final:
                final[a["order_id"]] = dict(a)
        deferred = [a for a in final.values() if a["outcome"] == "defer"]
        headers = {"Authorization": f"Bearer {self.key}"}

        def read(a: dict[str, Any]) -> None:
            r = requests.get(f"{self.proxy.url}/v1/decisions/{a['order_id']}", headers=headers, timeout=20,
                             params={"customer_code": a["customer_code"]})  # fmt: skip
            r.raise_for_status()
            a["outcome"] = r.json()["outcome"]

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(read, deferred))
        return final

    def _collect(self) -> Report:
        report = Report(
            options=self.o,
            phases=self.phases,
            answers=self.answers(),
            restarts=dict(self.restarts),
            slow_closed_after=self.slow_closed_after,
            loadavg=os.getloadavg(),
        )
        tools = self.context.webhooks
        assert tools is not None
        drained = _wait(lambda: _deliveries_done(tools.store.counts()) and _unsealed(self.direct) == 0, 60)
        report.deliveries = tools.store.counts()
        report.drained = drained
        sealed = self.creditctl("audit", "seal")
        report.audit_verify = subprocess.run(
            [str(CREDITCTL), "audit", "verify"],
            env=self.env,
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        report.notes["sealed"] = sealed.strip()
        report.invariants = check_invariants(self.direct)
        report.final = self._final_outcomes(report.answers)
        report.outside = _outside_problems(self.direct, report.final)
        report.unrecorded = _unrecorded(self.direct, report.final)
        with self.direct.connect() as conn:
            report.event_ids = set(conn.execute(select(outbox.c.id)).scalars())
        report.received = set(self.receiver.processed)
        report.duplicates = dict(self.receiver.duplicates)
        report.stats = requests.get(f"{self.emulator}/_emulator/stats", timeout=5).json()
        report.balance_calls = requests.get(f"{self.emulator}/_e2e/balance_calls", timeout=30).json()
        report.token_calls = requests.get(f"{self.emulator}/_e2e/token_calls", timeout=30).json()
        report.pgbouncer_warnings = _pgbouncer_warnings(self.bouncer.log)
        for log in (
            self.bouncer.log,
            self.proxy.error_log,
            self.pg.folder / "server.log",
        ):  # kept with the rest
            with contextlib.suppress(OSError):
                shutil.copy(log, self.folder / f"{log.parent.name.split('-')[1]}-{log.name}")
        report.alive = {name: p.popen.poll() is None for name, p in self.procs.items() if name != "load"}
        return report


def _pgbouncer_warnings(log: Path) -> Counter[str]:
    """PgBouncer's WARNING and ERROR lines, by what they say (addresses and numbers left out)."""
    out: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        m = re.search(r" (WARNING|ERROR) (?:[CS]-0x[0-9a-f]+: \S+ )?(.*)$", line)
        if m:
            out[f"{m.group(1)} {re.sub(r'[0-9]+', 'N', m.group(2))[:90]}"] += 1
    return out


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait(condition: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if condition():
                return True
        time.sleep(0.2)
    return False


def _deliveries_done(counts: dict[str, int]) -> bool:
    return not counts.get("pending") and not counts.get("undispatched")


def _unsealed(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM audit_events e "
                    "WHERE NOT EXISTS (SELECT 1 FROM audit_seals s WHERE s.seq = e.seq)"
                )
            ).scalar_one()
        )


def _outage_lines(log: Path, since: float) -> tuple[dict[str, float], dict[str, float]]:
    """The worker's loops that logged "... failed (" since `since` (Unix time), and those that logged
    "... works again" after that, each with the time of its line (adapters/cli/loop_backoff.py)."""
    failed: dict[str, float] = {}
    again: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
            at = datetime.fromisoformat(record["time"].replace("Z", "+00:00")).timestamp()
            message = str(record["message"])
        except (ValueError, KeyError, TypeError):
            continue
        if at < since:
            continue
        if " failed (" in message:
            failed[message.split(" failed (")[0]] = at
        elif " works again" in message:
            loop = message.split(" works again")[0]
            if loop in failed:
                again[loop] = at
    return failed, again


def _outside_problems(engine: Engine, final: dict[str, dict[str, Any]]) -> list[str]:
    """The outside checker (tests/outside_checker.py) over what the clients were told: the emulator's
    balances are the ledger (nothing settles or pays during the drill), the rule set's limit the limit."""
    ledger = LedgerUpstream()
    with engine.connect() as conn:
        params = _active_params(conn)
        limits = {}
        for a in conn.execute(
            select(
                credit_accounts.c.customer_code, credit_accounts.c.sale_group_code, credit_accounts.c.params
            )
        ):
            limits[(a.customer_code, a.sale_group_code)] = Decimal(_credit_limit_fen(a.params, params)) / 100
    for (code, group), start in STARTING.items():
        ledger.open_account(code, group, start)
    books = OutsideBooks(ledger, limits)
    for a in sorted(final.values(), key=lambda a: a["answered"]):  # no payment or release: order is moot
        if a["outcome"] == Outcome.APPROVE.value:
            books.saw(_Told(a))  # type: ignore[arg-type]
    return books.problems()


@dataclass(frozen=True)
class _Order:
    order_id: str
    customer_code: str
    sale_group_code: str
    amount: Decimal


class _Told:
    """A decision as the client log has it, in the shape OutsideBooks.saw reads (outcome, order)."""

    def __init__(self, a: dict[str, Any]) -> None:
        self.outcome = Outcome(a["outcome"])
        self.order = _Order(a["order_id"], a["customer_code"], a["sale_group_code"], Decimal(a["amount"]))


def _unrecorded(engine: Engine, final: dict[str, dict[str, Any]]) -> list[str]:
    """Every decision a client saw answered 2xx, held against the database: a decision with the outcome
    its order system knows, and a sealed `decision.made` event in the audit chain."""
    with engine.connect() as conn:
        stored = dict(conn.execute(select(decisions.c.order_id, decisions.c.outcome)).all())
        audited = set(
            conn.execute(
                text(
                    "SELECT e.order_id FROM audit_events e JOIN audit_seals s ON s.seq = e.seq "
                    "WHERE e.type = 'decision.made'"
                )
            ).scalars()
        )
    out = []
    for order_id, a in sorted(final.items()):
        if stored.get(order_id) != a["outcome"]:
            known, has = a["outcome"], stored.get(order_id)
            out.append(f"order {order_id}: its order system knows {known}, the database has {has}")
        if order_id not in audited:
            out.append(f"order {order_id}: answered 2xx, no sealed decision.made event in the audit chain")
    return out


@dataclass
class Report:
    options: Options
    phases: list[Phase]
    answers: list[dict[str, Any]]
    restarts: dict[str, int]
    slow_closed_after: list[float | None]
    loadavg: tuple[float, float, float]
    deliveries: dict[str, int] = field(default_factory=dict)
    drained: bool = False
    audit_verify: subprocess.CompletedProcess[str] | None = None
    invariants: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    unrecorded: list[str] = field(default_factory=list)
    event_ids: set[str] = field(default_factory=set)
    received: set[str] = field(default_factory=set)
    duplicates: dict[str, int] = field(default_factory=dict)
    first_seen: dict[str, float] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    balance_calls: list[dict[str, Any]] = field(default_factory=list)
    alive: dict[str, bool] = field(default_factory=dict)
    final: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_calls: list[dict[str, Any]] = field(default_factory=list)
    pgbouncer_warnings: Counter[str] = field(default_factory=Counter)
    notes: dict[str, Any] = field(default_factory=dict)

    # --- figures --------------------------------------------------------------------------------------

    def kinds(self, start: float, end: float) -> Counter[str]:
        """Answers sent in [start, end), by kind: the status, and a decision's outcome or a refusal's
        problem type (its last path segments), or the client's error."""
        out: Counter[str] = Counter()
        for a in self.answers:
            if start <= a["sent"] < end:
                out[_kind(a)] += 1
        return out

    def pg_phases(self) -> list[Phase]:
        return [p for p in self.phases if p.name.startswith("PostgreSQL")]

    def worker_recovery_s(self) -> dict[str, float]:
        """Per worker, the longest over the cycles from PostgreSQL's return to its last loop working again."""
        out: dict[str, float] = {}
        for p in self.pg_phases():
            for name in ("w1", "w2"):
                s = p.marks[f"{name} working"] - p.marks["up"]
                out[name] = s if name not in out or s != s else max(out[name], s)  # NaN (never) wins
        return out

    def api_recovery_s(self, p: Phase) -> float | None:
        """From PostgreSQL accepting connections to the first decision answered 2xx that was sent after."""
        after = [a for a in self.answers if a["sent"] > p.marks["up"] and 200 <= a["status"] < 300]
        return min(a["answered"] for a in after) - p.marks["up"] if after else None

    def upstream_recovery_s(self, p: Phase) -> tuple[float | None, float | None]:
        """From the upstream healing to its first normal balance answer, and to the first approval on a
        balance fetched after it (sent more than max_balance_age_s after)."""
        healed = p.marks["healed"]
        normal = [c["at"] for c in self.balance_calls if c["at"] >= healed and c["normal"]]
        approved = [
            a["answered"] for a in self.answers if a["sent"] > healed + 3 and a.get("outcome") == "approve"
        ]
        return (min(normal) - healed if normal else None, min(approved) - healed if approved else None)

    def max_upstream_calls_per_s(self) -> int:
        times = sorted(c["at"] for c in self.balance_calls)
        best, j = 0, 0
        for i, t in enumerate(times):
            while times[j] <= t - 1.0:
                j += 1
            best = max(best, i - j + 1)
        return best

    def figures(self) -> str:
        ok = [a for a in self.answers if 200 <= a["status"] < 300]
        orders = {a["order_id"] for a in self.answers}
        first, last = (
            (min(a["sent"] for a in self.answers), max(a["answered"] for a in self.answers))
            if self.answers
            else (0, 0)
        )
        lines = [
            f"drill: {self.options.cycles} cycle(s), {self.options.threads} client threads, "
            f"seed {self.options.seed}, "
            f"load average {self.loadavg[0]:.2f} {self.loadavg[1]:.2f} {self.loadavg[2]:.2f} at the end",
            f"requests: {len(self.answers)} sent for {len(orders)} orders over {last - first:.0f} s "
            f"({len(ok)} answered 2xx, {len(self.answers) / max(1e-9, last - first):.1f} requests/s); "
            f"all: {dict(self.kinds(0, float('inf')).most_common())}",
        ]
        for p in self.phases:
            end = p.end or p.start
            lines.append(
                f"  {p.name} ({end - p.start:.1f} s): {dict(self.kinds(p.start, end).most_common())}"
            )
            if "killed" in p.marks:
                lines.append(
                    f"    instance back (ready) {p.marks['ready'] - p.marks['killed']:.1f} s after SIGKILL"
                )
            if "up" in p.marks:
                away = self.kinds(p.marks["down"], p.marks["starting"])
                lines.append(
                    f"    while PostgreSQL was away ({p.marks['starting'] - p.marks['down']:.1f} s): "
                    f"{dict(away)}"
                )
                rec = self.api_recovery_s(p)
                lines.append(
                    f"    API 2xx again {rec:.2f} s after PostgreSQL accepted connections"
                    if rec is not None
                    else "    API never answered 2xx again"
                )
            if "healed" in p.marks:
                normal, approved = self.upstream_recovery_s(p)
                lines.append(
                    f"    upstream healed: first normal balance answer after {normal or float('nan'):.1f} s, "
                    f"first approval on a fresh balance after {approved or float('nan'):.1f} s "
                    f"(breaker cooldown {BREAKER_COOLDOWN_S:.0f} s)"
                )
        for name, s in self.worker_recovery_s().items():
            lines.append(
                f"  worker {name}: every loop that failed working again {s:.2f} s after PostgreSQL was back"
            )
        closed = [c for c in self.slow_closed_after if c is not None]
        lines.append(
            f"  slow clients: {len(self.slow_closed_after)} opened, {len(closed)} closed by nginx, after "
            f"{min(closed, default=float('nan')):.1f}-{max(closed, default=float('nan')):.1f} s"
        )
        lines.append(
            f"  webhooks: {len(self.event_ids)} events, {len(self.received)} received, "
            f"{sum(self.duplicates.values())} sent again (deduplicated by id); deliveries {self.deliveries}"
        )
        fetched = sorted(c["at"] for c in self.token_calls if c["status"] == 200)
        gaps = [b - a for a, b in pairwise(fetched)]
        lines.append(
            f"  token: {len(fetched)} fetches for both instances, {min(gaps, default=float('nan')):.1f}-"
            f"{max(gaps, default=float('nan')):.1f} s apart (a token is used {TOKEN_USED_FOR_S} s)"
        )
        lines.append(f"  pgbouncer warnings: {dict(self.pgbouncer_warnings.most_common())}")
        lines.append(
            f"  upstream: {len(self.balance_calls)} balance "
            f"calls, at most {self.max_upstream_calls_per_s()} in any second (limit {EMULATOR_RATE_LIMIT})"
        )
        told = Counter(a["outcome"] for a in self.answers if 200 <= a["status"] < 300 and a["attempt"] >= 1)
        known = Counter(a["outcome"] for a in self.final.values())
        lines.append(
            f"  outcomes answered: {dict(told)}; known at the end (deferrals re-checked): {dict(known)}"
        )
        lines.append(f"  restarts: {self.restarts}; audit: {self.notes.get('sealed')}")
        return "\n".join(lines)

    # --- what must hold -------------------------------------------------------------------------------

    def problems(self, *, api_recovery_bound_s: float, worker_recovery_bound_s: float) -> list[str]:
        """Everything that must hold and did not, as readable lines (empty: the drill passed)."""
        out = [f"invariant: {v}" for v in self.invariants]
        out += [f"outside checker: {v}" for v in self.outside]
        out += self.unrecorded
        out += self._answer_problems()
        out += self._database_outage_problems(api_recovery_bound_s, worker_recovery_bound_s)
        out += self._process_problems()
        out += self._upstream_problems()
        out += self._slow_client_problems()
        return out

    def _answer_problems(self) -> list[str]:
        """Only decisions and 503 problem+json with Retry-After; every order answered 2xx in the end."""
        out = []
        statuses = Counter(a["status"] for a in self.answers)
        if set(statuses) - {200, 201, 503}:
            out.append(f"answers other than 200, 201, 503: {dict(statuses)}")
        bad = [a for a in self.answers if a["status"] == 503 and not _problem_with_retry(a)]
        if bad:
            out.append(f"{len(bad)} 503 without problem+json and Retry-After, e.g. {bad[0]}")
        last_sent: dict[str, float] = {}
        for a in self.answers:
            last_sent[a["order_id"]] = max(last_sent.get(a["order_id"], 0.0), a["sent"])
        answered = {a["order_id"] for a in self.answers if 200 <= a["status"] < 300}
        end = max(last_sent.values(), default=0.0)
        # An order still being sent again when the load stopped is not one that was given up on.
        gave_up = sorted(o for o, t in last_sent.items() if o not in answered and t < end - 5)
        if gave_up:
            out.append(f"{len(gave_up)} order(s) never answered 2xx however often sent: {gave_up[:5]}")
        # In flight when an instance was killed (answered after the kill, sent before the end of its
        # window), a request may be answered "no instance answered"; never otherwise.
        kills = [(p.start, p.end) for p in self.phases if "killed" in p.marks]
        stray = [
            a
            for a in self.answers
            if a.get("type") == UNAVAILABLE_INSTANCE
            and not any(a["answered"] >= start and a["sent"] < end for start, end in kills)
        ]
        if stray:
            out.append(
                f"{len(stray)} answered 'no instance answered' with both instances up, e.g. {stray[0]}"
            )
        return out

    def _database_outage_problems(self, api_bound_s: float, worker_bound_s: float) -> list[str]:
        out = []
        for p in self.pg_phases():
            down, starting = p.marks["down"], p.marks["starting"]
            away = [a for a in self.answers if down < a["sent"] and a["answered"] < starting]
            if not away:
                out.append(f"{p.name}: no request was answered while PostgreSQL was away")
            wrong = [a for a in away if not (a["status"] == 503 and a.get("type") == UNAVAILABLE_DB)]
            if wrong:
                out.append(f"{p.name}: answered otherwise than 503 {UNAVAILABLE_DB}: {wrong[:3]}")
            rec = self.api_recovery_s(p)
            if rec is None or rec > api_bound_s:
                out.append(f"{p.name}: API 2xx again after {rec} s (bound {api_bound_s} s)")
        for name, s in self.worker_recovery_s().items():
            if not s <= worker_bound_s:  # NaN: never
                out.append(f"worker {name}: working again after {s} s (bound {worker_bound_s} s)")
        return out

    def _process_problems(self) -> list[str]:
        out = []
        if not all(self.alive.values()):
            out.append(f"a process died by itself: {self.alive}")
        if not self.drained:
            out.append(f"webhooks or sealing did not finish within 60 s: {self.deliveries}")
        verify = self.audit_verify
        if verify is None or verify.returncode != 0 or "0 not sealed yet" not in verify.stdout:
            out.append(f"audit verify: {verify}")
        if self.received != self.event_ids:
            out.append(
                f"webhooks: {len(self.event_ids - self.received)} events never received, "
                f"{len(self.received - self.event_ids)} received that are not in the outbox"
            )
        return out

    def _upstream_problems(self) -> list[str]:
        out = []
        fetched = sorted(c["at"] for c in self.token_calls if c["status"] == 200)
        gaps = [b - a for a, b in pairwise(fetched)]
        too_soon = [round(g, 1) for g in gaps if g < TOKEN_USED_FOR_S - 1]
        if too_soon or len(fetched) != len(self.token_calls) or len(fetched) < 2:
            out.append(
                f"token fetches: {len(fetched)} ({len(self.token_calls)} asked), {too_soon} s after the one "
                f"before (one per {TOKEN_USED_FOR_S} s across both instances, at least 2 in a run)"
            )
        if self.max_upstream_calls_per_s() > EMULATOR_RATE_LIMIT:
            out.append(f"the upstream saw {self.max_upstream_calls_per_s()} calls in one second")
        throttled = [c for c in self.balance_calls if c["status"] == 429 and c["fault"] is None]
        if throttled:
            out.append(f"the upstream throttled {len(throttled)} calls (its rate limit was exceeded)")
        for p in self.phases:
            if "healed" in p.marks and None in self.upstream_recovery_s(p):
                out.append(f"{p.name}: no approval on a fresh balance after the upstream healed")
        return out

    def _slow_client_problems(self) -> list[str]:
        out = []
        if any(c is None or c > SLOW_CLOSED_WITHIN_S for c in self.slow_closed_after):
            out.append(
                f"slow clients not closed by nginx within {SLOW_CLOSED_WITHIN_S} s: {self.slow_closed_after}"
            )
        for p in self.phases:
            if p.name.startswith("slow clients"):
                kinds = self.kinds(p.start, p.end)
                if not any(k.startswith("2") for k in kinds):
                    out.append(f"{p.name}: nothing answered 2xx while they held connections: {dict(kinds)}")
        return out


def _problem_with_retry(a: dict[str, Any]) -> bool:
    return (
        a.get("content_type", "").startswith("application/problem+json")
        and (a.get("retry_after") or "").isdigit()
    )


def _kind(a: dict[str, Any]) -> str:
    if a["status"] == 0:
        return f"no answer ({a.get('error')})"
    if 200 <= a["status"] < 300:
        upstream = sorted(
            {r for r in a.get("reasons") or [] if r and r.isupper() and "_" in r} & UPSTREAM_CODES
        )
        return f"{a['status']} {a.get('outcome')}" + (f" {'/'.join(upstream)}" if upstream else "")
    problem = a.get("type") or ""
    return f"{a['status']} {'/'.join(problem.split('/')[-2:]) if problem else a.get('content_type')}"


UPSTREAM_CODES = {
    "CIRCUIT_OPEN",
    "SERVICE_UNAVAILABLE",
    "UPSTREAM_TIMEOUT",
    "BALANCE_UNAVAILABLE",
    "RATE_LIMITED",
}


@contextmanager
def drill_folder() -> Iterator[Path]:
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="creditctl-drill-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import random

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=3, help="fault cycles (each about 70 s); default 3")
    ap.add_argument("--threads", type=int, default=8, help="load generator threads; default 8")
    ap.add_argument(
        "--seed", type=int, default=int(os.environ.get("CREDITCTL_TEST_SEED") or random.randrange(10**6))
    )
    ap.add_argument(
        "--pg-down-s", type=float, default=10.0, help="seconds PostgreSQL stays stopped; default 10"
    )
    ap.add_argument("--keep", action="store_true", help="keep the run's folder (logs) and print its path")
    args = ap.parse_args(argv)
    options = Options(cycles=args.cycles, threads=args.threads, seed=args.seed, pg_down_s=args.pg_down_s)
    with ExitStack() as stack:
        if args.keep:
            import tempfile

            folder = Path(tempfile.mkdtemp(prefix="creditctl-drill-"))
            print(f"drill folder (kept): {folder}")
        else:
            folder = stack.enter_context(drill_folder())
        report = Drill(folder, options).run()
    print(report.figures())
    problems = report.problems(
        api_recovery_bound_s=API_RECOVERY_BOUND_S, worker_recovery_bound_s=WORKER_RECOVERY_BOUND_S
    )
    for p in problems:
        print(f"PROBLEM: {p}")
    print(f"seed {options.seed}: {'FAILED' if problems else 'passed'}")
    return 1 if problems else 0


# Bounds stated from the figures (docs/running-in-production.md): PgBouncer retries its login every second
# (server_login_retry = 1), an idle pooled connection is pinged before use, a worker loop waits at most 5 s
# between tries (adapters/cli/loop_backoff.py).
API_RECOVERY_BOUND_S = 5.0
WORKER_RECOVERY_BOUND_S = 8.0


if __name__ == "__main__":
    sys.exit(main())
