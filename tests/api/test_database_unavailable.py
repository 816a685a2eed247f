"""The database away, in process: every API answer is 503 problem+json with Retry-After (the seed's
balance endpoint keeps its own shape, the console its own page), /readyz says so, /healthz does not care;
and only a database that cannot be reached is 503: a refused statement stays a 500."""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors
import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.fake.clock import FakeClock
from adapters.sql.engine import make_engine
from adapters.web.app import create_app
from creditctl.services.api_keys import create_api_key
from tests.api.conftest import CUSTOMER_A, assert_problem, order
from tests.conftest import make_context

pytestmark = pytest.mark.api

UNAVAILABLE = "https://creditctl.dev/problems/unavailable/database"
SOME_KEY = {"Authorization": "Bearer cck_somebodys-key-the-service-cannot-look-up"}
# What a client may call; each needs the database (the key, then the data).
CALLS = [
    ("POST", "/v1/decisions", order("order-db-away-1")),
    ("GET", "/v1/decisions/order-db-away-1", None),
    ("POST", "/v1/decisions/order-db-away-1/release", None),
    ("GET", f"/v1/accounts/{CUSTOMER_A}/GB20", None),
    ("GET", "/v1/customers", None),
]


def closed_port() -> int:
    """A loopback port nobody listens on (bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def app_on(engine: Engine, tmp_path: Path) -> Any:
    clock = FakeClock()
    context = make_context(engine, FakeBalanceProvider({}, clock=clock), clock, tmp_path)
    return create_app(context, {"TESTING": True})


@pytest.fixture
def away(tmp_path: Path) -> Iterator[FlaskClient]:
    """The app of an instance whose PostgreSQL is not running (nothing listens on its port)."""
    engine = make_engine(f"postgresql+psycopg://creditctl@127.0.0.1:{closed_port()}/creditctl")
    yield app_on(engine, tmp_path).test_client()
    engine.dispose()


def assert_database_unavailable(r: Any) -> dict[str, Any]:
    body = assert_problem(r, 503)
    assert body["type"] == UNAVAILABLE, body
    assert body["title"] == "Database unavailable"
    assert re.fullmatch(r"[1-9]", r.headers.get("Retry-After", "")), r.headers  # a few seconds
    return body


class TestTheDatabaseAway:
    @pytest.mark.parametrize(("method", "path", "body"), CALLS, ids=[f"{m} {p}" for m, p, _ in CALLS])
    def test_every_call_answers_503_problem_with_retry_after(self, away, method, path, body):
        r = away.open(path, method=method, json=body, headers=SOME_KEY)
        assert_database_unavailable(r)

    def test_readiness_says_the_database_is_failing_and_liveness_stays_ok(self, away):
        ready = away.get("/readyz")
        assert ready.status_code == 503
        assert ready.json["checks"]["database"] == "failing"
        assert ready.json["status"] == "not ready"
        assert away.get("/healthz").status_code == 200

    def test_the_seed_balance_answer_keeps_its_shape(self, away):
        r = away.get(f"/api/haier/balance/?customer_code={CUSTOMER_A}", headers=SOME_KEY)
        assert r.status_code == 503
        assert r.mimetype == "application/json"
        assert r.json == {"success": False, "error": r.json["error"], "code": "SERVICE_UNAVAILABLE"}
        assert "database" in r.json["error"]
        assert re.fullmatch(r"[1-9]", r.headers.get("Retry-After", ""))

    def test_the_console_answers_its_own_503_page(self, away):
        form = away.get("/console/sign-in")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.get_data(as_text=True))
        assert token is not None
        r = away.post("/console/sign-in", data={"api_key": "cck_x", "csrf_token": token.group(1)})
        assert r.status_code == 503
        assert r.mimetype == "text/html"
        assert "Database unavailable" in r.get_data(as_text=True)
        assert r.headers.get("Retry-After")


def test_a_database_that_accepts_but_never_answers_is_503_within_the_connect_timeout(tmp_path):
    """A server that takes the TCP connection and then says nothing (a host gone mid-failover, a full
    backlog): without a connect timeout libpq waits for ever, and so does every request."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # never accepted: the kernel completes the handshake, nobody answers
    engine = make_engine(f"postgresql+psycopg://creditctl@127.0.0.1:{listener.getsockname()[1]}/creditctl")
    client = app_on(engine, tmp_path).test_client()
    answers: list[Any] = []
    started = time.monotonic()
    caller = threading.Thread(target=lambda: answers.append(client.get("/readyz")), daemon=True)
    caller.start()
    caller.join(timeout=30)
    elapsed = time.monotonic() - started
    listener.close()
    print(f"/readyz answered after {elapsed:.1f} s against a database that never answers")
    assert answers, "no answer within 30 s: the connection attempt waits for ever"
    assert answers[0].status_code == 503
    engine.dispose()


def test_a_pool_with_no_connection_to_spare_is_503_not_500(sqlite_template, tmp_path):
    """Every pooled connection busy past the pool's timeout: the request cannot reach the database."""
    path = tmp_path / "pool.db"
    shutil.copy(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}", pool_size=1, max_overflow=0, pool_timeout=0.2)
    clock = FakeClock()
    context = make_context(engine, FakeBalanceProvider({}, clock=clock), clock, tmp_path)
    secret = create_api_key(name="k", role="orders", customers=None, uow=context.uow(), clock=clock).secret
    client = create_app(context, {"TESTING": True}).test_client()
    with engine.connect():  # the only connection, held
        r = client.get("/v1/decisions/order-x", headers={"Authorization": f"Bearer {secret}"})
    assert_database_unavailable(r)
    engine.dispose()


class TestOnlyAnUnreachableDatabaseIs503:
    def test_a_database_without_its_tables_is_a_500(self, tmp_path):
        """SQLite says "no such table" with an OperationalError: a broken install, not an outage."""
        engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
        r = app_on(engine, tmp_path).test_client().post("/v1/decisions", json=order(), headers=SOME_KEY)
        body = assert_problem(r, 500)
        assert body["type"].endswith("/internal")
        engine.dispose()

    @pytest.mark.parametrize(
        "exc",
        [
            OperationalError("SELECT 1", {}, psycopg.errors.AdminShutdown("terminating connection")),
            OperationalError("SELECT 1", {}, psycopg.OperationalError("connection failed: refused")),
            OperationalError("SELECT 1", {}, psycopg.errors.CannotConnectNow("the database is starting up")),
            OperationalError("SELECT 1", {}, psycopg.errors.ConnectionFailure("connection failure")),
            OperationalError("SELECT 1", {}, psycopg.errors.TooManyConnections("too many clients")),
            InterfaceError("SELECT 1", {}, psycopg.InterfaceError("the connection is closed")),
            DBAPIError("SELECT 1", {}, Exception("lost"), connection_invalidated=True),
            PoolTimeout("QueuePool limit of size 10 overflow 20 reached"),
        ],
        ids=lambda e: f"{type(e).__name__}({type(getattr(e, 'orig', None)).__name__})",
    )
    def test_connection_level_errors_are_the_database_unavailable(self, exc):
        from adapters.web.errors import database_unavailable  # here: the module runs on main, without it

        assert database_unavailable(exc)

    @pytest.mark.parametrize(
        "exc",
        [
            IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("duplicate key")),
            ProgrammingError("SELECT", {}, psycopg.errors.UndefinedTable("no such relation")),
            OperationalError("UPDATE", {}, psycopg.errors.SerializationFailure("could not serialize")),
            OperationalError("SELECT", {}, psycopg.errors.QueryCanceled("statement timeout")),
            OperationalError("SELECT", {}, psycopg.errors.DeadlockDetected("deadlock detected")),
            ValueError("not a database error"),
        ],
        ids=lambda e: f"{type(e).__name__}({type(getattr(e, 'orig', None)).__name__})",
    )
    def test_refused_statements_stay_what_they_are(self, exc):
        from adapters.web.errors import database_unavailable

        assert not database_unavailable(exc)
