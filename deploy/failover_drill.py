"""The failover drill: the primary PostgreSQL dies under decision load, its synchronous standby is
promoted, and the service (never restarted) goes on through a multi-host URL.

    .venv/bin/python deploy/failover_drill.py [--seconds 60] [--fail-after 10] [--clients 8]

Run from the checkout (it uses the test suite's private servers: PostgreSQL 15's initdb, pg_ctl and
pg_basebackup, on free loopback ports in a temporary folder; never the server on 5432). Steps:
1. a primary and a hot standby made from it with pg_basebackup -R; synchronous_standby_names = '*' on
   the primary, so a commit is acknowledged only once the standby has it on disk;
2. `creditctl serve` (2 gunicorn workers) with CREDITCTL_DATABASE_URL naming both servers,
   ?host=127.0.0.1:P1&host=127.0.0.1:P2&target_session_attrs=read-write (libpq tries them in turn and
   keeps the one that accepts writes), migrated and seeded with the demo;
3. --clients threads POST /v1/decisions one after another, each answer logged;
4. after --fail-after s: `pg_ctl stop -m immediate` on the primary (a crash: no shutdown checkpoint, no
   goodbye to clients), then `pg_ctl promote` on the standby;
5. load goes on until --seconds; then every order refused during the failover is sent again with its id;
6. the client's log is compared with the promoted database: every decision answered 2xx must be there
   with the outcome the client was told; the audit chain is sealed and verified (`creditctl audit seal`,
   `creditctl audit verify`, through the same multi-host URL, which now reaches the promoted server).

Printed: requests, answers by status, seconds without service (the longest stretch without a 2xx, and
from the crash to the first 2xx), promotion time, decisions lost (must be 0), the audit verification.
tests/e2e/test_failover_drill.py runs the bounded form in CI.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import requests
from sqlalchemy import create_engine, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.sql.tables import decisions
from tests.e2e.served import run, served_demo
from tests.private_postgres import PrivatePostgres, private_postgres, streaming_replica

CUSTOMER, GROUP = "8800633175", "GA10"  # a demo account with 1,250,000.00 on the fake balance source
SYNC_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Answer:
    order_id: str
    body: dict[str, str]
    sent_at: float
    answered_at: float
    status: int  # 0: no HTTP answer at all (connection refused, timeout)
    outcome: str | None
    detail: str


@dataclass
class Drill:
    answers: list[Answer]
    resent: list[Answer]
    crashed_at: float
    promoted_at: float
    missing: list[str]  # answered 2xx, not in the promoted database
    changed: list[str]  # answered 2xx, in the database with another outcome
    audit_verify: str
    audit_ok: bool
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def acknowledged(self) -> list[Answer]:
        return [a for a in [*self.answers, *self.resent] if 200 <= a.status < 300]

    @property
    def lost(self) -> int:
        return len(self.missing) + len(self.changed)

    def longest_gap_s(self) -> float:
        """The longest stretch with no 2xx answered, around the crash: seconds without service."""
        times = sorted(a.answered_at for a in self.answers if 200 <= a.status < 300)
        around = [t for t in times if t >= self.crashed_at - 5]
        before = [t for t in times if t < self.crashed_at]
        points = ([before[-1]] if before else [self.crashed_at]) + [t for t in around if t >= self.crashed_at]
        return max((b - a for a, b in itertools.pairwise(points)), default=float("inf"))

    def first_ack_after_crash_s(self) -> float:
        """From the crash to the first 2xx for a decision sent after it."""
        after = [a.answered_at for a in self.answers if a.sent_at > self.crashed_at and 200 <= a.status < 300]
        return min(after) - self.crashed_at if after else float("inf")


class Client(threading.Thread):
    """One order system: decisions one after another, every answer logged."""

    def __init__(self, url: str, key: str, n: int) -> None:
        super().__init__(daemon=True)
        self.url, self.key, self.n = url, key, n
        self.answers: list[Answer] = []
        self.stopping = threading.Event()
        self.session = requests.Session()

    def run(self) -> None:
        i = 0
        while not self.stopping.is_set():
            i += 1
            body = {
                "order_id": f"drill-{self.n}-{i}-{uuid4().hex[:6]}",
                "customer_code": CUSTOMER,
                "sale_group_code": GROUP,
                "amount": "1.00",
            }
            self.answers.append(decide(self.session, self.url, self.key, body))


def decide(session: requests.Session, url: str, key: str, body: dict[str, str]) -> Answer:
    sent = time.monotonic()
    try:
        r = session.post(
            f"{url}/v1/decisions", json=body, headers={"Authorization": f"Bearer {key}"},
            timeout=REQUEST_TIMEOUT_S,
        )  # fmt: skip
    except requests.RequestException as exc:
        return Answer(body["order_id"], body, sent, time.monotonic(), 0, None, repr(exc))
    try:
        parsed: Any = r.json()
    except ValueError:
        parsed = None
    outcome = parsed.get("outcome") if isinstance(parsed, dict) and r.status_code < 300 else None
    detail = (
        "" if r.status_code < 300 else (parsed.get("type", "") if isinstance(parsed, dict) else r.text[:80])
    )
    return Answer(body["order_id"], body, sent, time.monotonic(), r.status_code, outcome, detail)


def multi_host_url(*servers: PrivatePostgres) -> str:
    """One URL naming every server; libpq connects to the first that accepts writes."""
    hosts = "&".join(f"host=127.0.0.1:{s.port}" for s in servers)
    return f"postgresql+psycopg://postgres@/creditctl?{hosts}&target_session_attrs=read-write"


def make_synchronous(primary: PrivatePostgres) -> None:
    """A commit waits for the standby's flush (synchronous_commit = on, the default). Set on the primary
    only after the copy: the promoted standby must not wait for a standby of its own that does not exist."""
    primary.sql("ALTER SYSTEM SET synchronous_standby_names = '*'")
    primary.sql("SELECT pg_reload_conf()")
    deadline = time.monotonic() + SYNC_TIMEOUT_S
    while primary.sql("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") != 1:
        if time.monotonic() > deadline:
            raise RuntimeError("the standby did not become synchronous")
        time.sleep(0.1)


def drill(folder: Path, *, seconds: float, fail_after: float, clients: int) -> Drill:
    with private_postgres() as primary, streaming_replica(primary) as standby:
        make_synchronous(primary)
        url = multi_host_url(primary, standby)
        # The drill's clients share one key and may send more than its default rate on a quiet machine.
        with served_demo(
            folder, workers=2, CREDITCTL_DATABASE_URL=url, CREDITCTL_RATE_LIMIT_PER_KEY="off"
        ) as served:
            key = served.keys["orders"]
            pool = [Client(served.url, key, n) for n in range(clients)]
            started = time.monotonic()
            for c in pool:
                c.start()
            time.sleep(fail_after)
            primary.stop("immediate")
            crashed_at = time.monotonic()
            standby.promote()
            promoted_at = time.monotonic()
            time.sleep(max(0.0, seconds - (time.monotonic() - started)))
            for c in pool:
                c.stopping.set()
            for c in pool:
                c.join(timeout=REQUEST_TIMEOUT_S + 5)
            answers = sorted((a for c in pool for a in c.answers), key=lambda a: a.sent_at)
            # An order system sends a refused order again with the same id: decided once, whatever happened.
            session = requests.Session()
            resent = [decide(session, served.url, key, a.body) for a in answers if not 200 <= a.status < 300]
            seal = run("audit", "seal", cwd=folder, env=served.env)
            verify = run("audit", "verify", cwd=folder, env=served.env)
        engine = create_engine(standby.url)
        with engine.connect() as conn:
            rows = conn.execute(select(decisions.c.order_id, decisions.c.outcome))
            stored = {order_id: outcome for order_id, outcome in rows}
        engine.dispose()
    acked = {a.order_id: a.outcome for a in [*answers, *resent] if 200 <= a.status < 300}
    return Drill(
        answers=answers,
        resent=resent,
        crashed_at=crashed_at,
        promoted_at=promoted_at,
        missing=sorted(o for o in acked if o not in stored),
        changed=sorted(o for o, outcome in acked.items() if o in stored and stored[o] != outcome),
        audit_verify=(seal.stdout + seal.stderr + verify.stdout + verify.stderr).strip(),
        audit_ok=seal.returncode == 0 and verify.returncode == 0,
        statuses=Counter(a.status for a in answers),
    )


def report(d: Drill, *, clients: int, seconds: float) -> str:
    refused = [a for a in d.answers if not 200 <= a.status < 300]
    kinds = Counter(f"{a.status} {a.detail.rsplit('/', 1)[-1] or '-'}" for a in refused)
    return "\n".join(
        [
            f"failover drill: {clients} clients, {seconds:.0f} s; the primary crashed (immediate), "
            "the standby promoted",
            f"requests: {len(d.answers)}; answers: {dict(sorted(d.statuses.items()))}",
            f"refused by kind: {dict(kinds)}",
            f"promotion (pg_ctl promote -w): {d.promoted_at - d.crashed_at:.2f} s",
            f"seconds without service: longest stretch without a 2xx {d.longest_gap_s():.2f} s; "
            f"crash to first 2xx of a decision sent after it {d.first_ack_after_crash_s():.2f} s",
            f"refused orders sent again with their ids: {len(d.resent)}, "
            f"answered {dict(Counter(a.status for a in d.resent))}",
            f"decisions acknowledged: {len(d.acknowledged)}; lost: {d.lost} "
            f"(missing {len(d.missing)}, outcome changed {len(d.changed)})",
            f"audit: {'verified' if d.audit_ok else 'FAILED'}: {last_line(d.audit_verify)}",
        ]
    )


def last_line(text: str) -> str:
    return text.splitlines()[-1] if text else ""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="the whole run under load")
    parser.add_argument("--fail-after", type=float, default=10.0, help="when the primary is crashed")
    parser.add_argument("--clients", type=int, default=8, help="order systems sending at once")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="creditctl-drill-") as folder:
        d = drill(Path(folder), seconds=args.seconds, fail_after=args.fail_after, clients=args.clients)
    print(report(d, clients=args.clients, seconds=args.seconds))
    if d.lost or not d.audit_ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
