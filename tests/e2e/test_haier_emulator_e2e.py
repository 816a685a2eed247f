"""End to end against the Haier emulator: the real service (`creditctl serve`, gunicorn, 2 workers,
CREDITCTL_BALANCE_PROVIDER=haier) talks over real sockets to the emulator in its own process (the app of
`creditctl haier emulate`, served the same way, recording each balance call: recording_emulator.py), while 8
client threads send decisions, the emulator's faults are switched on mid-run one after the other, and one
payer balance is lowered at the emulator mid-run.

What must hold (reliability-tests.md item 7):
  * the service keeps answering: every request gets an HTTP answer, a decision (201), a replay (200), a
    clean conflict for a reused order id (409) or the documented 503 problem, never another 5xx, each within
    the decision deadline plus queueing behind the other clients;
  * nothing is approved on an unknown balance: an approval carries a Haier balance fetched at most
    max_balance_age_s (whole seconds) before it was decided;
  * no double spend: the shared invariant checker passes on the database afterwards, each account's exposure
    is exactly the sum of the distinct orders approved on it, and after the lowered balance is adopted,
    approvals on that account stay within it;
  * faults are told: deferrals carry the upstream's error code next to BALANCE_UNAVAILABLE;
  * no stampede: one balance fetch per customer per database when its balance goes stale, however many
    decisions wait for it. Counted per customer at the emulator, not against the number of decisions (which
    falls when the machine is loaded while the fetches do not): after a balance is answered, no call for
    that customer comes within the refresh window of that fetch's first request (refresh_after_s, and the
    shared report's reuse,
    SharedBalanceProvider.reuse_s); and no window holds more calls than one fetch with all its retries can
    make.

How the run reaches the upstream. The rule set published here says refresh_after_s=1 and
max_balance_age_s=3, and the service reuses a customer's stored balance report for 1 s
(SharedBalanceProvider.reuse_s): each customer is fetched at most about every second while the emulator is
healthy (every 2 s while it fails), when orders on it arrive. To meet every fault, the customers are first
fetched one second apart, and each fault is switched on for a number of balance calls (`count`) and left on
until the service has made them; a fault whose deferral must be told (a timeout, two 401s, a wrong password)
is met by one probe decision while the load is held until every stored balance is too old to approve on.
Those transient faults are retried or healed, so the breaker stays closed;
the run ends with a sustained 503 until the breaker opens (CIRCUIT_OPEN deferrals), then a healthy emulator.
The breaker's 30 s cooldown is not awaited (unit tests cover its recovery)."""

from __future__ import annotations

import inspect
import itertools
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, select, text

from adapters.bootstrap import bootstrap, load_settings
from adapters.haier.retry import RetryPolicy
from adapters.sql.engine import make_engine
from adapters.sql.tables import credit_accounts, decisions
from creditctl.services.customers import register_customer
from creditctl.services.shared_balances import SharedBalanceProvider
from tests.conftest import PG_URL, _postgres_or_skip
from tests.e2e.served import free_port, run_ok, stop
from tests.invariants import assert_invariants

pytestmark = pytest.mark.e2e

CREDITCTL = Path(sys.executable).with_name("creditctl")
RECORDING_EMULATOR = Path(__file__).with_name("recording_emulator.py")
READY_TIMEOUT_S = 60.0
SEED = int(os.environ.get("CREDITCTL_TEST_SEED") or random.randrange(1_000_000))

DEADLINE_S = 1.0  # CREDITCTL_DECISION_DEADLINE_S
REFRESH_AFTER_S = 1
MAX_BALANCE_AGE_S = 3
WORKERS = 2
THREADS = 8
# A decision waits at most the deadline for a balance, then does its own database work; a client may
# queue behind the other threads (a sync worker serves one request at a time). So each answer within:
ANSWER_BOUND_S = (THREADS / WORKERS) * (DEADLINE_S + 1.0) + 2.0
REQUEST_TIMEOUT_S = 30.0
FAULT_WAIT_S = 15.0  # longest wait for the service to meet a fault (a customer is due every ~1 s)
DWELL_S = 1.0  # the fault's aftermath (retries, deferrals) after the service met it
# No stampede. A customer's balance is fetched again only when the stored one is older than the refresh
# window: refresh_after_s for a decision, the shared report's reuse for every caller (whichever is longer).
REUSE_S = float(inspect.signature(SharedBalanceProvider).parameters["reuse_s"].default)
REFRESH_WINDOW_S = max(REFRESH_AFTER_S, REUSE_S)
# One fetch makes at most 1 + max_retries attempts, each of which may send twice (a 401, a new token,
# once more); the next fetch of the customer starts a window or more after it ended.
CALLS_PER_FETCH = (1 + RetryPolicy().max_retries) * 2

UPSTREAM_CODES = frozenset(
    {
        "AUTH_FAILED",
        "TOKEN_EXPIRED",
        "INVALID_CREDENTIALS",
        "BALANCE_QUERY_FAILED",
        "UPSTREAM_TIMEOUT",
        "UPSTREAM_MALFORMED",
        "RATE_LIMITED",
        "SERVICE_UNAVAILABLE",
        "CIRCUIT_OPEN",
    }
)
# Codes the run must show in deferrals: the sustained 503 must open the breaker and say so; each short
# fault with a code is met by a probe that has no usable snapshot (TRANSIENT_FAULTS). Met by the load, a
# short fault ends in a deferral or not by timing: a decision that meets it while its account still holds
# a snapshot younger than max_balance_age_s approves on that snapshot, rightly.
MUST_TELL = frozenset({"CIRCUIT_OPEN"})

Account = tuple[str, str]
LOWERED: Account = ("8800633176", "1001")  # 400,000.00, lowered mid-run to its exposure + LOWERED_HEADROOM
BIG: Account = ("8800633175", "1001")  # 1,250,000.00 (emulator demo data)
SMALL: Account = ("8800633175", "1002")  # 38,000.50: concurrent approvals must stop at it
SMALL_BALANCE = Decimal("38000.50")
EXTRA = [f"88007000{i:02d}" for i in range(1, 8)]  # customers added to the emulator, 200,000.00 each
CUSTOMERS = {"8800633176": "demo-176", "8800633175": "demo-175"} | {c: f"pw-{c[-2:]}" for c in EXTRA}
ACCOUNTS: dict[str, list[Account]] = {"8800633176": [LOWERED], "8800633175": [BIG, SMALL]} | {
    c: [(c, "1001")] for c in EXTRA
}
AMOUNTS_FEN: dict[Account, tuple[int, int]] = {BIG: (10_000, 500_000), SMALL: (100_000, 400_000)} | {
    LOWERED: (50_000, 250_000)
}
DEFAULT_AMOUNT_FEN = (10_000, 300_000)
LOWERED_HEADROOM = Decimal("6000.00")
EMULATOR_SETUP = [  # POST /_emulator/balances before the service starts
    {"customerCode": "8800633176", "saleGroupCode": "1001", "payerAccountBalance": "400000.00"}
] + [
    {
        "customerCode": c,
        "customerPassword": CUSTOMERS[c],
        "saleGroupCode": "1001",
        "saleGroupName": "e2e sales group",
        "payerAccountName": f"e2e payer {c}",
        "payerAccountBalance": "200000.00",
    }
    for c in EXTRA
]
# Transient faults, in turn: (phase, fault, balance calls the service must make before it is over).
# revoke_tokens makes the emulator forget its tokens: the next call gets 401 and must re-authenticate.
# (name, fault, balance calls it takes, the code a decision with no usable snapshot must be told or None).
# A fault with a code is met by one probe decision while the load is held and every snapshot is too old,
# so that decision alone meets the whole fault (two 401s are its call and its retry, not two customers').
TRANSIENT_FAULTS: list[tuple[str, dict[str, Any], int, str | None]] = [
    ("503", {"mode": "503", "count": 2}, 2, None),  # retried through
    # past the 3 s read timeout below
    ("timeout", {"mode": "timeout", "delay_s": 5, "count": 1}, 1, "UPSTREAM_TIMEOUT"),
    ("slow", {"mode": "slow", "delay_s": 1.8, "count": 1}, 1, None),  # past the deadline, within read timeout
    ("malformed", {"mode": "malformed", "count": 1}, 1, None),
    ("reset", {"mode": "reset", "count": 1}, 1, None),
    ("429", {"mode": "429", "count": 1}, 1, None),
    ("revoke_tokens", {"mode": "revoke_tokens"}, 1, None),
    ("401", {"mode": "401", "count": 2}, 2, "AUTH_FAILED"),  # the retry with a new token is refused too
    # success: false, a business refusal
    ("wrong_password", {"mode": "wrong_password", "count": 1}, 1, "BALANCE_QUERY_FAILED"),
]
PROBE: Account = ("8800633175", "1001")  # BIG: the probe decisions of the faults with a code


# --- processes -----------------------------------------------------------------------------------


def _creditctl_all(
    commands: list[list[str]], *, env: dict[str, str], cwd: Path, meanwhile: Callable[[], None]
) -> list[str]:
    """Independent setup commands side by side (each spends a second starting Python), and
    `meanwhile` in this process."""
    procs = [
        subprocess.Popen(
            [str(CREDITCTL), *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    meanwhile()
    outs = []
    for args, proc in zip(commands, procs, strict=True):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"creditctl {' '.join(args)}: {out}\n{err}"
        outs.append(out)
    return outs


def _spawn(
    args: list[str], *, env: dict[str, str], cwd: Path, log: Path, command: list[str] | None = None
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [*(command or [str(CREDITCTL)]), *args],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{process.args} exited with {process.returncode}:\n{_tail(log)}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or a worker still booting
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} was not ready within {READY_TIMEOUT_S}s:\n{_tail(log)}")


@dataclass
class Stack:
    db: str
    url: str
    emulator: str
    orders_key: str
    database_url: str
    tmp: Path
    rule_set_version: int

    @property
    def server_log(self) -> Path:
        return self.tmp / "server.log"

    def emulate(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = requests.post(f"{self.emulator}{path}", json=body, timeout=5)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def stats(self) -> dict[str, Any]:
        return dict(requests.get(f"{self.emulator}/_emulator/stats", timeout=5).json())

    def balance_calls(self) -> list[dict[str, Any]]:
        """Every balance call the emulator answered: at (arrival, Unix time), customer, status, fault,
        normal (a balance the service received)."""
        return list(requests.get(f"{self.emulator}/_e2e/balance_calls", timeout=5).json())

    def get(self, path: str) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.orders_key}"}
        return requests.get(f"{self.url}{path}", headers=headers, timeout=15)


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one served instance; dropped (connections and all) after."""
    base = _postgres_or_skip()
    name = f"creditctl_e2e_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """Emulator and service processes on a fresh instance; both always stopped at the end."""
    if request.param == "postgres":
        database_url = request.getfixturevalue("postgres_database")
    else:
        database_url = f"sqlite:///{tmp_path / 'creditctl.db'}"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        yield _start_stack(request.param, database_url, tmp_path, processes)
    finally:
        for process in reversed(processes):
            stop(process)


def _start_stack(db: str, database_url: str, tmp: Path, processes: list[subprocess.Popen[bytes]]) -> Stack:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREDITCTL_", "PROMETHEUS_"))}
    env |= {
        "CREDITCTL_INSTANCE_PATH": str(tmp / "instance"),
        "CREDITCTL_DATABASE_URL": database_url,
        "CREDITCTL_BALANCE_PROVIDER": "haier",
        "CREDITCTL_ALLOW_LOOPBACK_URLS": "true",
        "CREDITCTL_DECISION_DEADLINE_S": str(DEADLINE_S),
        "CREDITCTL_WORKERS": str(WORKERS),
        "CREDITCTL_LOG_LEVEL": "WARNING",
        "CREDITCTL_RATE_LIMIT_PER_KEY": "off",  # the clients share one key: over 100/s on a quiet machine
    }
    emulator_port, port = free_port(), free_port()
    emulator = f"http://127.0.0.1:{emulator_port}"
    emulator_log = tmp / "emulator.log"
    emulate = [sys.executable, str(RECORDING_EMULATOR)]
    processes.append(
        _spawn(["--port", str(emulator_port)], env=env, cwd=tmp, log=emulator_log, command=emulate)
    )
    _wait_for(f"{emulator}/_emulator/stats", processes[-1], emulator_log)
    for body in EMULATOR_SETUP:
        r = requests.post(f"{emulator}/_emulator/balances", json=body, timeout=5)
        assert r.status_code == 200, r.text

    config = {
        "base_url": emulator,
        "auth": "client_credentials",
        "client_id": "demo-client",
        "client_secret": "demo-secret",
        "auth_scheme": "Bearer",
        "customers": CUSTOMERS,
        "timeouts": {"connect_s": 1, "read_s": 3},
        "is_active": True,
    }
    (tmp / "haier.json").write_text(json.dumps(config))
    run_ok("db", "upgrade", env=env, cwd=tmp)
    # Alone first: it makes the instance's secret key file that the other commands then read.
    run_ok("haier", "configure", "main", "--file", str(tmp / "haier.json"), env=env, cwd=tmp)
    serve = ["serve", "--port", str(port), "--workers", str(WORKERS)]
    processes.append(_spawn(serve, env=env, cwd=tmp, log=tmp / "server.log"))  # boots meanwhile
    key_out, exported = _creditctl_all(
        [["keys", "create", "--role", "orders", "--name", "e2e-orders"], ["rules", "export"]],
        env=env,
        cwd=tmp,
        meanwhile=lambda: _register_customers(env),
    )
    document = json.loads(exported)
    document["params"] |= {"refresh_after_s": REFRESH_AFTER_S, "max_balance_age_s": MAX_BALANCE_AGE_S}
    (tmp / "rules.json").write_text(json.dumps(document))
    published = run_ok("rules", "import", str(tmp / "rules.json"), env=env, cwd=tmp)
    match = re.search(r"published version (\d+)", published)
    assert match, published
    url = f"http://127.0.0.1:{port}"
    _wait_for(f"{url}/readyz", processes[-1], tmp / "server.log")
    time.sleep(1.1)  # a worker that read the active rule set before the import forgets it within 1 s
    key = key_out.strip().splitlines()[-1]
    return Stack(db, url, emulator, key, database_url, tmp, rule_set_version=int(match.group(1)))


def _register_customers(env: dict[str, str]) -> None:
    """What `creditctl customer CODE` does, for every customer in one go (in this process: nine
    interpreter start-ups take longer than the whole run on a busy machine)."""
    engine = make_engine(env["CREDITCTL_DATABASE_URL"])
    try:
        context = bootstrap(load_settings(env), engine=engine)
        for code in CUSTOMERS:
            assert register_customer(code, uow=context.uow(), clock=context.clock)
    finally:
        engine.dispose()


# --- the load ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    order_id: str
    account: Account
    amount: Decimal
    kind: str  # new | replay | conflict
    phase: str
    elapsed_s: float
    status: int | None  # None: no HTTP answer at all
    body: Any
    content_type: str
    error: str = ""


@dataclass
class Load:
    """THREADS clients sending decisions on the ready accounts until stopped."""

    stack: Stack
    phase: str = "healthy"
    answers: list[Answer] = field(default_factory=list)
    ready: list[Account] = field(default_factory=list)
    paused: set[Account] = field(default_factory=set)
    held: bool = False  # no request on any account (pause_all)
    inflight: Counter[Account] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for n in range(THREADS):
            thread = threading.Thread(target=self._client, args=(n,), name=f"e2e-client-{n}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=REQUEST_TIMEOUT_S + 5)
        assert not any(t.is_alive() for t in self.threads), "a client thread did not finish"

    def enter(self, phase: str) -> None:
        with self.lock:
            self.phase = phase

    def add(self, accounts: list[Account]) -> None:
        with self.lock:
            self.ready.extend(accounts)

    def pause(self, account: Account) -> None:
        """No request on `account` from now on, and none still in flight, until resume()."""
        with self.lock:
            self.paused.add(account)
        while True:
            with self.lock:
                if not self.inflight[account]:
                    return
            time.sleep(0.02)

    def resume(self, account: Account) -> None:
        with self.lock:
            self.paused.discard(account)

    def pause_all(self) -> None:
        """No request on any account from now on, and none still in flight, until resume_all()."""
        with self.lock:
            self.held = True
        while True:
            with self.lock:
                if not any(self.inflight.values()):
                    return
            time.sleep(0.02)

    def resume_all(self) -> None:
        with self.lock:
            self.held = False

    def probe(self, account: Account) -> Answer:
        """One new decision on `account`, sent from the calling thread and recorded like the load's."""
        body = {
            "order_id": f"e2e-{SEED}-probe-{uuid.uuid4().hex[:10]}",
            "customer_code": account[0],
            "sale_group_code": account[1],
            "amount": "100.00",
        }
        with self.lock:
            phase = self.phase
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.stack.orders_key}"
        answer = self._send(session, body, account, "new", phase)
        with self.lock:
            self.answers.append(answer)
        return answer

    def told(self, code: str, since: int) -> bool:
        """Whether a decision answered after answer number `since` carries upstream `code`."""
        with self.lock:
            recent = self.answers[since:]
        return any(a.status in (200, 201) and code in _upstream_codes(a.body) for a in recent)

    def _client(self, n: int) -> None:
        rng = random.Random(SEED * 100 + n)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.stack.orders_key}"
        decided: list[tuple[dict[str, Any], Account]] = []  # bodies answered 201, to replay
        while not self.stopping.is_set():
            body, account, kind = self._next(rng, n, decided)
            with self.lock:
                if account is None or self.held or account in self.paused:
                    body = None
                else:
                    self.inflight[account] += 1
                phase = self.phase
            if body is None or account is None:
                time.sleep(0.05)
                continue
            try:
                answer = self._send(session, body, account, kind, phase)
            finally:
                with self.lock:
                    self.inflight[account] -= 1
            with self.lock:
                self.answers.append(answer)
            if kind == "new" and answer.status == 201:
                decided.append((body, account))

    def _next(
        self, rng: random.Random, n: int, decided: list[tuple[dict[str, Any], Account]]
    ) -> tuple[dict[str, Any] | None, Account | None, str]:
        roll = rng.random()
        if decided and roll < 0.05:
            body, account = rng.choice(decided)
            return body, account, "replay"
        if decided and roll < 0.07:
            body, account = rng.choice(decided)
            return body | {"amount": f"{Decimal(body['amount']) + Decimal('0.01')}"}, account, "conflict"
        with self.lock:
            if not self.ready:
                return None, None, "new"
            account = rng.choice(self.ready)
        low, high = AMOUNTS_FEN.get(account, DEFAULT_AMOUNT_FEN)
        fen = rng.randint(low, high)
        body = {
            "order_id": f"e2e-{SEED}-{n}-{uuid.uuid4().hex[:10]}",
            "customer_code": account[0],
            "sale_group_code": account[1],
            "amount": f"{fen // 100}.{fen % 100:02d}",
        }
        return body, account, "new"

    def _send(
        self, session: requests.Session, body: dict[str, Any], account: Account, kind: str, phase: str
    ) -> Answer:
        started = time.monotonic()
        common = {"order_id": body["order_id"], "account": account, "amount": Decimal(body["amount"])}
        try:
            r = session.post(f"{self.stack.url}/v1/decisions", json=body, timeout=REQUEST_TIMEOUT_S)
        except requests.RequestException as exc:
            elapsed = time.monotonic() - started
            return Answer(**common, kind=kind, phase=phase, elapsed_s=elapsed, status=None, body=None,
                          content_type="", error=repr(exc))  # fmt: skip
        elapsed = time.monotonic() - started
        try:
            parsed = r.json()
        except ValueError:
            parsed = r.text
        return Answer(**common, kind=kind, phase=phase, elapsed_s=elapsed, status=r.status_code, body=parsed,
                      content_type=r.headers.get("Content-Type", ""))  # fmt: skip


# --- the run -------------------------------------------------------------------------------------


def _wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        if condition():
            return True
        time.sleep(0.1)
    return False


def _fetch_balances(stack: Stack, code: str) -> dict[str, Any]:
    r = stack.get(f"/v1/balances/{code}?refresh=true")
    assert r.status_code == 200, f"{r.status_code} {r.text}\n{_tail(stack.server_log)}"
    return dict(r.json())


def _warm_up(stack: Stack, load: Load) -> None:
    """Open every customer's accounts from a first fetch, one second apart: their 10 s reuse cycles
    are staggered, so some customer is due for a real upstream call about every second."""
    for code in CUSTOMERS:
        if code != LOWERED[0]:
            time.sleep(1.0)
        _fetch_balances(stack, code)
        load.add(ACCOUNTS[code])


def _lower_balance(stack: Stack, load: Load, run: dict[str, Any]) -> None:
    """Lower LOWERED's balance at the emulator to its exposure + headroom while no order is sent to it,
    and wait until the service has adopted it; then it trades again."""
    time.sleep(2.0)  # let it trade on the old balance first
    load.pause(LOWERED)
    r = stack.get(f"/v1/accounts/{LOWERED[0]}/{LOWERED[1]}")
    assert r.status_code == 200, r.text
    exposure = Decimal(r.json()["exposure"])
    lowered = exposure + LOWERED_HEADROOM
    stack.emulate(
        "/_emulator/balances",
        {"customerCode": LOWERED[0], "saleGroupCode": LOWERED[1], "payerAccountBalance": f"{lowered:.2f}"},
    )

    give_up = time.monotonic() + 30
    while time.monotonic() < give_up:  # the stored report is reused for up to 10 s, then refetched
        accounts = _fetch_balances(stack, LOWERED[0])["accounts"]
        entry = next(a for a in accounts if a["sale_group_code"] == LOWERED[1])
        if entry["balance"] is not None and Decimal(entry["balance"]) == lowered:
            with load.lock:
                run["lowered"] = (exposure, lowered, len(load.answers))
            break
        time.sleep(0.5)
    load.resume(LOWERED)  # without run["lowered"], the test fails


def _meet(
    stack: Stack,
    load: Load,
    name: str,
    fault: dict[str, Any],
    calls: int,
    tells: str | None,
    run: dict[str, Any],
) -> None:
    """Switch a fault on and wait until the service has made `calls` balance calls and used it up.

    A fault with a code to tell is met by one probe decision with no usable snapshot: the load is held
    until every stored balance is older than max_balance_age_s, so that decision can only defer, telling
    why. (Met by the load, whether a decision defers or approves on a snapshot depends on timing.)"""
    started = time.monotonic()
    if tells:
        load.pause_all()
        time.sleep(MAX_BALANCE_AGE_S + 1.2)  # whole seconds: an age of 3.9 s is still 3
    before = stack.stats()["balance_calls"]
    stack.emulate("/_emulator/faults", fault)
    load.enter(name)
    if tells:
        answer = load.probe(PROBE)
        run["probes"][name] = answer
        load.resume_all()

    def met() -> bool:
        now = stack.stats()
        return now["fault"]["mode"] == "none" and now["balance_calls"] - before >= calls

    run["met"][name] = _wait_until(met, FAULT_WAIT_S)
    run["phase_s"][name] = time.monotonic() - started
    time.sleep(DWELL_S)


def _drive(stack: Stack, load: Load) -> dict[str, Any]:
    """Healthy (customers opened, one balance lowered), each transient fault, a sustained 503 until
    the breaker opens, healthy again."""
    run: dict[str, Any] = {"met": {}, "phase_s": {}, "phases": ["healthy"], "probes": {}}
    stack.emulate("/_emulator/faults", {"mode": "none"})
    load.start()
    lowering = threading.Thread(target=_lower_balance, args=(stack, load, run), daemon=True)
    started = time.monotonic()
    _fetch_balances(stack, LOWERED[0])
    load.add(ACCOUNTS[LOWERED[0]])
    lowering.start()
    _warm_up(stack, load)
    lowering.join(timeout=40)
    run["phase_s"]["healthy"] = time.monotonic() - started
    assert "lowered" in run, f"the lowered balance was not adopted\n{_tail(stack.server_log)}"

    for name, fault, calls, tells in TRANSIENT_FAULTS:
        run["phases"].append(name)
        _meet(stack, load, name, fault, calls, tells, run)

    run["phases"].append("503-sustained")
    with load.lock:
        since = len(load.answers)
    stack.emulate("/_emulator/faults", {"mode": "503"})
    load.enter("503-sustained")
    started = time.monotonic()
    run["met"]["503-sustained"] = _wait_until(lambda: load.told("CIRCUIT_OPEN", since), FAULT_WAIT_S)
    run["phase_s"]["503-sustained"] = time.monotonic() - started

    run["phases"].append("healthy-again")
    stack.emulate("/_emulator/faults", {"mode": "none"})
    load.enter("healthy-again")
    time.sleep(DWELL_S)
    run["phase_s"]["healthy-again"] = DWELL_S
    load.stop()
    return run


# --- the test ------------------------------------------------------------------------------------


def test_the_service_keeps_its_invariants_while_the_emulator_fails(stack: Stack) -> None:
    context = f"(db={stack.db}, CREDITCTL_TEST_SEED={SEED}, logs and answers in {stack.tmp})"
    _fetch_balances(stack, LOWERED[0])  # the first token; nothing counted yet
    before = stack.stats()
    counted_from = time.time()
    load = Load(stack)
    started = time.monotonic()
    try:
        run = _drive(stack, load)
    finally:
        load.stopping.set()
        _dump(load.answers, stack.tmp / "answers.jsonl")
    elapsed = time.monotonic() - started
    stack.emulate("/_emulator/faults", {"mode": "none"})
    after = stack.stats()
    calls = [c for c in stack.balance_calls() if c["at"] >= counted_from]
    answers = load.answers
    _report(answers, before, after, elapsed, run, stack, calls)

    _assert_every_request_answered_in_time(answers, stack, context)
    _assert_no_approval_on_an_unknown_balance(answers, stack.rule_set_version, context)
    _assert_replays_and_conflicts_are_clean(answers, context)
    _assert_every_fault_was_met_and_told(answers, run, context)
    _assert_lowered_balance_respected(answers, run["lowered"], context)
    _assert_no_stampede(calls, before, after, context)
    _assert_the_database_is_sound(answers, stack, context)
    ready = requests.get(f"{stack.url}/readyz", timeout=10)
    assert ready.status_code == 200, f"{ready.text} {context}"


def _dump(answers: list[Answer], path: Path) -> None:
    with path.open("w") as out:
        for a in answers:
            out.write(json.dumps(asdict(a), default=str) + "\n")


def _decisions(answers: list[Answer]) -> list[Answer]:
    return [a for a in answers if a.status in (200, 201)]


def _upstream_codes(body: dict[str, Any]) -> set[str]:
    return {r["reason"] for r in body["reasons"] if r["rule"] == "upstream"}


def _report(
    answers: list[Answer],
    before: dict[str, Any],
    after: dict[str, Any],
    elapsed: float,
    run: dict[str, Any],
    stack: Stack,
    calls: list[dict[str, Any]],
) -> None:
    """What happened, phase by phase (shown with -s, and in the report of a failure)."""
    by_phase: dict[str, Counter[str]] = defaultdict(Counter)
    for a in answers:
        if a.status in (200, 201):
            label = a.body["outcome"]
            codes = _upstream_codes(a.body)
            if codes:
                label += ":" + "+".join(sorted(codes))
        else:
            label = f"http {a.status}"
        by_phase[a.phase][label] += 1
    slowest = max((a.elapsed_s for a in answers), default=0.0)
    new = sum(1 for a in answers if a.kind == "new" and a.status == 201)
    print(f"\n[{stack.db}] {len(answers)} requests ({new} new decisions) in {elapsed:.1f} s, "
          f"slowest answer {slowest:.2f} s, seed {SEED}")  # fmt: skip
    print(f"[{stack.db}] emulator: balance calls {after['balance_calls'] - before['balance_calls']}, "
          f"token calls {after['token_calls'] - before['token_calls']}")  # fmt: skip
    per_customer = Counter(c["customer"] for c in calls)
    print(f"[{stack.db}] balance calls per customer: {dict(per_customer)}; the most in one "
          f"{REFRESH_WINDOW_S:g} s window: {max(_calls_per_window(calls).values(), default=0)}")  # fmt: skip
    for name in run["phases"]:
        met = run["met"].get(name, "-")
        took = run["phase_s"].get(name, 0.0)
        print(f"[{stack.db}]   {name:<14} met={met!s:<5} {took:4.1f}s {dict(by_phase.get(name, {}))}")


def _assert_every_request_answered_in_time(answers: list[Answer], stack: Stack, context: str) -> None:
    assert answers, f"no request was sent {context}"
    unanswered = [a for a in answers if a.status is None]
    assert not unanswered, f"{len(unanswered)} requests got no answer, e.g. {unanswered[0]} {context}"
    allowed = {201: "new", 200: "replay", 409: "conflict"}
    for a in answers:
        if a.status == 503:  # the documented "cannot verify" problem (never for an open account here)
            assert a.content_type.startswith("application/problem+json"), f"{a} {context}"
            continue
        assert a.status in allowed, f"unexpected answer {a}\n{_tail(stack.server_log)} {context}"
        assert allowed[a.status] == a.kind, f"{a} {context}"
    slow = [a for a in answers if a.elapsed_s > ANSWER_BOUND_S]
    assert not slow, f"{len(slow)} answers slower than {ANSWER_BOUND_S:.1f} s, e.g. {slow[0]} {context}"
    # Inside the service, without the queueing: every decision within the deadline + 1.5 s.
    metrics = requests.get(f"{stack.url}/metrics", timeout=10).text
    count = re.search(r"^creditctl_decision_seconds_count (\S+)$", metrics, re.M)
    within = re.search(r'^creditctl_decision_seconds_bucket\{le="2.5"\} (\S+)$', metrics, re.M)
    assert count and within, f"no decision histogram in /metrics {context}"
    assert float(count.group(1)) >= sum(1 for a in answers if a.status in (200, 201)), context
    assert float(within.group(1)) == float(count.group(1)), (
        f"decisions slower than 2.5 s: {metrics} {context}"
    )


def _assert_no_approval_on_an_unknown_balance(answers: list[Answer], version: int, context: str) -> None:
    decided = _decisions(answers)
    used = {a.body["rule_set"]["version"] for a in decided}
    assert used == {version}, f"decided under rule set versions {used}, not {version} {context}"
    approvals = [a for a in decided if a.body["outcome"] == "approve"]
    assert approvals, f"nothing was approved: the test proves nothing {context}"
    for a in approvals:
        balance = a.body["balance"]
        assert balance is not None, f"approved without a balance: {a.body} {context}"
        age = datetime.fromisoformat(a.body["decided_at"]) - datetime.fromisoformat(balance["fetched_at"])
        # Ages count whole seconds (the fact balance.age_s is truncated): 3.9 s old is "3 s old".
        assert int(age.total_seconds()) <= MAX_BALANCE_AGE_S, (
            f"approved on a {age} old balance: {a.body} {context}"
        )
        assert balance["source"] == "haier:main", f"{a.body} {context}"
        assert a.body["hold"] and Decimal(a.body["hold"]["amount"]) == a.amount, f"{a.body} {context}"
        assert a.amount <= Decimal(a.body["available"]), f"{a.body} {context}"


def _assert_replays_and_conflicts_are_clean(answers: list[Answer], context: str) -> None:
    first: dict[str, dict[str, Any]] = {}
    for a in answers:
        if a.kind == "new" and a.status == 201:
            assert a.order_id not in first, f"two new decisions for {a.order_id} {context}"
            first[a.order_id] = a.body
    for a in answers:
        if a.kind == "replay":
            assert a.status == 200 and _same_decision(a.body, first[a.order_id]), (
                f"replay {a} != {first[a.order_id]} {context}"
            )
        if a.kind == "conflict":
            assert a.status == 409 and a.content_type.startswith("application/problem+json"), f"{a} {context}"


def _same_decision(replay: dict[str, Any], first: dict[str, Any]) -> bool:
    """A replay answers the stored decision: the same as the first answer, except that a deferred order
    may have been evaluated again since (a newer balance re-evaluates the account's queue), which shows
    as rechecks and rechecked_at; the order, its id and its first decision time never change."""
    if first["state"] == "deferred" and replay["rechecks"] > first["rechecks"]:
        fixed = ("decision_id", "order_id", "customer_code", "sale_group_code", "amount", "decided_at")
        return all(replay[k] == first[k] for k in fixed)
    return replay == first


def _assert_every_fault_was_met_and_told(answers: list[Answer], run: dict[str, Any], context: str) -> None:
    missed = [name for name, met in run["met"].items() if not met]
    assert not missed, f"the service never met these faults within {FAULT_WAIT_S} s: {missed} {context}"
    told = [a for a in _decisions(answers) if _upstream_codes(a.body)]
    for a in told:
        reasons = {r["reason"] for r in a.body["reasons"]}
        assert a.body["outcome"] == "defer" and "BALANCE_UNAVAILABLE" in reasons, f"{a.body} {context}"
        assert _upstream_codes(a.body) <= UPSTREAM_CODES, f"unknown upstream code in {a.body} {context}"
    for name, _fault, _calls, tells in TRANSIENT_FAULTS:
        if tells:
            probe = run["probes"][name]
            assert probe.status == 201, f"the {name} probe: {probe} {context}"
            assert probe.body["outcome"] == "defer", f"the {name} probe: {probe.body} {context}"
            assert tells in _upstream_codes(probe.body), f"the {name} probe: {probe.body} {context}"
    seen = set().union(*(_upstream_codes(a.body) for a in told))
    must = MUST_TELL | {tells for *_, tells in TRANSIENT_FAULTS if tells}
    assert seen >= must, f"deferrals told {sorted(seen)}, not all of {sorted(must)} {context}"


def _assert_lowered_balance_respected(
    answers: list[Answer], lowered: tuple[Decimal, Decimal, int], context: str
) -> None:
    exposure_then, new_balance, first_after = lowered
    approved_after = [
        a
        for a in _decisions(answers[first_after:])
        if a.kind == "new" and a.account == LOWERED and a.body["outcome"] == "approve"
    ]
    for a in approved_after:
        assert Decimal(a.body["balance"]["amount"]) == new_balance, f"{a.body} {context}"
    spent = sum((a.amount for a in approved_after), Decimal(0))
    assert exposure_then + spent <= new_balance, (
        f"approved {spent} on {LOWERED} after its balance fell to {new_balance} "
        f"(exposure then {exposure_then}) {context}"
    )


# The service stamps a fetch before it sends anything; on a loaded machine its first balance call has been
# seen to arrive 0.72 s after that stamp (two calls 0.28 s apart under a 1 s window, CI at aa96297), so the
# next fetch, due a window after the stamp, came sooner after that arrival. Two fetches in one window (a
# stampede) still land within 0.25 s of each other, and the per-window count below bounds them too.
SEND_SLACK_S = 0.75


def _calls_per_window(calls: list[dict[str, Any]]) -> Counter[tuple[str, int]]:
    return Counter((c["customer"], int(c["at"] // REFRESH_WINDOW_S)) for c in calls)


def _assert_no_stampede(
    calls: list[dict[str, Any]], before: dict[str, Any], after: dict[str, Any], context: str
) -> None:
    """One fetch per customer per refresh window, counted at the emulator per customer (not per decision:
    a loaded machine makes fewer decisions, not fewer refreshes)."""
    balance_calls = after["balance_calls"] - before["balance_calls"]
    assert balance_calls == len(calls), f"{balance_calls} counted, {len(calls)} recorded {context}"
    assert calls, f"no balance call was made: the test proves nothing {context}"
    by_customer: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for call in sorted(calls, key=lambda c: c["at"]):
        by_customer[call["customer"]].append(call)
    # A balance answered and stored is used for the whole window after its fetch began: the stored balance
    # is as of the moment the fetch began (the database's clock, read before anything is sent), so the
    # window runs from the first call after the previous answer, retries included. SEND_SLACK_S covers what
    # a fetch may do between taking that stamp and its first balance call arriving here: a token call (after
    # a revoked token), the local rate limiter's wait, connecting. A stampede (many fetches in one window)
    # still fails this, and the per-window count below.
    for customer, sequence in by_customer.items():
        fetch_began = sequence[0]["at"]
        for answered, following in itertools.pairwise(sequence):
            if not answered["normal"]:
                continue  # a retry of the same fetch, or a failed fetch: the window has not begun anew
            gap = following["at"] - fetch_began
            assert gap >= REFRESH_WINDOW_S - SEND_SLACK_S, (
                f"{customer}: a balance call {gap:.3f} s after the previous fetch began, within the "
                f"{REFRESH_WINDOW_S:g} s refresh window: {answered} then {following} {context}"
            )
            fetch_began = following["at"]
    # While the emulator fails, a fetch retries; the next fetch waits at least a window after it ends,
    # so no window of a customer holds more calls than one fetch can make.
    crowded = {k: n for k, n in _calls_per_window(calls).items() if n > CALLS_PER_FETCH}
    assert not crowded, (
        f"more than one fetch's {CALLS_PER_FETCH} calls in a {REFRESH_WINDOW_S:g} s window "
        f"(customer, window): {crowded} {context}"
    )
    token_calls = after["token_calls"] - before["token_calls"]
    # One token shared by every worker: a new one only after revoke_tokens and after the 401s.
    assert token_calls <= 4, f"{token_calls} token calls {context}"


def _assert_the_database_is_sound(answers: list[Answer], stack: Stack, context: str) -> None:
    engine = make_engine(stack.database_url)
    try:
        assert_invariants(engine, context)
        with engine.connect() as conn:
            c = credit_accounts.c
            rows = conn.execute(select(c.customer_code, c.sale_group_code, c.exposure_fen)).all()
            d = decisions.c
            # A deferred order is approved later when a newer balance re-evaluates its account's queue.
            later = {
                (r.customer_code, r.order_id)
                for r in conn.execute(
                    select(d.customer_code, d.order_id).where(d.outcome == "approve", d.rechecks > 0)
                )
            }
    finally:
        engine.dispose()
    approved: dict[Account, Decimal] = defaultdict(Decimal)
    for a in answers:
        if a.kind != "new" or a.status != 201:
            continue
        if a.body["outcome"] == "approve" or (a.account[0], a.order_id) in later:
            approved[a.account] += a.amount
    exposures = {(code, group): Decimal(fen) / 100 for code, group, fen in rows}
    assert exposures == {k: approved.get(k, Decimal(0)) for k in exposures}, f"exposure != approved {context}"
    assert exposures[SMALL] <= SMALL_BALANCE, f"{SMALL} overspent: {exposures[SMALL]} {context}"
