"""Reliability 6: the serving process dies just before and just after a decision commits; the client retries.

A real `creditctl serve` (gunicorn, tests/e2e/served.py) on a PostgreSQL database of the test's own. The
point of death is chosen on the database side, so it holds however the service sends its statements (one
by one, or the writes and the COMMIT in one libpq pipeline): a trigger makes the decision's transaction
wait on an advisory lock the test holds, for this test's order ids only, and the test kills the server's
whole process group with SIGKILL while it waits. Nothing is added to the production code.

  * Before the commit: the wait is in an AFTER INSERT trigger on the decision's audit event, its last write.
    The server dies; its backend is then terminated before the lock is let go, so the transaction never
    commits even if a pipelined COMMIT already sits in the backend's socket (as when the crash beats the
    COMMIT to the database). After: no decision, hold, audit event or outbox row; the retry decides, once.
  * After the commit: the wait is in a deferred constraint trigger, which runs inside COMMIT, so the
    server has sent its COMMIT and dies before any answer; the lock is let go and the database completes
    the commit without it. The retry returns the stored decision (200, same id).
Never two holds; both checkers pass (the outside one from the balance file the server reads).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Connection, Engine, Text, cast, func, select, text

from adapters.bootstrap import Settings, bootstrap
from adapters.sql.tables import audit_events, decisions, holds, outbox
from creditctl.services.api_keys import create_api_key
from creditctl.services.customers import register_customer
from tests.clocks import SkewedClock
from tests.e2e.served import clean_env, kill_hard, serving, wait_for
from tests.ledger_upstream import LedgerUpstream
from tests.outside_checker import OutsideBooks
from tests.random_refs import random_suffix
from tests.reliability.checkers import assert_checkers

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

CUSTOMER, GROUP, START = "8800000009", "GA10", Decimal("10000.00")
AMOUNT = "4000.00"  # two approvals fit the balance, a third would not
PAUSE_KEY = 424242  # the advisory lock the triggers wait on (per database: this test's own)

PAUSE_SQL = f"""
CREATE FUNCTION reliability_crash_pause() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock_shared({PAUSE_KEY});
  RETURN NULL;
END $$;
CREATE TRIGGER reliability_before_commit AFTER INSERT ON audit_events FOR EACH ROW
  WHEN (NEW.order_id LIKE 'crash-before-%') EXECUTE FUNCTION reliability_crash_pause();
CREATE CONSTRAINT TRIGGER reliability_in_commit AFTER INSERT ON audit_events
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
  WHEN (NEW.order_id LIKE 'crash-after-%') EXECUTE FUNCTION reliability_crash_pause();
"""


@dataclass
class Setup:
    engine: Engine
    folder: Path
    env: dict[str, str]
    key: str
    books: OutsideBooks


@pytest.fixture
def setup(pg: Engine, tmp_path: Path) -> Setup:
    balances = tmp_path / "balances.json"
    entry = {
        "saleGroupCode": GROUP, "saleGroupName": "Air", "payerAccountCode": "P9",
        "payerAccountName": "Crash Co", "payerAccountBalance": str(START),
    }  # fmt: skip
    balances.write_text(json.dumps({CUSTOMER: [entry]}))
    env = clean_env(
        CREDITCTL_INSTANCE_PATH=str(tmp_path / "instance"),
        CREDITCTL_DATABASE_URL=str(pg.url.render_as_string(hide_password=False)),
        CREDITCTL_FAKE_BALANCES=str(balances),
        CREDITCTL_WORKERS="1",
        CREDITCTL_LOG_LEVEL="WARNING",
    )
    clock = SkewedClock(0)
    settings = Settings(instance_path=tmp_path / "instance", database_url=str(pg.url))
    ctx = bootstrap(settings, clock=clock, engine=pg)
    register_customer(CUSTOMER, uow=ctx.uow(), clock=clock)
    key = create_api_key(name="crash", role="orders", customers=None, uow=ctx.uow(), clock=clock).secret
    with pg.begin() as conn:
        conn.execute(text(PAUSE_SQL))
    upstream = LedgerUpstream()
    upstream.open_account(CUSTOMER, GROUP, START)  # what the balance file says: the ledger of record
    return Setup(pg, tmp_path, env, key, OutsideBooks(upstream))


@pytest.fixture
def paused(pg: Engine) -> Iterator[Connection]:
    """The test holds the lock the triggers wait on, on a connection of its own."""
    with pg.connect() as conn:
        conn.execute(text(f"SELECT pg_advisory_lock({PAUSE_KEY})"))
        conn.commit()
        yield conn
        conn.execute(text("SELECT pg_advisory_unlock_all()"))
        conn.commit()


def post(url: str, key: str, order_id: str, timeout: float = 30) -> requests.Response:
    body = {"order_id": order_id, "customer_code": CUSTOMER, "sale_group_code": GROUP, "amount": AMOUNT}
    return requests.post(
        f"{url}/v1/decisions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=timeout
    )


def send_in_background(url: str, key: str, order_id: str) -> dict[str, Any]:
    """The client's first attempt, on a thread: what it got (an answer or the error) lands in the box."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["response"] = post(url, key, order_id)
        except requests.RequestException as exc:
            box["error"] = exc

    box["thread"] = threading.Thread(target=run, daemon=True)
    box["thread"].start()
    return box


def waiting_backend(conn: Connection) -> int | None:
    """The pid of the backend waiting on the pause lock, once one is."""
    row = conn.execute(
        text(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = :k "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        {"k": PAUSE_KEY},
    ).first()
    return None if row is None else int(row.pid)


def traces(engine: Engine, order_id: str) -> dict[str, int]:
    """What the database holds of `order_id`: its decision, hold, audit events and outbox rows."""
    where = {
        "decisions": decisions.c.order_id == order_id,
        "holds": holds.c.order_id == order_id,
        "audit events": audit_events.c.order_id == order_id,
        "outbox rows": cast(outbox.c.payload, Text).contains(order_id),
    }
    with engine.connect() as conn:
        return {name: conn.execute(select(func.count()).where(w)).scalar_one() for name, w in where.items()}


def crash_while_paused(s: Setup, paused: Connection, order_id: str, *, abort: bool) -> dict[str, Any]:
    """Serve, send the order, wait until its transaction waits on the pause, kill the server; `abort`
    terminates the backend before letting the lock go (the COMMIT never reaches the database)."""
    with serving(s.folder, s.env) as (url, process):
        box = send_in_background(url, s.key, order_id)
        wait_for(lambda: waiting_backend(paused) is not None, 30, "the decision to wait on the pause")
        pid = waiting_backend(paused)
        kill_hard(process)
        if abort:
            paused.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            paused.commit()
            wait_for(lambda: waiting_backend(paused) is None, 30, "the terminated backend to go")
        paused.execute(text(f"SELECT pg_advisory_unlock({PAUSE_KEY})"))
        paused.commit()
        box["thread"].join(30)
    assert "response" not in box, f"the client got an answer from a dead server: {box}"
    return box


def retry(s: Setup, order_id: str) -> requests.Response:
    """A new server on the same database; the client sends the same order id and body again."""
    with serving(s.folder, s.env) as (url, _):
        first = post(url, s.key, order_id)
        again = post(url, s.key, order_id)
    assert first.status_code in (200, 201), first.text
    assert again.status_code == 200 and again.json()["decision_id"] == first.json()["decision_id"], again.text
    if first.json()["outcome"] == "approve":
        s.books.approval(order_id, (CUSTOMER, GROUP), Decimal(AMOUNT))
    return first


def test_a_crash_just_before_the_commit_leaves_no_trace_and_the_retry_decides_once(
    setup: Setup, paused: Connection
) -> None:
    order_id = f"crash-before-{random_suffix()}"
    crash_while_paused(setup, paused, order_id, abort=True)
    left = traces(setup.engine, order_id)
    assert left == dict.fromkeys(left, 0), f"the crash before the commit left {left}"
    answer = retry(setup, order_id)
    assert answer.status_code == 201 and answer.json()["outcome"] == "approve", answer.text
    assert traces(setup.engine, order_id)["holds"] == 1
    assert traces(setup.engine, order_id)["decisions"] == 1
    assert_checkers(setup.engine, setup.books)


def test_a_crash_just_after_the_commit_is_answered_by_the_stored_decision(
    setup: Setup, paused: Connection
) -> None:
    order_id = f"crash-after-{random_suffix()}"
    crash_while_paused(setup, paused, order_id, abort=False)
    wait_for(lambda: traces(setup.engine, order_id)["decisions"] == 1, 30, "the commit to complete")
    with setup.engine.connect() as conn:
        stored = conn.execute(select(decisions.c.id).where(decisions.c.order_id == order_id)).scalar_one()
    answer = retry(setup, order_id)
    assert answer.status_code == 200, answer.text  # a replay: the decision made before the crash
    assert answer.json()["decision_id"] == stored
    assert traces(setup.engine, order_id)["holds"] == 1
    assert_checkers(setup.engine, setup.books)
