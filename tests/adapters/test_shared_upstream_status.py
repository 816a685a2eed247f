"""What /readyz reports as every instance's view of the upstream: one statement over the shared state
and the shared balance reports, its age on the database's clock, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from adapters.sql.balance_reports import SqlSharedBalanceReports
from adapters.sql.upstream_status import SqlSharedUpstreamStatus
from creditctl.domain.balance import BalanceReport, PayerBalance
from tests.adapters.haier_support import clear_upstream_tables

pytestmark = pytest.mark.adapters


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    engine: Engine = request.getfixturevalue(f"{request.param}_engine")
    clear_upstream_tables(engine)
    request.addfinalizer(lambda: clear_upstream_tables(engine))
    return engine


def report(customer: str, at: datetime) -> BalanceReport:
    return BalanceReport(customer, (PayerBalance("GA10", "g", "p", "n", 1),), fetched_at=at, source="haier:x")


def test_before_any_fetch_nothing_is_known(engine: Engine) -> None:
    status = SqlSharedUpstreamStatus(engine)()
    assert status["state"] == "up" and status["consecutive_failures"] == 0
    assert status["last_outcome"] is None and status["last_outcome_age_s"] is None


def test_the_newest_outcome_of_any_instance_with_its_age(engine: Engine) -> None:
    shared = SqlSharedBalanceReports(engine)
    now = datetime.now(UTC)
    shared.store(report("C1", now - timedelta(seconds=120)), holder="a")
    ok = SqlSharedUpstreamStatus(engine)()
    assert ok["last_outcome"] == "success" and 119 <= ok["last_outcome_age_s"] < 600
    for customer in ("C1", "C2", "C3"):
        shared.try_lease(customer, "b", now, now + timedelta(seconds=5))
        shared.fail(customer, "b", "UPSTREAM_TIMEOUT", now - timedelta(seconds=30))
    down = SqlSharedUpstreamStatus(engine)()
    assert (down["state"], down["consecutive_failures"]) == ("down", 3)
    assert down["last_error"] == "UPSTREAM_TIMEOUT"
    assert down["last_outcome"] == "failure" and 29 <= down["last_outcome_age_s"] < 600
    assert down["state_since"] is not None


def test_the_age_is_on_the_database_clock_a_test_may_move(engine: Engine) -> None:
    then = datetime(2026, 1, 1, tzinfo=UTC)
    SqlSharedBalanceReports(engine).store(report("C1", then), holder="a")

    class Fixed:
        def now(self) -> datetime:
            return then + timedelta(seconds=42)

    status = SqlSharedUpstreamStatus(engine, database_clock=Fixed())()
    assert status["last_outcome_at"] == then.isoformat() and status["last_outcome_age_s"] == 42.0
