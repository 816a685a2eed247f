"""A config change takes effect on every instance at its next upstream call: two instances on one
database, one changes the active Haier config, the other's very next balance request uses it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from adapters.bootstrap import Settings, bootstrap
from adapters.fake.clock import FakeClock
from adapters.haier.active_config_provider import ActiveConfigHaierProvider
from adapters.haier.token_store import InMemoryTokenStore
from adapters.sql.tables import upstream_tokens
from creditctl.ports.balance_provider import BalanceUnavailable
from creditctl.services.context import AppContext
from creditctl.services.customers import ensure_known
from creditctl.services.upstream_configs import put_config
from tests.adapters.haier_support import (
    CUSTOMER,
    CUSTOMER_2,
    FALLBACK_PASSWORD,
    KEY_A,
    EmulatorServer,
    clear_upstream_tables,
    config_document,
    known_emulator_app,
    serving,
)

pytestmark = pytest.mark.adapters


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with serving(known_emulator_app()) as server:
        yield server


def instance(engine: Engine, tmp_path: Path, name: str, clock: FakeClock) -> AppContext:
    settings = Settings(
        instance_path=tmp_path / name,
        database_url=str(engine.url),
        balance_provider="haier",
        allow_loopback_urls=True,
        secret_keys=(KEY_A,),
    )
    return bootstrap(settings, clock=clock, engine=engine, database_clock=clock)


def configure(ctx: AppContext, document: dict[str, Any]) -> None:
    tools = ctx.upstream_configs
    assert tools is not None
    put_config(
        "main",
        document,
        kind=tools.kind,
        validate=tools.validate,
        redact=tools.redact,
        uow=ctx.uow(),
        box=tools.box,
        clock=ctx.clock,
    )


@pytest.fixture
def two_instances(sqlite_engine: Engine, tmp_path: Path) -> Iterator[tuple[AppContext, AppContext]]:
    clock = FakeClock()  # the same instant for every write: the change must be seen all the same
    yield instance(sqlite_engine, tmp_path, "a", clock), instance(sqlite_engine, tmp_path, "b", clock)
    clear_upstream_tables(sqlite_engine)


class TestTwoInstancesOnOneDatabase:
    def test_a_customer_added_on_one_instance_is_served_by_the_other_at_once(
        self, two_instances: tuple[AppContext, AppContext], emulator: EmulatorServer
    ) -> None:
        writer, reader = two_instances
        configure(writer, config_document(emulator.url))
        assert reader.balances.customers() == [CUSTOMER]
        assert len(reader.balances.fetch(CUSTOMER, timeout_s=5).accounts) == 2
        assert (
            ensure_known(CUSTOMER_2, uow=reader.uow(), balances=reader.balances, now=reader.clock.now())
            is False
        )

        configure(
            writer,
            config_document(
                emulator.url,
                client_secret="set",
                customer_password="set",
                customers={CUSTOMER: "set", CUSTOMER_2: FALLBACK_PASSWORD},
            ),
        )

        assert reader.balances.customers() == [CUSTOMER, CUSTOMER_2]
        report = reader.balances.fetch(CUSTOMER_2, timeout_s=5)
        assert [str(a.amount) for a in report.accounts] == ["-1520.75"]
        assert ensure_known(CUSTOMER_2, uow=reader.uow(), balances=reader.balances, now=reader.clock.now())

    def test_a_removed_customer_is_refused_by_the_other_instance_at_once(
        self, two_instances: tuple[AppContext, AppContext], emulator: EmulatorServer
    ) -> None:
        writer, reader = two_instances
        both = config_document(emulator.url, customers={CUSTOMER: "x", CUSTOMER_2: "y"})
        del both["customer_password"]  # no fallback password: only the listed customers are served
        configure(writer, both)
        assert reader.balances.customers() == [CUSTOMER, CUSTOMER_2]
        one = config_document(emulator.url)
        del one["customer_password"]
        configure(writer, one)
        assert reader.balances.customers() == [CUSTOMER]
        with pytest.raises(BalanceUnavailable) as refused:
            reader.balances.fetch(CUSTOMER_2, timeout_s=5)
        assert refused.value.code == "UNKNOWN_CUSTOMER"

    def test_the_token_is_dropped_and_fetched_anew_after_a_change(
        self,
        two_instances: tuple[AppContext, AppContext],
        emulator: EmulatorServer,
        sqlite_engine: Engine,
    ) -> None:
        writer, reader = two_instances
        configure(writer, config_document(emulator.url))
        reader.balances.fetch(CUSTOMER, timeout_s=5)
        assert emulator.stats()["token_calls"] == 1
        configure(
            writer,
            config_document(
                emulator.url,
                client_secret="set",
                customer_password="set",
                customers={CUSTOMER: "set"},
                rate_limit_per_s=10,
            ),
        )
        with sqlite_engine.connect() as conn:
            assert conn.execute(select(upstream_tokens)).first() is None
        reader.clock.advance(5)  # past the shared report's reuse window
        reader.balances.fetch(CUSTOMER, timeout_s=5)
        assert emulator.stats()["token_calls"] == 2


class TestVersionCheck:
    def test_the_config_is_opened_again_only_when_its_version_changed(self) -> None:
        version = ["v1"]
        loads: list[str] = []

        def load_active() -> None:
            loads.append(version[0])
            return None

        provider = ActiveConfigHaierProvider(
            load_active,
            load_version=lambda: version[0],
            token_store=InMemoryTokenStore(),
            clock=FakeClock(),
        )
        for _ in range(3):
            assert provider.customers() == []
        assert loads == ["v1"]
        version[0] = "v2"
        with pytest.raises(BalanceUnavailable, match="no active Haier config"):
            provider.fetch(CUSTOMER, timeout_s=1)
        assert loads == ["v1", "v2"]
