"""Fixtures of the reliability suite: the API helpers of tests/api and the adapters' `engine` (SQLite and
PostgreSQL), shared rather than copied; a fresh PostgreSQL database per test (its own audit chain); the
run's seed; the long-form switch."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, create_engine, text

from adapters.sql.engine import make_engine
from adapters.sql.migrate import upgrade
from tests.adapters.conftest import engine
from tests.api.conftest import api, db_state
from tests.conftest import _postgres_or_skip

__all__ = ["api", "db_state", "engine"]


def _admin(base: str) -> Engine:
    return create_engine(base, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def dropper() -> Iterator[ThreadPoolExecutor]:
    """Drops the tests' databases on a thread of its own (a drop takes about a second): the next test
    need not wait for it. Every drop is finished, and checked, before the session ends."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="drop-database") as pool:
        yield pool


def _drop(base: str, name: str) -> None:
    admin = _admin(base)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def reliability_template(dropper: ThreadPoolExecutor) -> Iterator[tuple[str, list[Future[None]]]]:
    """A migrated database to copy: `CREATE DATABASE ... TEMPLATE` takes a fraction of a migration."""
    base = _postgres_or_skip()
    name = f"creditctl_rel_tmpl_{uuid.uuid4().hex[:10]}"
    admin = _admin(base)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    drops: list[Future[None]] = []
    try:
        upgrade(base.rsplit("/", 1)[0] + "/" + name)
        yield name, drops
    finally:
        for drop in drops:
            drop.result(timeout=120)  # a failed drop fails the session's last test loudly
        _drop(base, name)


@pytest.fixture
def fresh_pg_url(
    reliability_template: tuple[str, list[Future[None]]], dropper: ThreadPoolExecutor
) -> Iterator[str]:
    """A database of this test's own, so the audit chain the checkers verify holds only its events."""
    template, drops = reliability_template
    base = _postgres_or_skip()
    name = f"creditctl_rel_{uuid.uuid4().hex[:10]}"
    admin = _admin(base)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    admin.dispose()
    yield base.rsplit("/", 1)[0] + "/" + name
    drops.append(dropper.submit(_drop, base, name))


@pytest.fixture
def pg(fresh_pg_url: str) -> Iterator[Engine]:
    """An engine on the test's own database, with a connection for every concurrent caller."""
    engine = make_engine(fresh_pg_url, pool_size=70, max_overflow=10)
    yield engine
    engine.dispose()


@pytest.fixture
def seed_value() -> int:
    """CREDITCTL_TEST_SEED, or a fresh one; printed, so a failing run shows how to replay it."""
    value = int(os.environ.get("CREDITCTL_TEST_SEED") or random.SystemRandom().randrange(2**32))
    print(f"CREDITCTL_TEST_SEED={value}")
    return value


# The long forms: CREDITCTL_RELIABILITY_LONG=1, the suite's switch (items 9-16 read it too); the brief's
# CREDITCTL_RELIABILITY=long is taken as well.
LONG = os.environ.get("CREDITCTL_RELIABILITY_LONG", "").lower() in ("1", "true", "yes") or (
    os.environ.get("CREDITCTL_RELIABILITY", "").lower() == "long"
)
