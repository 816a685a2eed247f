"""A pooled PostgreSQL connection whose server vanished without a word is found dead within seconds, not
hours: the engine turns on TCP keepalive probes for every connection (adapters/sql/engine.py TCP_OPTIONS),
which the kernel then sends; the socket options say so. No bound on unacknowledged data: that would cut a
live connection whose server is not reading (a large insert waiting on a lock)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from adapters.sql.engine import TCP_OPTIONS, make_engine

pytestmark = [pytest.mark.adapters, pytest.mark.postgres]


def _socket_options(engine: Engine) -> dict[str, int]:
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        assert driver is not None
        sock = socket.socket(fileno=driver.pgconn.socket)
        try:
            return {
                "keepalive": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                "idle_s": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                "interval_s": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                "probes": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                "unacknowledged_ms": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
            }
        finally:
            sock.detach()  # libpq's socket: not ours to close
    finally:
        raw.close()


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    made: list[Engine] = []
    yield made
    for engine in made:
        engine.dispose()


def test_every_connection_probes_a_silent_server_and_leaves_unread_data_alone(
    postgres_url: str, engines: list[Engine]
) -> None:
    engine = make_engine(postgres_url)
    engines.append(engine)
    assert _socket_options(engine) == {
        "keepalive": 1,
        "idle_s": TCP_OPTIONS["keepalives_idle"],
        "interval_s": TCP_OPTIONS["keepalives_interval"],
        "probes": TCP_OPTIONS["keepalives_count"],
        "unacknowledged_ms": 0,  # the kernel's own retransmission limits
    }


def test_an_option_in_the_database_url_wins(postgres_url: str, engines: list[Engine]) -> None:
    joiner = "&" if "?" in postgres_url else "?"
    engine = make_engine(f"{postgres_url}{joiner}keepalives_idle=60&tcp_user_timeout=120000")
    engines.append(engine)
    options = _socket_options(engine)
    assert options["idle_s"] == 60 and options["unacknowledged_ms"] == 120_000
    assert options["interval_s"] == TCP_OPTIONS["keepalives_interval"]  # the others as the engine sets them
