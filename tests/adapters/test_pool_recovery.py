"""The engine's pool after the database went away and came back: a process that was idle during the outage
still holds connections to the server that is gone; the first request after the return must not fail on
one of them. Idle connections are pinged before use (adapters/sql/engine.py::ping_idle_connections),
busy ones are not (no round trip on the hot path)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text

from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.fake.clock import FakeClock
from adapters.sql.engine import make_engine
from adapters.sql.migrate import upgrade
from adapters.web.app import create_app
from creditctl.services.api_keys import create_api_key
from tests.conftest import make_context
from tests.private_postgres import private_postgres

pytestmark = pytest.mark.adapters


@pytest.mark.postgres
def test_the_first_request_after_postgres_came_back_is_answered(tmp_path: Path) -> None:
    with private_postgres() as pg:
        upgrade(pg.url)
        engine = make_engine(pg.url)
        clock = FakeClock()
        context = make_context(engine, FakeBalanceProvider({}, clock=clock), clock, tmp_path)
        secret = create_api_key(
            name="k", role="orders", customers=None, uow=context.uow(), clock=clock
        ).secret
        client = create_app(context, {"TESTING": True}).test_client()
        auth = {"Authorization": f"Bearer {secret}"}
        assert client.get("/v1/decisions/order-1", headers=auth).status_code == 404  # pooled, working

        pg.stop()  # nothing in this process notices: its pooled connections now lead nowhere
        time.sleep(1.0)
        pg.start()
        back = time.monotonic()

        r = client.get("/v1/decisions/order-1", headers=auth)  # the first use after the return
        assert r.status_code == 404, r.get_data(as_text=True)
        print(f"answered {time.monotonic() - back:.2f} s after PostgreSQL was back, at the first try")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
        engine.dispose()


def test_a_connection_in_use_is_not_pinged_and_an_idle_one_is(tmp_path: Path) -> None:
    from adapters.sql.engine import ping_idle_connections  # here: the module's first test runs on main

    engine = make_engine(f"sqlite:///{tmp_path / 'ping.db'}", pool_size=1, max_overflow=0)
    ping_idle_connections(engine, idle_s=0.3)
    pings: list[object] = []
    real_ping = engine.dialect.do_ping
    engine.dialect.do_ping = lambda conn: pings.append(conn) or real_ping(conn)  # type: ignore[method-assign]
    for _ in range(20):  # one pooled connection, checked out again and again at once
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    assert pings == []
    time.sleep(0.4)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert len(pings) == 1
    engine.dispose()
