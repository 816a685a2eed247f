"""End to end: PostgreSQL goes away for a few seconds and comes back, under real processes on a private
server (tests/private_postgres.py; never the shared one).

The worker (deliveries, sealing, anchoring) stays up, logs the outage once per loop, and resumes by itself;
a receiver's answer it could not write while the database was away is written when it is back, so the
event is not sent again. The served API answers 503 problem+json with Retry-After while the database is
away (never a 500, never an HTML page) and 2xx again within seconds of its return, without a restart; every
webhook arrives once per event id, and the audit trail verifies with every event sealed."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import requests
from sqlalchemy import select

from adapters.bootstrap import bootstrap, engine_for, load_settings
from adapters.sql.tables import outbox
from creditctl.domain.audit import SYSTEM
from creditctl.services.context import AppContext
from creditctl.services.webhooks import create_subscription
from tests.e2e.served import CREDITCTL, clean_env, run, run_ok, served_demo, wait_for
from tests.private_postgres import PrivatePostgres, private_postgres
from tests.webhook_receiver import Receiver, running

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

OUTAGE_S = 5.0
RECOVERED_WITHIN_S = 30.0  # a liveness bound, not a speed claim: the figure measured is printed
LEASE_S = 8  # shorter than the outage plus the worker's backoff: an outcome left unwritten would be re-sent
UNAVAILABLE = "https://creditctl.dev/problems/unavailable/database"
LOOPS = ("webhooks: delivering", "audit: sealing", "audit: anchoring to", "backtests: ")


def worker_env(pg: PrivatePostgres, folder: Path, **extra: str) -> dict[str, str]:
    return clean_env(
        CREDITCTL_DATABASE_URL=pg.url,
        CREDITCTL_INSTANCE_PATH=str(folder / "instance"),
        CREDITCTL_ALLOW_LOOPBACK_URLS="true",
        CREDITCTL_WEBHOOK_TIMEOUT_S="5",
        CREDITCTL_WEBHOOK_LEASE_S=str(LEASE_S),
        CREDITCTL_WEBHOOK_BACKOFF_S="0.2",
        CREDITCTL_AUDIT_ANCHOR=f"file:{folder / 'anchors.jsonl'}",
        CREDITCTL_AUDIT_ANCHOR_EVERY_S="0.3",
        CREDITCTL_LOG_LEVEL="WARNING",
        **extra,
    )


@contextmanager
def worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [CREDITCTL, "worker", "--idle-s", "0.1", "--seal-every", "0.2"], env=env, stdout=out, stderr=out
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


def subscribe(context: AppContext, receiver: Receiver, topics: list[str]) -> None:
    tools = context.webhooks
    assert tools is not None
    receiver.secret = create_subscription(
        receiver.url, topics, store=tools.store, box=tools.box, check_url=tools.check_url
    ).secret


def write_events(context: AppContext, n: int) -> list[str]:
    """`n` webhook events and as many audit events, committed together."""
    ids = [uuid4().hex for _ in range(n)]
    with context.uow() as uow:
        for event_id in ids:
            uow.outbox.add(event_id=event_id, topic="upstream.down", payload={}, now=uow.now())
            uow.audit.append("test.written", at=uow.now(), actor=SYSTEM, subject={"event": event_id})
        uow.commit()
    return ids


def deliveries(context: AppContext) -> dict[str, int]:
    tools = context.webhooks
    assert tools is not None
    return tools.store.counts()


def unsealed(context: AppContext) -> int:
    with context.uow() as uow:
        return uow.audit.count_unsealed()


def stays_alive(process: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, (
            f"the worker exited with {process.returncode} while the database was away"
        )
        time.sleep(0.1)


def log_lines(log: Path, what: str) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines() if what in line]


def verify_audit(env: dict[str, str], folder: Path) -> str:
    done = run("audit", "verify", cwd=folder, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


class CutsTheDatabaseWhenItAnswers(Receiver):
    """Once armed, the next event it receives stops PostgreSQL before answering 200: the worker has sent
    the event and cannot write that it did."""

    def __init__(self, pg: PrivatePostgres) -> None:
        super().__init__("")
        self.pg = pg
        self.armed = threading.Event()
        self.cut_at: float | None = None

    def handle(self, header: str, body: bytes) -> int:
        if self.armed.is_set():
            self.armed.clear()
            self.pg.stop()
            self.cut_at = time.monotonic()
        return super().handle(header, body)


def test_the_worker_rides_out_postgres_going_away_and_sends_each_event_once(tmp_path: Path) -> None:
    with private_postgres() as pg:
        env = worker_env(pg, tmp_path)
        run_ok("db", "upgrade", cwd=tmp_path, env=env)
        context = bootstrap(load_settings(env))
        receiver = CutsTheDatabaseWhenItAnswers(pg)
        log = tmp_path / "worker.log"
        with running(receiver), worker(env, log) as process:
            subscribe(context, receiver, ["upstream.down"])
            before = write_events(context, 5)
            wait_for(lambda: set(receiver.processed) == set(before), 30, "the events before the outage")

            receiver.armed.set()
            cut = write_events(context, 1)  # delivered, then the database goes before the worker writes so
            wait_for(lambda: receiver.cut_at is not None, 30, "the database stopped by the receiver")
            assert receiver.cut_at is not None
            stays_alive(process, OUTAGE_S - (time.monotonic() - receiver.cut_at))
            pg.start()
            back_at = time.monotonic()

            after = write_events(context, 5)
            everything = set(before + cut + after)

            def all_done() -> bool:
                counts = deliveries(context)
                return counts.get("delivered") == len(everything) and not counts.get("pending")

            wait_for(all_done, RECOVERED_WITHIN_S, "every delivery written as delivered")
            wait_for(lambda: unsealed(context) == 0, RECOVERED_WITHIN_S, "every audit event sealed")
            resumed_s = time.monotonic() - back_at
            assert process.poll() is None
        print(f"worker: every event delivered and sealed {resumed_s:.1f} s after PostgreSQL came back")
        assert set(receiver.processed) == everything
        assert not receiver.duplicates, f"sent twice: {dict(receiver.duplicates)}"
        for loop in LOOPS:  # one line when it starts failing, one when it works again: not one per tick
            assert len(log_lines(log, f"{loop}")) == 2, (loop, log_lines(log, loop))
            assert len([x for x in log_lines(log, loop) if " failed (" in x]) == 1
            assert len([x for x in log_lines(log, loop) if "works again" in x]) == 1
        assert "0 not sealed yet" in verify_audit(env, tmp_path)
        engine_for(pg.url).dispose()


@dataclass
class Answer:
    order_id: str
    body: dict[str, Any]
    sent_at: float
    answered_at: float
    status: int
    content_type: str
    retry_after: str | None
    json: Any


class DecisionSender(threading.Thread):
    """Sends decisions one after another, each with a new order id, until stopped; keeps every answer."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(daemon=True)
        self.url, self.key = url, key
        self.answers: list[Answer] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            body, sent = order_body(n), time.monotonic()
            try:
                self.answers.append(decide(self.url, self.key, body))
            except requests.RequestException as exc:  # no HTTP answer at all: kept, and fails the test
                self.answers.append(
                    Answer(body["order_id"], body, sent, time.monotonic(), 0, repr(exc), None, None)
                )
            time.sleep(0.05)


def order_body(n: int) -> dict[str, str]:
    """Every other order deferred for review (a decision.deferred webhook), the rest approved."""
    amount = "600000.00" if n % 2 else "10.00"
    return {
        "order_id": f"order-pgdown-{n}-{uuid4().hex[:6]}",
        "customer_code": "8800633175",
        "sale_group_code": "GA10",
        "amount": amount,
    }


def decide(url: str, key: str, body: dict[str, str]) -> Answer:
    sent = time.monotonic()
    r = requests.post(
        f"{url}/v1/decisions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    try:
        parsed = r.json()
    except ValueError:
        parsed = None
    return Answer(
        order_id=body["order_id"],
        body=body,
        sent_at=sent,
        answered_at=time.monotonic(),
        status=r.status_code,
        content_type=r.headers.get("Content-Type", ""),
        retry_after=r.headers.get("Retry-After"),
        json=parsed,
    )


def assert_unavailable(a: Answer) -> None:
    assert a.content_type.startswith("application/problem+json"), a
    assert a.json["type"] == UNAVAILABLE and a.json["status"] == 503, a
    assert a.retry_after is not None and re.fullmatch(r"[1-9]", a.retry_after), a


def test_the_service_answers_503_while_postgres_is_away_and_2xx_again_without_a_restart(
    tmp_path: Path,
) -> None:
    with private_postgres() as pg:
        own = ("CREDITCTL_INSTANCE_PATH", "CREDITCTL_LOG_LEVEL")  # served_demo sets these itself
        settings = {k: v for k, v in worker_env(pg, tmp_path).items() if k.startswith("CREDITCTL_")}
        with served_demo(
            tmp_path, workers=2, **{k: v for k, v in settings.items() if k not in own}
        ) as served:
            _outage_under_load(pg, served.url, served.keys["orders"], served.env, tmp_path)
        engine_for(pg.url).dispose()


@dataclass
class Outage:
    answers: list[Answer]  # every decision sent before, during and after it
    down_at: float  # pg_ctl stop returned: no server
    starting_at: float  # pg_ctl start called
    up_at: float  # pg_ctl start returned: it accepts connections
    ready: requests.Response  # asked while it was down
    healthy: requests.Response
    seed: requests.Response

    def recovered(self) -> Answer:
        """The first decision sent after the database was back and answered 2xx."""
        return next(a for a in self.answers if a.sent_at > self.up_at and 200 <= a.status < 300)


def _outage_under_load(pg: PrivatePostgres, url: str, key: str, env: dict[str, str], folder: Path) -> None:
    context = bootstrap(load_settings(env))
    receiver = Receiver("")
    with running(receiver), worker(env, folder / "worker.log") as process:
        subscribe(context, receiver, ["decision.deferred"])
        before = [decide(url, key, order_body(n)) for n in range(-10, 0)]
        assert all(a.status == 201 for a in before), before
        outage = _outage(pg, url, key, process)
        refused = _check_answers(outage)
        # Sent again with the same order id: decided now (201), or the decision the database kept (200).
        again = [decide(url, key, a.body) for a in refused]
        assert all(a.status in (200, 201) for a in again), [(a.status, a.json) for a in again]
        assert process.poll() is None, "the worker died"

        with engine_for(pg.url).connect() as conn:
            payloads = conn.execute(select(outbox.c.payload).where(outbox.c.topic == "decision.deferred"))
            deferred = sorted(p["order_id"] for p in payloads.scalars())
        sent = [*before, *outage.answers, *again]
        decided = {a.order_id for a in sent if 200 <= a.status < 300 and a.body["amount"] == "600000.00"}
        assert sorted(decided) == deferred  # one event per deferred order, none of a refused one

        def delivered() -> bool:
            return sorted(e["data"]["order_id"] for e in receiver.processed.values()) == deferred

        wait_for(delivered, RECOVERED_WITHIN_S + LEASE_S, "every decision.deferred webhook at the receiver")
        took = time.monotonic() - outage.up_at
        print(
            f"worker: all {len(deferred)} decision.deferred webhooks delivered {took:.1f} s after it was back"
        )
        assert not receiver.duplicates, f"sent twice: {dict(receiver.duplicates)}"
        wait_for(lambda: unsealed(context) == 0, RECOVERED_WITHIN_S, "every audit event sealed")
        assert process.poll() is None
    assert "0 not sealed yet" in verify_audit(env, folder)


def _outage(pg: PrivatePostgres, url: str, key: str, worker: subprocess.Popen[bytes]) -> Outage:
    """While decisions are sent one after another: PostgreSQL stopped for OUTAGE_S (readiness, liveness
    and the seed balance asked meanwhile), started again, sent to until a decision answers 2xx, 1 s more."""
    sender = DecisionSender(url, key)
    sender.start()
    try:
        time.sleep(1.0)
        pg.stop()
        down_at = time.monotonic()
        ready = requests.get(f"{url}/readyz", timeout=30)
        healthy = requests.get(f"{url}/healthz", timeout=30)
        seed = requests.get(
            f"{url}/api/haier/balance/",
            params={"customer_code": "8800633175"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        stays_alive(worker, OUTAGE_S - (time.monotonic() - down_at))
        starting_at = time.monotonic()
        pg.start()
        up_at = time.monotonic()
        wait_for(
            lambda: any(a.sent_at > up_at and 200 <= a.status < 300 for a in sender.answers),
            RECOVERED_WITHIN_S,
            "a decision answered 2xx after PostgreSQL came back",
        )
        time.sleep(1.0)
    finally:
        sender.stopping.set()
        sender.join(timeout=60)
    return Outage(sender.answers, down_at, starting_at, up_at, ready, healthy, seed)


def _check_answers(outage: Outage) -> list[Answer]:
    """Every answer a decision or 503 problem+json with Retry-After (503 for all sent while the database
    was away), 2xx from the first one after its return on; the refused ones."""
    ready, seed = outage.ready, outage.seed
    assert ready.status_code == 503 and ready.json()["checks"]["database"] == "failing"
    assert outage.healthy.status_code == 200
    assert seed.status_code == 503 and seed.headers["Content-Type"].startswith("application/json")
    assert seed.json()["success"] is False and seed.json()["code"] == "SERVICE_UNAVAILABLE"
    assert seed.headers.get("Retry-After")

    answers = outage.answers
    assert {a.status for a in answers} <= {201, 503}, sorted({(a.status, a.content_type) for a in answers})
    away = [a for a in answers if a.sent_at > outage.down_at and a.answered_at < outage.starting_at]
    assert away and all(a.status == 503 for a in away), [(a.status, a.json) for a in away if a.status != 503]
    refused = [a for a in answers if a.status == 503]
    for a in refused:
        assert_unavailable(a)
    recovered = outage.recovered()
    assert all(200 <= a.status < 300 for a in answers if a.sent_at >= recovered.sent_at)
    recovery_s = recovered.answered_at - outage.up_at
    print(
        f"api: {len(refused)} decisions answered 503 while PostgreSQL was away; "
        f"2xx again {recovery_s:.2f} s after it was back"
    )
    assert recovery_s <= RECOVERED_WITHIN_S
    return refused
