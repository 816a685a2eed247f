"""Reliability item 9, the outbox delivers at least once (PostgreSQL).

Decisions (deferred for review, so each writes a decision.deferred event in its own transaction), plus
events of changes that roll back; four workers share the outbox (FOR UPDATE SKIP LOCKED); a fifth worker
claims a batch and dies mid-send (its lease runs out and the batch falls due again); the receiver fails
at random; a second endpoint answers 410 Gone. After: every committed event delivered, one processed copy
per event id at the receiver, every signature valid, no event of a rolled-back change, the gone endpoint
disabled; both invariant checkers pass (checkers.py). The worker killed with SIGKILL as a process is
test_outbox_survives_a_killed_worker.py.

Default: 200 decisions. CREDITCTL_RELIABILITY_LONG=1: 1,000 (reliability-tests.md's figure).
"""

from __future__ import annotations

import os
import random
import threading
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from adapters.fake.clock import FakeClock
from adapters.sql.rule_sets import RuleSetCache
from adapters.sql.unit_of_work import SqlUnitOfWork
from creditctl.domain.decision import Order
from creditctl.domain.webhook import SubscriptionStatus
from creditctl.services.context import AppContext
from creditctl.services.decide_order import decide_order
from creditctl.services.webhook_delivery import deliver_round
from tests.adapters.test_webhook_delivery import SEED, add_events, subscribe, tools
from tests.conftest import TEST_BALANCES
from tests.outside_checker import OutsideBooks
from tests.reliability.checkers import assert_checkers, books_for, starting_money
from tests.webhook_receiver import Receiver, running

pytestmark = pytest.mark.adapters

LONG = os.environ.get("CREDITCTL_RELIABILITY_LONG", "").lower() in ("1", "true", "yes")
DECISIONS = 1000 if LONG else 200
DEADLINE_S = 120 if LONG else 40  # a bound on the run, not an assertion on speed


@pytest.fixture
def postgres_engine(pg: Engine) -> Engine:
    """A database of the test's own (tests/reliability/conftest.py): the audit chain the checkers seal
    and verify then holds only this test's events."""
    return pg


def decide_for_review(
    ctx: AppContext, engine: Engine, n: int, rng: random.Random, books: OutsideBooks
) -> list[str]:
    """n decisions deferred for review on customer A's GB20 (its review threshold lowered to 1.00); each
    answer is shown to the outside books (a deferral approves nothing)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE credit_accounts SET params = CAST(:p AS JSON) "
                "WHERE customer_code = '8800000001' AND sale_group_code = 'GB20'"
            ),
            {"p": '{"single_order_review_amount": "1.00"}'},
        )
    orders = []
    for i in range(n):
        order = Order(f"PO-OUTBOX-{i}", "8800000001", "GB20", Decimal(rng.randrange(200, 90000)) / 100)
        result = decide_order(order, scope=None, uow=ctx.uow(), balances=ctx.balances)
        assert result.decision.outcome.value == "defer", result.decision
        books.saw(result.decision)
        orders.append(order.order_id)
    return orders


@pytest.mark.postgres
def test_four_workers_a_dead_one_and_a_failing_receiver_deliver_every_event_once(
    pg_context: AppContext, postgres_engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    """Every clock here is the test's (the service's and the outbox's), moved along with real time."""

    def uow() -> SqlUnitOfWork:
        return SqlUnitOfWork(postgres_engine, rule_set_cache=RuleSetCache(), database_clock=clock)

    rng = random.Random(SEED)
    books = books_for(starting_money(TEST_BALANCES))
    t = tools(postgres_engine, clock, tmp_path, backoff_s=0.02, max_attempts=100, batch=20, lease_s=1.0)
    receiver = Receiver("", fail_rate=0.2, seed=SEED)
    gone = Receiver("", status=410)
    with running(receiver), running(gone):
        receiver.secret = subscribe(t, receiver.url, ("decision.deferred", "balance.low"))
        gone.secret = subscribe(t, gone.url, ("decision.deferred",))
        orders = decide_for_review(pg_context, postgres_engine, DECISIONS, rng, books)
        with postgres_engine.connect() as conn:
            ids = set(conn.execute(text("SELECT id FROM outbox")).scalars())
        assert len(ids) == DECISIONS, f"seed {SEED}: one event per deferred decision"
        rolled_back = [i for _ in range(5) for i in add_events(uow, 10, commit=False)]

        # A worker that claims a batch and dies before sending any of it: the lease must expire.
        now = t.store.now()
        t.store.dispatch(now, 1000)
        dead_claim = t.store.claim(now, now + timedelta(seconds=t.policy.lease_s), t.policy.batch)
        assert dead_claim, "the dead worker claimed nothing: the test would prove nothing about leases"

        stop = threading.Event()
        errors: list[BaseException] = []

        def work() -> None:
            try:
                while not stop.is_set():
                    r = deliver_round(store=t.store, notifier=t.notifier, box=t.box, policy=t.policy)
                    if not r.claimed:
                        time.sleep(0.01)
            except BaseException as exc:  # reported below
                errors.append(exc)

        workers = [threading.Thread(target=work) for _ in range(4)]
        for w in workers:
            w.start()
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline and len(receiver.processed) < len(ids):
            time.sleep(0.05)
            clock.advance(0.05)  # leases run out, retries fall due
        stop.set()
        for w in workers:
            w.join()

    where = f"seed {SEED}"
    assert not errors, (where, errors[:3])
    assert set(receiver.processed) == ids, (where, len(ids - set(receiver.processed)), "not delivered")
    assert {e["data"]["order_id"] for e in receiver.processed.values()} == set(orders), where
    assert not set(rolled_back) & set(receiver.processed), where
    assert receiver.bad_signatures == 0 and receiver.failed_on_purpose > 0, where
    assert sum(receiver.duplicates.values()) == 0, where  # no double delivery among the workers
    dead_ids = {d.event_id for d in dead_claim if d.subscription.id != _sub_id(t, gone.url)}
    assert dead_ids <= set(receiver.processed), where  # the dead worker's batch was sent by others
    (gone_sub,) = [s for s in t.store.all() if s.url == gone.url]
    assert gone_sub.status is SubscriptionStatus.DISABLED, where
    assert 1 <= gone.requests < len(ids), (where, gone.requests)  # disabled early, not sent every event
    assert_checkers(postgres_engine, books, SEED)


def _sub_id(t, url: str) -> str:  # type: ignore[no-untyped-def]
    return next(s.id for s in t.store.all() if s.url == url)
