"""Reports, exports and backtests' history read from a streaming replica (CREDITCTL_READ_DATABASE_URL):
a real hot standby made in the test with pg_basebackup -R from a private primary, on another port.

What is proved: the read side's transactions are read-only (a write through it fails, even pointed at the
primary); a report is served from the replica while threads decide on the primary; under a lag made on
purpose (replay paused on the replica) a report shows what the replica has, and its Data-As-Of (the
exposure report's as_of) is never later than the data it holds; once replay resumes, the figures catch up.
The audit export reads a prefix of the chain there, sealed on the primary."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError

from adapters.bootstrap import Settings, bootstrap, read_engine_for
from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.sql.engine import make_engine
from adapters.sql.migrate import upgrade
from adapters.sql.tables import decisions
from adapters.web.app import create_app
from creditctl.domain.audit import AuditQuery
from creditctl.domain.backtest import RunStatus
from creditctl.domain.decision import Order
from creditctl.ports.clock import SystemClock
from creditctl.services.api_keys import create_api_key
from creditctl.services.audit_export import iter_audit_events
from creditctl.services.backtest import RunBacktest, run_backtest
from creditctl.services.context import AppContext
from creditctl.services.customers import refresh_balances, register_customer
from creditctl.services.decide_order import decide_order
from rules import default_rule_set_document, parse_rule_set
from tests.conftest import TEST_BALANCES
from tests.private_postgres import PrivatePostgres, caught_up, private_postgres, streaming_replica
from tests.random_refs import random_order_id

pytestmark = [pytest.mark.adapters, pytest.mark.postgres]

CUSTOMER, GROUP = "8800000001", "GA10"
DECIDERS = 4
DECISIONS_EACH = 25  # a bounded load: 100 decisions on the primary while reports are read
LAGGED_DECISIONS = 5
AMOUNT = Decimal("0.01")


@dataclass
class Setup:
    primary: PrivatePostgres
    replica: PrivatePostgres
    engine: Engine
    context: AppContext
    client: Any
    auth: dict[str, str]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    with private_postgres() as primary:
        upgrade(primary.url)
        with streaming_replica(primary) as replica:
            engine = make_engine(primary.url, threads=DECIDERS)
            clock = SystemClock()
            balances = FakeBalanceProvider(
                {k: [dict(e) for e in v] for k, v in TEST_BALANCES.items()}, clock=clock
            )
            settings = Settings(
                instance_path=tmp_path_factory.mktemp("replica") / "instance",
                database_url=primary.url,
                read_database_url=replica.url,
            )
            context = bootstrap(settings, balances=balances, clock=clock, engine=engine)
            for code in balances.customers():
                register_customer(code, uow=context.uow(), clock=clock)
                refresh_balances(code, scope=None, uow=context.uow(), balances=context.balances, clock=clock)
            secret = create_api_key(name="a", role="auditor", customers=None, uow=context.uow(), clock=clock)
            client = create_app(context, {"TESTING": True}).test_client()
            yield Setup(
                primary, replica, engine, context, client, {"Authorization": f"Bearer {secret.secret}"}
            )
            engine.dispose()


def decide(s: Setup, tag: str) -> datetime:
    result = decide_order(
        Order(random_order_id(tag), CUSTOMER, GROUP, AMOUNT), scope=None, uow=s.context.uow(),
        balances=s.context.balances,
    )  # fmt: skip
    return result.decision.decided_at


def decided_on_primary(s: Setup) -> int:
    with s.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(decisions)).scalar_one())


def report(s: Setup) -> tuple[int, datetime]:
    """The decisions report of today and yesterday (Asia/Shanghai) through the API: its count, its as-of."""
    r = s.client.get("/v1/reports/decisions", headers=s.auth)
    assert r.status_code == 200, r.get_data(as_text=True)
    return int(r.get_json()["decisions"]), datetime.fromisoformat(r.headers["Data-As-Of"])


def paused(replica: PrivatePostgres) -> None:
    """Replay paused on the replica: it receives WAL and applies none, so its lag grows from now on."""
    replica.sql("SELECT pg_wal_replay_pause()")
    while replica.sql("SELECT pg_get_wal_replay_pause_state()") != "paused":
        time.sleep(0.05)


def test_the_read_side_refuses_to_write_even_pointed_at_the_primary(setup: Setup) -> None:
    reads = read_engine_for(setup.primary.url)  # a read URL set to the primary by mistake
    with pytest.raises(DBAPIError, match="read-only transaction"), reads.connect() as conn:
        conn.execute(text("DELETE FROM decisions"))
    with reads.connect() as conn:
        assert conn.execute(text("SHOW transaction_read_only")).scalar_one() == "on"


def test_reports_are_served_from_the_replica_while_the_primary_decides(setup: Setup) -> None:
    assert setup.replica.sql("SELECT pg_is_in_recovery()") is True
    before, _ = report(setup)
    errors: list[BaseException] = []

    def decider(n: int) -> None:
        try:
            for i in range(DECISIONS_EACH):
                decide(setup, f"load{n}-{i}")
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=decider, args=(n,)) for n in range(DECIDERS)]
    for t in threads:
        t.start()
    seen: list[tuple[int, datetime]] = []
    behind: list[float] = []  # how old each report's data were when it was answered (seconds)
    while any(t.is_alive() for t in threads):
        seen.append(report(setup))
        behind.append((datetime.now(UTC) - seen[-1][1]).total_seconds())  # one host: one clock
    for t in threads:
        t.join()
    assert not errors, errors
    assert seen, "no report was read while deciding"
    counts = [n for n, _ in seen]
    assert counts == sorted(counts), "a replica's figures never go back"
    caught_up(setup.primary, setup.replica)
    final, as_of = report(setup)
    assert final == before + DECIDERS * DECISIONS_EACH == decided_on_primary(setup)
    behind.sort()
    print(f"{len(seen)} reports from the replica while {DECIDERS * DECISIONS_EACH} decisions were made; "
          f"counts seen {counts[0]}..{counts[-1]}; data behind when answered: median "
          f"{behind[len(behind) // 2] * 1000:.0f} ms, max {behind[-1] * 1000:.0f} ms; "
          f"final {final} as of {as_of.isoformat()}")  # fmt: skip


def test_a_lagging_replica_shows_what_it_has_and_says_as_of_when(setup: Setup) -> None:
    decide(setup, "before-lag")
    caught_up(setup.primary, setup.replica)
    paused(setup.replica)
    try:
        shown_before, _ = report(setup)
        lagged = [decide(setup, f"lag{i}") for i in range(LAGGED_DECISIONS)]
        time.sleep(0.5)  # the lag grows while replay stays paused
        shown, as_of = report(setup)
        exposure = setup.client.get("/v1/reports/exposure", headers=setup.auth)
        assert exposure.status_code == 200
        exposure_as_of = datetime.fromisoformat(exposure.get_json()["as_of"])
        primary_now = setup.primary.sql("SELECT clock_timestamp()").astimezone(UTC)

        assert shown == shown_before == decided_on_primary(setup) - LAGGED_DECISIONS
        assert as_of < min(lagged), "the report claims data newer than the replica has"
        assert exposure_as_of < min(lagged), "the exposure report claims holds newer than the replica has"
        assert exposure.headers["Data-As-Of"] == exposure.get_json()["as_of"]
        as_csv = setup.client.get("/v1/reports/decisions.csv", headers=setup.auth)
        assert as_csv.status_code == 200
        assert datetime.fromisoformat(as_csv.headers["Data-As-Of"]) < min(lagged)
        print(f"lag {(primary_now - as_of).total_seconds():.3f} s: {LAGGED_DECISIONS} decisions not on the "
              f"replica; report as of {as_of.isoformat()}, primary at {primary_now.isoformat()}")  # fmt: skip
    finally:
        setup.replica.sql("SELECT pg_wal_replay_resume()")
    caught_up(setup.primary, setup.replica)
    shown, as_of = report(setup)
    assert shown == decided_on_primary(setup)
    assert as_of >= max(lagged)


def test_an_audit_export_reads_a_sealed_prefix_from_the_replica(setup: Setup) -> None:
    decide(setup, "audited")
    caught_up(setup.primary, setup.replica)
    context = setup.context
    exported = list(iter_audit_events(AuditQuery(), uow=context.uow(), read_uow=context.reading_uow()))
    with context.uow() as uow:
        on_primary = uow.audit.query(AuditQuery(limit=100_000))
    positions = [e.position for e in exported]
    assert positions == list(range(1, len(positions) + 1)), "a prefix of the chain, in order, without gaps"
    assert [e.hash for e in exported] == [e.hash for e in on_primary[: len(exported)]]
    assert exported, "the export read nothing"


def test_the_read_side_of_a_context_is_the_replica(setup: Setup) -> None:
    reports = setup.context.reports
    assert reports is not None and setup.context.live_reports is not None
    assert reports._engine.url.port == setup.replica.port  # type: ignore[attr-defined]
    assert setup.context.live_reports._engine.url.port == setup.primary.port  # type: ignore[attr-defined]
    assert setup.context.decision_history._engine.url.port == setup.replica.port  # type: ignore[union-attr]


def test_a_backtest_reads_the_replica_and_waits_for_what_was_decided_before_it(setup: Setup) -> None:
    caught_up(setup.primary, setup.replica)
    paused(setup.replica)
    resumer = threading.Timer(1.0, lambda: setup.replica.sql("SELECT pg_wal_replay_resume()"))
    try:
        lagged = [decide(setup, f"backtest{i}") for i in range(LAGGED_DECISIONS)]
        on_primary = decided_on_primary(setup)
        day = timedelta(days=1)
        cmd = RunBacktest(
            rule_set=parse_rule_set(default_rule_set_document()),
            start=min(lagged) - day, end=max(lagged) + day, requested_by="test",
        )  # fmt: skip
        resumer.start()  # the run is asked for while the replica lacks the last decisions
        context = setup.context
        assert context.decision_history is not None and context.backtests is not None
        run = run_backtest(cmd, history=context.decision_history, store=context.backtests)
    finally:
        resumer.cancel()
        setup.replica.sql("SELECT pg_wal_replay_resume()")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.total == run.decisions == on_primary  # none missing, although replay was paused when asked
