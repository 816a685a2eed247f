"""The outbox delivered as signed webhooks: at least once, each id processed once by the receiver, retries
with backoff, dead letters and redrive, 410 disables, pruning; events written with their change only."""

from __future__ import annotations

import os
import random
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy import Engine, func, select

from adapters.bootstrap import Settings, webhook_tools
from adapters.fake.clock import FakeClock
from adapters.sql.balance_reports import SqlSharedBalanceReports
from adapters.sql.database_clock import SqlDatabaseClock
from adapters.sql.secret_box import FernetSecretBox
from adapters.sql.tables import outbox, webhook_deliveries
from creditctl.domain.audit import AuditQuery
from creditctl.domain.decision import Order
from creditctl.services.audit import list_audit_events
from creditctl.services.context import AppContext, WebhookTools
from creditctl.services.credit_profile import set_base_limit
from creditctl.services.decide_order import decide_order
from creditctl.services.resolve_hold import release_order
from creditctl.services.webhook_delivery import deliver_round, prune_delivered, redrive
from creditctl.services.webhooks import create_subscription
from tests.keys import key
from tests.random_refs import random_order_id
from tests.webhook_receiver import Receiver, running

pytestmark = pytest.mark.adapters
SEED = int(os.environ.get("CREDITCTL_TEST_SEED", "0")) or random.randrange(1, 10**6)


def tools(engine: Engine, clock: FakeClock | None, tmp_path: Path, **policy: float) -> WebhookTools:
    settings = Settings(instance_path=tmp_path, database_url=str(engine.url), allow_loopback_urls=True)
    box = FernetSecretBox(("k" * 43 + "=",))
    t = webhook_tools(settings, engine, SqlDatabaseClock(engine, override=clock), box)
    defaults = {"backoff_s": 1.0, "lease_s": 30.0, "batch": 50}
    return replace(t, policy=replace(t.policy, **{**defaults, **policy}))  # type: ignore[arg-type]


def subscribe(t: WebhookTools, url: str, events: tuple[str, ...] = ("balance.low",)) -> str:
    return create_subscription(url, list(events), store=t.store, box=t.box, check_url=t.check_url).secret


def add_events(uow_factory, n: int, topic: str = "balance.low", *, commit: bool = True) -> list[str]:  # type: ignore[no-untyped-def]
    ids = [uuid4().hex for _ in range(n)]
    with uow_factory() as uow:
        for event_id in ids:
            uow.outbox.add(event_id=event_id, topic=topic, payload={"n": event_id}, now=uow.now())
        if commit:
            uow.commit()
    return ids


def run_until_settled(t: WebhookTools, clock: FakeClock | None, rounds: int = 200) -> None:
    for _ in range(rounds):
        r = deliver_round(store=t.store, notifier=t.notifier, box=t.box, policy=t.policy)
        counts = t.store.counts()
        if not counts.get("pending") and not counts["undispatched"]:
            return
        if not r.claimed and clock is not None:
            clock.advance(t.policy.backoff_cap_s)  # the next retry is due
    raise AssertionError(f"not settled: {t.store.counts()}")


def topics(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r.topic for r in conn.execute(select(outbox.c.topic).order_by(outbox.c.created_at))]


class TestDelivery:
    def test_a_receiver_failing_at_random_gets_every_event_once_and_every_signature_verifies(
        self, context: AppContext, sqlite_engine: Engine, clock: FakeClock, tmp_path: Path
    ) -> None:
        t = tools(sqlite_engine, clock, tmp_path, max_attempts=50)
        receiver = Receiver("", fail_rate=0.3, seed=SEED)
        with running(receiver):
            receiver.secret = subscribe(t, receiver.url)
            ids = add_events(context.uow, 60)
            rolled_back = add_events(context.uow, 5, commit=False)
            run_until_settled(t, clock)
        assert set(receiver.processed) == set(ids), f"seed {SEED}"
        assert not set(rolled_back) & set(receiver.processed)
        assert receiver.failed_on_purpose > 0 and receiver.bad_signatures == 0
        assert not receiver.duplicates
        event = receiver.processed[ids[0]]
        assert set(event) == {"id", "type", "created_at", "data"} and event["type"] == "balance.low"

    def test_a_410_disables_the_subscription(
        self, context: AppContext, sqlite_engine: Engine, clock: FakeClock, tmp_path: Path
    ) -> None:
        t = tools(sqlite_engine, clock, tmp_path)
        receiver = Receiver("", status=410)
        with running(receiver):
            receiver.secret = subscribe(t, receiver.url)
            add_events(context.uow, 3)
            deliver_round(store=t.store, notifier=t.notifier, box=t.box, policy=t.policy)
            (sub,) = t.store.all()
            assert sub.status == "disabled" and "410" in (sub.disabled_reason or "")
            add_events(context.uow, 2)
            clock.advance(3600)
            deliver_round(store=t.store, notifier=t.notifier, box=t.box, policy=t.policy)
        assert receiver.requests == 1
        assert t.store.counts().get("pending", 0) == 0
        (event,) = list_audit_events(AuditQuery(type="webhook_subscription.disabled"), uow=context.uow())
        assert event.data["actor"] == {"name": "creditctl", "role": "system"}
        assert event.data["subject"] == {"subscription_id": sub.id}
        assert event.data["before"]["status"] == "active" and event.data["after"]["status"] == "disabled"
        assert "410" in event.data["after"]["disabled_reason"] and "whsec_" not in event.payload

    def test_dead_after_max_attempts_then_redriven_and_delivered(
        self, context: AppContext, sqlite_engine: Engine, clock: FakeClock, tmp_path: Path
    ) -> None:
        t = tools(sqlite_engine, clock, tmp_path, max_attempts=3)
        receiver = Receiver("", fail_rate=1.0)
        with running(receiver):
            receiver.secret = subscribe(t, receiver.url)
            (event_id,) = add_events(context.uow, 1)
            run_until_settled(t, clock)
            assert t.store.counts()["dead"] == 1 and receiver.failed_on_purpose == 3
            receiver.fail_rate = 0.0
            assert redrive(store=t.store) == 1
            run_until_settled(t, clock)
        assert list(receiver.processed) == [event_id] and t.store.counts()["delivered"] == 1

    def test_retries_wait_for_their_backoff(
        self, context: AppContext, sqlite_engine: Engine, clock: FakeClock, tmp_path: Path
    ) -> None:
        t = tools(sqlite_engine, clock, tmp_path, backoff_s=60.0)
        receiver = Receiver("", fail_rate=1.0)
        with running(receiver):
            receiver.secret = subscribe(t, receiver.url)
            add_events(context.uow, 1)
            for _ in range(3):
                deliver_round(store=t.store, notifier=t.notifier, box=t.box, policy=t.policy)
            assert receiver.requests == 1  # the retry is not due yet
            clock.advance(61)
            deliver_round(store=t.store, notifier=t.notifier, box=t.box, policy=t.policy)
        assert receiver.requests == 2

    def test_a_claim_whose_worker_died_is_due_again_after_its_lease(
        self, context: AppContext, sqlite_engine: Engine, clock: FakeClock, tmp_path: Path
    ) -> None:
        t = tools(sqlite_engine, clock, tmp_path)
        subscribe(t, "http://127.0.0.1:9/never")
        add_events(context.uow, 1)
        now = t.store.now()
        t.store.dispatch(now, 10)
        (claimed,) = t.store.claim(now, now + timedelta(seconds=30), 10)  # ... and the worker dies
        assert t.store.claim(now, now + timedelta(seconds=30), 10) == []  # nobody else takes it meanwhile
        clock.advance(31)
        later = t.store.now()
        (again,) = t.store.claim(later, later + timedelta(seconds=30), 10)
        assert again.id == claimed.id and again.attempts == 2
        t.store.delivered(claimed, later, 200)  # the dead claim's late outcome is fenced off
        assert t.store.counts() == {"pending": 1, "undispatched": 0}

    def test_delivered_rows_and_their_events_are_pruned_after_the_retention_period(
        self, context: AppContext, sqlite_engine: Engine, clock: FakeClock, tmp_path: Path
    ) -> None:
        t = tools(sqlite_engine, clock, tmp_path, retention_s=3600.0)
        receiver = Receiver("")
        with running(receiver):
            receiver.secret = subscribe(t, receiver.url)
            add_events(context.uow, 5)
            add_events(context.uow, 2, topic="upstream.up")  # nobody subscribed: dispatched to no one
            run_until_settled(t, clock)
        assert prune_delivered(store=t.store, policy=t.policy) == 0
        clock.advance(3601)
        assert prune_delivered(store=t.store, policy=t.policy) == 5 + 7
        with sqlite_engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 0
            assert conn.execute(select(func.count()).select_from(webhook_deliveries)).scalar_one() == 0


class TestEventsWithTheirChange:
    def test_upstream_down_and_up_are_written_once_per_transition(
        self, context: AppContext, sqlite_engine: Engine
    ) -> None:
        reports = SqlSharedBalanceReports(sqlite_engine)
        reports.try_lease("8800000001", "h", context.clock.now(), context.clock.now())
        for code in ["SERVICE_UNAVAILABLE", "INVALID_CREDENTIALS", "UPSTREAM_TIMEOUT", *["CIRCUIT_OPEN"] * 5]:
            reports.fail("8800000001", "h", code, context.clock.now())
        for _ in range(3):
            reports.store(context.balances.fetch("8800000001", timeout_s=1), "h")
        reports.fail("8800000001", "h", "SERVICE_UNAVAILABLE", context.clock.now())
        assert topics(sqlite_engine) == ["upstream.down", "upstream.up"]

    def test_credit_limit_changed_is_written_when_the_limit_moves(
        self, context: AppContext, sqlite_engine: Engine
    ) -> None:
        for limit in ("50000.00", "50000.00", "70000.00"):
            set_base_limit(
                "8800000001",
                "GB20",
                base_limit=Decimal(limit),
                reason="review",
                who=key("t"),
                uow=context.uow(),
            )
        assert topics(sqlite_engine) == ["credit.limit_changed", "credit.limit_changed"]

    def test_balance_low_fires_once_per_crossing_with_hysteresis(
        self, context: AppContext, sqlite_engine: Engine, clock: FakeClock
    ) -> None:
        # GB20 holds 100,000.00; threshold 10,000.00, hysteresis 1,000.00.
        def decide(amount: str) -> str:
            order = Order(random_order_id("low"), "8800000001", "GB20", Decimal(amount))
            r = decide_order(order, scope=None, uow=context.uow(), balances=context.balances)
            return r.decision.order_id

        def release(order_id: str) -> None:
            release_order(order_id, customer_code="8800000001", scope=None, uow=context.uow())

        a = decide("85000.00")  # available 15,000.00
        b = decide("4500.00")  # 10,500.00: not below
        c = decide("1000.00")  # 9,500.00: below -> balance.low
        d = decide("200.00")  # 9,300.00: still below, no second event
        assert topics(sqlite_engine) == ["balance.low"]
        release(c)  # 10,300.00: above the threshold, not above threshold + hysteresis (11,000.00)
        e = decide("500.00")  # 9,800.00: no new crossing
        assert topics(sqlite_engine) == ["balance.low"]
        for order_id in (b, d, e):
            release(order_id)  # 15,000.00: back above 11,000.00
        decide("5500.00")  # 9,500.00: a new crossing -> balance.low again
        assert topics(sqlite_engine) == ["balance.low", "balance.low"]
        assert a
