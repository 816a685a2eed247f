"""CREDITCTL_READ_DATABASE_URL as the composition root reads it: a PostgreSQL URL or nothing; anything
else stops the process at start, not at the first report. Unset, every read uses the primary."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.bootstrap import Settings, bootstrap, load_settings
from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.fake.clock import FakeClock
from adapters.sql.engine import make_engine

pytestmark = pytest.mark.adapters

REPLICA = "postgresql+psycopg://creditctl@replica.example/creditctl"


def test_a_replica_url_is_read_and_anything_but_postgresql_is_refused_at_start() -> None:
    assert load_settings({"CREDITCTL_READ_DATABASE_URL": REPLICA}).read_database_url == REPLICA
    assert load_settings({}).read_database_url is None
    assert load_settings({"CREDITCTL_READ_DATABASE_URL": ""}).read_database_url is None
    for bad in ("sqlite:///instance/creditctl.db", "not a url", "mysql://x@y/z"):
        with pytest.raises(SystemExit, match="CREDITCTL_READ_DATABASE_URL must be a postgresql"):
            load_settings({"CREDITCTL_READ_DATABASE_URL": bad})


def test_without_a_replica_every_read_uses_the_primary(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'primary.db'}")
    clock = FakeClock()
    settings = Settings(instance_path=tmp_path / "instance", database_url=str(engine.url))
    context = bootstrap(settings, balances=FakeBalanceProvider({}, clock=clock), clock=clock, engine=engine)
    assert context.live_reports is None and context.read_uow is None
    assert context.reports_now() is context.reports
    assert context.reports._engine is engine  # type: ignore[union-attr]
    assert context.decision_history._engine is engine  # type: ignore[union-attr]
    engine.dispose()
