"""Migrations: a fresh SQLite or PostgreSQL database is brought to head, gets the default rule set as
version 1, and ends up with exactly the schema adapters/sql/tables.py describes (`alembic check`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect, select, text

from adapters.sql.migrate import alembic_config, current, upgrade
from adapters.sql.tables import metadata, rule_sets
from rules import parse_rule_set
from rules.params import check_overrides
from tests.conftest import PG_URL

pytestmark = pytest.mark.adapters

DESIGN_RULES = ["frozen", "stale", "depleted", "overdue", "over_limit", "short", "large", "low"]


@pytest.fixture
def fresh_sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'nested' / 'fresh.db'}"


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """An empty database of its own (the session database is already migrated)."""
    name = f"creditctl_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield postgres_url.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"fresh_{request.param}_url")  # type: ignore[no-any-return]


def head() -> str:
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, f"migrations must have one head, found {heads}"
    return heads[0]


def schema_diffs(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
        return list(compare_metadata(context, metadata))


class TestUpgrade:
    def test_upgrade_publishes_the_default_rule_set_as_version_one(self, fresh_url: str) -> None:
        upgrade(fresh_url)
        engine = create_engine(fresh_url)
        try:
            with engine.connect() as conn:
                row = conn.execute(select(rule_sets).where(rule_sets.c.version == 1)).one()
        finally:
            engine.dispose()
        assert row.name == "default"
        compiled = parse_rule_set(row.document)
        assert [r.id for r in compiled.rules] == DESIGN_RULES
        assert compiled.params["max_balance_age_s"] == 1800
        assert row.published_at.utcoffset().total_seconds() == 0

    def test_upgrade_reaches_the_single_head(self, fresh_url: str) -> None:
        upgrade(fresh_url)
        assert current(fresh_url) == head()

    def test_the_migrated_schema_matches_the_tables_module(self, fresh_url: str) -> None:
        upgrade(fresh_url)
        engine = create_engine(fresh_url)
        try:
            assert schema_diffs(engine) == []
        finally:
            engine.dispose()

    def test_upgrade_twice_is_harmless(self, fresh_url: str) -> None:
        upgrade(fresh_url)
        upgrade(fresh_url)
        engine = create_engine(fresh_url)
        try:
            with engine.connect() as conn:
                versions = list(conn.execute(select(rule_sets.c.version)).scalars())
        finally:
            engine.dispose()
        assert versions == [1]

    def test_downgrade_to_base_and_back(self, fresh_url: str) -> None:
        upgrade(fresh_url)
        command.downgrade(alembic_config(fresh_url), "base")
        engine = create_engine(fresh_url)
        try:
            assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
            upgrade(fresh_url)
            assert schema_diffs(engine) == []
        finally:
            engine.dispose()


class TestSessionDatabases:
    """The fixtures every other test uses are migrated the same way."""

    def test_sqlite_fixture_matches_the_tables_module(self, sqlite_engine: Engine) -> None:
        assert schema_diffs(sqlite_engine) == []

    @pytest.mark.postgres
    def test_postgres_fixture_matches_the_tables_module(self, postgres_engine: Engine) -> None:
        assert schema_diffs(postgres_engine) == []


class TestParamBounds:
    """0016: account overrides stored before the bounds existed are brought within them."""

    OUT_OF_BOUNDS = {
        "hold_ttl_s": 0,
        "deferral_ttl_s": 9223372036854775807,
        "base_credit_limit": "99999999999999999.00",
        "grade_b_min_on_time_ratio": "0.123456",
        "safety_margin": "5.00",  # within: kept as it is
    }

    def test_upgrade_sets_each_override_outside_its_bounds_to_the_nearest_bound(self, fresh_url: str) -> None:
        upgrade(fresh_url, "0012")
        engine = create_engine(fresh_url)
        try:
            with engine.begin() as conn:
                conn.execute(
                    text("INSERT INTO customers (code, name, created_at) VALUES ('C1', 'c', :t)"),
                    {"t": "2026-12-01 00:00:00+00:00"},
                )
                conn.execute(
                    text(
                        "INSERT INTO credit_accounts (customer_code, sale_group_code, sale_group_name,"
                        " payer_account_code, payer_account_name, status, exposure_fen, params, created_at,"
                        " updated_at, low_balance_alerted)"
                        " VALUES ('C1', 'G1', '', '', '', 'active', 0, :params, :t, :t, false)"
                    ),
                    {"params": json.dumps(self.OUT_OF_BOUNDS), "t": "2026-12-01 00:00:00+00:00"},
                )
            upgrade(fresh_url)
            with engine.connect() as conn:
                stored = conn.execute(text("SELECT params FROM credit_accounts")).scalar_one()
        finally:
            engine.dispose()
        assert json.loads(stored) == {
            "hold_ttl_s": 3600,
            "deferral_ttl_s": 2592000,
            "base_credit_limit": "1000000000000.00",
            "grade_b_min_on_time_ratio": "0.1235",
            "safety_margin": "5.00",
        }
        assert check_overrides(json.loads(stored)) == (json.loads(stored), [])
