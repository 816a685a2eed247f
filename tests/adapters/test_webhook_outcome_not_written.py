"""The database goes away between a webhook's POST and writing its outcome: the round ends with
OutcomeNotRecorded (the rest of the batch is not sent), and writing it when the database is back, before
the next round, keeps the receiver from getting the event a second time, even after the lease ran out."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from adapters.fake.clock import FakeClock
from creditctl.ports.webhooks import DueDelivery
from creditctl.services.context import AppContext
from creditctl.services.webhook_delivery import deliver_round
from tests.adapters.test_webhook_delivery import add_events, subscribe, tools
from tests.webhook_receiver import Receiver, running

pytestmark = pytest.mark.adapters


class StoreLosingItsDatabase:
    """The real store, whose database goes away right after the first receiver answered: that write
    fails, as every write would until the database is back (`back()`)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.away = False
        self.posted_before_going = False

    def __getattr__(self, name: str) -> Any:
        if self.away:
            raise OperationalError("UPDATE webhook_deliveries", {}, Exception("connection refused"))
        return getattr(self._store, name)

    def delivered(self, delivery: DueDelivery, now: datetime, status: int) -> None:
        if not self.posted_before_going:
            self.posted_before_going, self.away = True, True
        if self.away:
            raise OperationalError("UPDATE webhook_deliveries", {}, Exception("connection refused"))
        self._store.delivered(delivery, now, status)

    def back(self) -> None:
        self.away = False


def test_an_answer_written_after_the_outage_is_not_sent_again(
    context: AppContext, sqlite_engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    from creditctl.services.webhook_delivery import OutcomeNotRecorded  # here: the module runs on main

    t = tools(sqlite_engine, clock, tmp_path, lease_s=30.0)
    store = StoreLosingItsDatabase(t.store)
    receiver = Receiver("")
    with running(receiver):
        receiver.secret = subscribe(t, receiver.url)
        ids = add_events(context.uow, 3)
        with pytest.raises(OutcomeNotRecorded) as lost:
            deliver_round(store=store, notifier=t.notifier, box=t.box, policy=t.policy)  # type: ignore[arg-type]
        assert receiver.requests == 1  # the rest of the batch was not sent while nothing could be written
        assert isinstance(lost.value.__cause__, OperationalError)

        store.back()
        clock.advance(t.policy.lease_s + 1)  # the outage outlasted the lease
        lost.value.record()  # what the worker does first when the database answers again
        for _ in range(5):
            deliver_round(store=store, notifier=t.notifier, box=t.box, policy=t.policy)  # type: ignore[arg-type]
            clock.advance(t.policy.lease_s + 1)
    assert set(receiver.processed) == set(ids)
    assert not receiver.duplicates, dict(receiver.duplicates)
    assert receiver.requests == len(ids)
    assert t.store.counts().get("delivered") == len(ids)
