"""PostgreSQL: three workers share the outbox (FOR UPDATE SKIP LOCKED) and a receiver failing at random
gets each of 1,000 events, processed once; none from a rolled-back change."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine

from adapters.sql.rule_sets import RuleSetCache
from adapters.sql.unit_of_work import SqlUnitOfWork
from creditctl.services.webhook_delivery import deliver_round
from tests.adapters.test_webhook_delivery import SEED, add_events, subscribe, tools
from tests.webhook_receiver import Receiver, running

pytestmark = pytest.mark.adapters


@pytest.mark.postgres
def test_three_workers_share_a_thousand_events_on_postgresql(postgres_engine: Engine, tmp_path: Path) -> None:
    def uow() -> SqlUnitOfWork:
        return SqlUnitOfWork(postgres_engine, rule_set_cache=RuleSetCache())

    t = tools(postgres_engine, None, tmp_path, backoff_s=0.02, max_attempts=100, batch=20)
    receiver = Receiver("", fail_rate=0.2, seed=SEED)
    with running(receiver):
        receiver.secret = subscribe(t, receiver.url)
        ids = [i for _ in range(100) for i in add_events(uow, 10)]
        rolled_back = [i for _ in range(10) for i in add_events(uow, 10, commit=False)]
        stop = threading.Event()

        def work() -> None:
            while not stop.is_set():
                r = deliver_round(store=t.store, notifier=t.notifier, box=t.box, policy=t.policy)
                if not r.claimed:
                    time.sleep(0.01)

        workers = [threading.Thread(target=work) for _ in range(3)]
        for w in workers:
            w.start()
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline and len(receiver.processed) < len(ids):
            time.sleep(0.05)
        stop.set()
        for w in workers:
            w.join()
    assert set(receiver.processed) == set(ids), f"seed {SEED}"
    assert not set(rolled_back) & set(receiver.processed)
    assert receiver.bad_signatures == 0 and receiver.failed_on_purpose > 0
    assert sum(receiver.duplicates.values()) == 0  # no double delivery among the three workers
    assert t.store.counts().get("delivered") == len(ids)
