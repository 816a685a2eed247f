"""Shared fixtures: a movable clock, fake balances, migrated SQLite and PostgreSQL databases, the app."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from adapters.bootstrap import Settings, bootstrap
from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.fake.clock import FakeClock
from adapters.sql.engine import make_engine
from adapters.sql.migrate import upgrade
from adapters.web.app import create_app
from creditctl.services.api_keys import create_api_key
from creditctl.services.context import AppContext
from creditctl.services.customers import refresh_balances, register_customer

PG_URL = os.environ.get("CREDITCTL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

TEST_BALANCES: dict[str, list[dict[str, Any]]] = {
    "8800000001": [
        {
            "saleGroupCode": "GA10",
            "saleGroupName": "Air",
            "payerAccountCode": "P1",
            "payerAccountName": "Alpha Co",
            "payerAccountBalance": "1000.00",
        },
        {
            "saleGroupCode": "GB20",
            "saleGroupName": "Fridge",
            "payerAccountCode": "P1",
            "payerAccountName": "Alpha Co",
            "payerAccountBalance": "100000.00",
        },
    ],
    "8800000002": [
        {
            "saleGroupCode": "GA10",
            "saleGroupName": "Air",
            "payerAccountCode": "P2",
            "payerAccountName": "Beta Co",
            "payerAccountBalance": "5000.00",
        },
    ],
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def balances(clock: FakeClock) -> FakeBalanceProvider:
    return FakeBalanceProvider({k: [dict(e) for e in v] for k, v in TEST_BALANCES.items()}, clock=clock)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate once; each test copies the file (a fresh database in milliseconds)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_engine(sqlite_template: Path, tmp_path: Path) -> Iterator[Engine]:
    path = tmp_path / "creditctl.db"
    shutil.copy(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


def _postgres_or_skip() -> str:
    try:
        probe = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with probe.connect() as conn:
            conn.execute(text("SELECT 1"))
        probe.dispose()
    except Exception as exc:
        reason = f"PostgreSQL not reachable at {PG_URL}: {type(exc).__name__}"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)")
        pytest.skip(reason)
    return PG_URL


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated database for this test session, dropped at the end."""
    base = _postgres_or_skip()
    name = f"creditctl_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.rsplit("/", 1)[0] + "/" + name
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url, pool_size=70, max_overflow=10)
    yield engine
    with engine.begin() as conn:
        conn.execute(
            text(
                "TRUNCATE upstream_calls, backtest_changes, backtest_runs, webhook_deliveries, "
                "webhook_subscriptions, upstream_status, outbox, holds, decisions, api_keys, "
                "credit_accounts, customers, balance_reports, idempotency_records CASCADE"
            )
        )
        conn.execute(text("DELETE FROM rule_set_assignments"))
        conn.execute(text("DELETE FROM rule_sets WHERE version IS NULL OR version > 1"))
    engine.dispose()


def make_context(
    engine: Engine, balances: FakeBalanceProvider, clock: FakeClock, tmp_path: Path
) -> AppContext:
    settings = Settings(instance_path=tmp_path / "instance", database_url=str(engine.url))
    return bootstrap(settings, balances=balances, clock=clock, engine=engine, database_clock=clock)


def seed(context: AppContext) -> None:
    """Register the test customers and store their balances."""
    for code in context.balances.customers():
        register_customer(code, uow=context.uow(), clock=context.clock)
        refresh_balances(code, scope=None, uow=context.uow(), balances=context.balances, clock=context.clock)


@pytest.fixture
def context(
    sqlite_engine: Engine, balances: FakeBalanceProvider, clock: FakeClock, tmp_path: Path
) -> AppContext:
    ctx = make_context(sqlite_engine, balances, clock, tmp_path)
    seed(ctx)
    return ctx


@pytest.fixture
def pg_context(
    postgres_engine: Engine, balances: FakeBalanceProvider, clock: FakeClock, tmp_path: Path
) -> AppContext:
    ctx = make_context(postgres_engine, balances, clock, tmp_path)
    seed(ctx)
    return ctx


@pytest.fixture
def app(context: AppContext) -> Any:
    return create_app(context, {"TESTING": True})


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def keys(context: AppContext) -> dict[str, str]:
    """One key per role, plus one limited to customer 8800000001."""
    out = {}
    for role in ("orders", "admin", "auditor", "finance"):
        out[role] = create_api_key(
            name=f"test-{role}", role=role, customers=None, uow=context.uow(), clock=context.clock
        ).secret
    out["orders_a"] = create_api_key(
        name="test-orders-a", role="orders", customers=["8800000001"], uow=context.uow(), clock=context.clock
    ).secret
    return out


def money(text_: str) -> Decimal:
    return Decimal(text_)
