"""GET /v1/balances/{customer_code} and the seed-compatible GET /api/haier/balance/, on the fake provider
and, wired as CREDITCTL_BALANCE_PROVIDER=haier does it, against the emulator (with /readyz reporting the
circuit breaker)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from adapters.bootstrap import Settings, bootstrap
from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.fake.clock import FakeClock
from adapters.web.app import create_app
from creditctl.services.customers import register_customer
from tests.adapters.haier_support import (
    CUSTOMER,
    EmulatorServer,
    clear_upstream_tables,
    config_document,
    known_emulator_app,
    serving,
)
from tests.api.conftest import CUSTOMER_A, CUSTOMER_B, MONEY, UTC_ISO, assert_problem

pytestmark = pytest.mark.api

SEED_FIELDS = {
    "payerAccountBalance",
    "payerAccountName",
    "saleGroupCode",
    "saleGroupName",
    "payerAccountCode",
}
COMPAT_STATUS = {
    "AUTH_FAILED": 401,
    "TOKEN_EXPIRED": 401,
    "INVALID_CREDENTIALS": 401,
    "BALANCE_QUERY_FAILED": 400,
    "UPSTREAM_TIMEOUT": 503,
    "UPSTREAM_MALFORMED": 503,
    "RATE_LIMITED": 503,
    "SERVICE_UNAVAILABLE": 503,
}


def auth(keys: dict[str, str], role: str | None) -> dict[str, str]:
    return {} if role is None else {"Authorization": f"Bearer {keys[role]}"}


def balances_of(
    client: FlaskClient, keys: dict[str, str], customer: str, role: str | None = "orders", **q: Any
):
    return client.get(f"/v1/balances/{customer}", query_string=q, headers=auth(keys, role))


def seed_answer(client: FlaskClient, keys: dict[str, str], role: str | None = "orders", **q: Any):
    return client.get("/api/haier/balance/", query_string=q, headers=auth(keys, role))


class TestBalances:
    @pytest.mark.parametrize("role", ["orders", "admin", "auditor"])
    def test_every_payer_account_with_fetched_at_and_source(
        self, client: FlaskClient, keys: dict[str, str], role: str
    ) -> None:
        r = balances_of(client, keys, CUSTOMER_A, role)
        assert r.status_code == 200, r.json
        assert r.json["customer_code"] == CUSTOMER_A
        accounts = {a["sale_group_code"]: a for a in r.json["accounts"]}
        assert set(accounts) == {"GA10", "GB20"}
        assert accounts["GA10"]["balance"] == "1000.00"
        assert accounts["GB20"]["balance"] == "100000.00"
        for a in accounts.values():
            assert MONEY.match(a["balance"])
            assert UTC_ISO.match(a["fetched_at"]), a["fetched_at"]
            assert a["source"] == "fake"
            assert a["payer_account_name"] == "Alpha Co"

    def test_without_a_key_it_is_401(self, client: FlaskClient, keys: dict[str, str]) -> None:
        assert_problem(balances_of(client, keys, CUSTOMER_A, None), 401)

    def test_a_scoped_key_sees_404_for_other_customers_as_for_unknown_ones(
        self, client: FlaskClient, keys: dict[str, str]
    ) -> None:
        assert balances_of(client, keys, CUSTOMER_A, "orders_a").status_code == 200
        other = assert_problem(balances_of(client, keys, CUSTOMER_B, "orders_a"), 404)
        unknown = assert_problem(balances_of(client, keys, "8800999999", "orders_a"), 404)
        assert (other["type"], other["title"], set(other["errors"])) == (
            unknown["type"],
            unknown["title"],
            set(unknown["errors"]),
        )
        assert_problem(balances_of(client, keys, CUSTOMER_B, "orders_a", refresh="true"), 404)

    def test_refresh_true_asks_the_provider_and_stores_what_it_says(
        self, client: FlaskClient, keys: dict[str, str], balances: FakeBalanceProvider, clock: FakeClock
    ) -> None:
        before = len(balances.calls)
        assert balances_of(client, keys, CUSTOMER_A).status_code == 200
        assert len(balances.calls) == before  # a young snapshot: not asked
        balances.set_balance(CUSTOMER_A, "GA10", "1234.56")
        clock.advance(30)
        r = balances_of(client, keys, CUSTOMER_A, refresh="true")
        assert r.status_code == 200
        assert balances.calls[before:] == [CUSTOMER_A]
        ga10 = next(a for a in r.json["accounts"] if a["sale_group_code"] == "GA10")
        assert ga10["balance"] == "1234.56"
        assert ga10["fetched_at"].startswith(clock.now().isoformat()[:19])

    def test_an_auditor_may_read_but_not_refresh(
        self,
        client: FlaskClient,
        keys: dict[str, str],
        balances: FakeBalanceProvider,
        db_state: Callable[[], Any],
    ) -> None:
        before, asked = db_state(), len(balances.calls)
        problem = assert_problem(balances_of(client, keys, CUSTOMER_A, "auditor", refresh="true"), 403)
        assert "orders or admin" in problem["detail"]
        assert len(balances.calls) == asked and db_state() == before
        assert balances_of(client, keys, CUSTOMER_A, "auditor", refresh="false").status_code == 200
        assert balances_of(client, keys, CUSTOMER_A, "admin", refresh="true").status_code == 200
        assert balances.calls[asked:] == [CUSTOMER_A]

    @pytest.mark.parametrize(
        ("code", "status"),
        [("UPSTREAM_TIMEOUT", 504), ("CIRCUIT_OPEN", 503), ("RATE_LIMITED", 503), ("AUTH_FAILED", 502)],
    )
    def test_a_failed_refresh_is_a_problem_naming_the_upstream_code(
        self, client: FlaskClient, keys: dict[str, str], balances: FakeBalanceProvider, code: str, status: int
    ) -> None:
        balances.fail_with(code)
        problem = assert_problem(balances_of(client, keys, CUSTOMER_A, refresh="true"), status, "upstream")
        assert problem["errors"]["upstream"] == [code]
        balances.fail_with(None)
        assert balances_of(client, keys, CUSTOMER_A).json["accounts"][0]["balance"] in (
            "1000.00",
            "100000.00",
        )


class TestSeedCompatible:
    def test_the_seed_answer_for_a_sales_group(self, client: FlaskClient, keys: dict[str, str]) -> None:
        r = seed_answer(client, keys, customer_code=CUSTOMER_A, sale_group_code="GB20")
        assert r.status_code == 200
        assert r.json["success"] is True
        data = r.json["data"]
        assert set(data) >= SEED_FIELDS
        assert data["saleGroupCode"] == "GB20"
        assert data["saleGroupName"] == "Fridge"
        assert data["payerAccountCode"] == "P1"
        assert data["payerAccountName"] == "Alpha Co"
        assert data["payerAccountBalance"] == "100000.00"
        assert {a["saleGroupCode"] for a in r.json["accounts"]} == {"GA10", "GB20"}
        assert all(set(a) >= SEED_FIELDS for a in r.json["accounts"])

    def test_without_a_sales_group_the_first_account_is_data(
        self, client: FlaskClient, keys: dict[str, str]
    ) -> None:
        r = seed_answer(client, keys, customer_code=CUSTOMER_B)
        assert r.status_code == 200
        assert r.json["data"]["saleGroupCode"] == "GA10"
        assert r.json["data"]["payerAccountBalance"] == "5000.00"

    def test_unknown_customer_other_customer_and_unknown_sales_group(
        self, client: FlaskClient, keys: dict[str, str]
    ) -> None:
        for role, customer in (("orders", "8800999999"), ("orders_a", CUSTOMER_B)):
            r = seed_answer(client, keys, role, customer_code=customer)
            assert r.status_code == 404
            assert r.json == {
                "success": False,
                "error": f"unknown customer '{customer}'",
                "code": "UNKNOWN_CUSTOMER",
            }
        r = seed_answer(client, keys, customer_code=CUSTOMER_A, sale_group_code="ZZ99")
        assert r.status_code == 404
        assert r.json["success"] is False and r.json["code"] == "UNKNOWN_SALE_GROUP"
        assert "ZZ99" in r.json["error"]

    @pytest.mark.parametrize(("code", "status"), sorted(COMPAT_STATUS.items()))
    def test_an_upstream_failure_answers_success_false_with_the_status_of_its_code(
        self,
        client: FlaskClient,
        keys: dict[str, str],
        balances: FakeBalanceProvider,
        clock: FakeClock,
        code: str,
        status: int,
    ) -> None:
        clock.advance(301)  # older than refresh_after_s: the seed answer asks the upstream
        balances.fail_with(code)
        r = seed_answer(client, keys, customer_code=CUSTOMER_A, sale_group_code="GA10")
        assert r.status_code == status
        assert r.json["success"] is False
        assert set(r.json) == {"success", "error", "code"}
        assert r.json["code"] == code
        assert isinstance(r.json["error"], str) and r.json["error"]

    def test_a_young_snapshot_is_answered_without_asking(
        self, client: FlaskClient, keys: dict[str, str], balances: FakeBalanceProvider
    ) -> None:
        balances.fail_with("SERVICE_UNAVAILABLE")
        r = seed_answer(client, keys, customer_code=CUSTOMER_A, sale_group_code="GA10")
        assert r.status_code == 200 and r.json["data"]["payerAccountBalance"] == "1000.00"


# -- wired for haier, against the emulator --------------------------------------------------------------


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with serving(known_emulator_app()) as server:
        yield server


@pytest.fixture
def haier_client(
    sqlite_engine: Engine, clock: FakeClock, tmp_path: Path, keys: dict[str, str]
) -> Iterator[FlaskClient]:
    settings = Settings(
        instance_path=tmp_path / "haier-instance",
        database_url=str(sqlite_engine.url),
        balance_provider="haier",
        allow_loopback_urls=True,
    )
    ctx = bootstrap(settings, clock=clock, engine=sqlite_engine, database_clock=clock)
    register_customer(CUSTOMER, uow=ctx.uow(), clock=clock)
    yield create_app(ctx, {"TESTING": True}).test_client()
    clear_upstream_tables(sqlite_engine)


@pytest.fixture
def other_instance(
    sqlite_engine: Engine, clock: FakeClock, tmp_path: Path, haier_client: FlaskClient
) -> FlaskClient:
    """A second instance (another worker process, another machine) on the same database: its own
    circuit breaker, the same shared upstream state."""
    settings = Settings(
        instance_path=tmp_path / "haier-instance",
        database_url=str(sqlite_engine.url),
        balance_provider="haier",
        allow_loopback_urls=True,
    )
    ctx = bootstrap(settings, clock=clock, engine=sqlite_engine, database_clock=clock)
    return create_app(ctx, {"TESTING": True}).test_client()


class TestWiredForHaier:
    def test_readyz_reports_unconfigured_before_any_config(self, haier_client: FlaskClient) -> None:
        r = haier_client.get("/readyz")
        assert r.status_code == 200
        assert r.json["upstream"]["haier_breaker"] == "unconfigured"

    def test_balances_come_from_the_emulator_and_readyz_follows_the_breaker(
        self, haier_client: FlaskClient, keys: dict[str, str], emulator: EmulatorServer, clock: FakeClock
    ) -> None:
        put = haier_client.put(
            "/v1/admin/haier/configs/emu", json=config_document(emulator.url), headers=auth(keys, "admin")
        )
        assert put.status_code == 200, put.json
        assert haier_client.get("/readyz").json["upstream"]["haier_breaker"] == "closed"

        r = balances_of(haier_client, keys, CUSTOMER, refresh="true")
        assert r.status_code == 200, r.json
        accounts = {a["sale_group_code"]: a for a in r.json["accounts"]}
        assert accounts["1002"]["balance"] == "38000.50"
        assert accounts["1001"]["source"] == "haier:emu"
        seed = seed_answer(haier_client, keys, customer_code=CUSTOMER, sale_group_code="1002")
        assert seed.json["success"] is True and seed.json["data"]["payerAccountBalance"] == "38000.50"
        assert emulator.stats()["token_calls"] == 1

        emulator.fault("503", target="all")
        clock.advance(60)
        failed = balances_of(haier_client, keys, CUSTOMER, refresh="true")
        assert_problem(failed, 503, "upstream")
        assert haier_client.get("/readyz").json["upstream"]["haier_breaker"] == "open"
        calls = emulator.stats()["balance_calls"]
        clock.advance(301)
        seed = seed_answer(haier_client, keys, customer_code=CUSTOMER, sale_group_code="1001")
        assert seed.status_code == 503
        assert seed.json["code"] == "CIRCUIT_OPEN"
        assert emulator.stats()["balance_calls"] == calls  # an open breaker sends nothing
        for r in (put, failed, seed):
            assert not re.search(r"KNOWN", r.get_data(as_text=True))

    def test_readyz_tells_this_process_breaker_from_what_every_instance_saw(
        self,
        haier_client: FlaskClient,
        other_instance: FlaskClient,
        keys: dict[str, str],
        emulator: EmulatorServer,
        clock: FakeClock,
    ) -> None:
        put = haier_client.put(
            "/v1/admin/haier/configs/emu", json=config_document(emulator.url), headers=auth(keys, "admin")
        )
        assert put.status_code == 200, put.json
        quiet = other_instance.get("/readyz").json
        # up; the test customers' seeded answers (stored as every provider answer is) may be its last outcome
        assert quiet["shared_upstream"]["state"] == "up"
        assert quiet["shared_upstream"]["last_outcome"] in (None, "success")

        assert balances_of(haier_client, keys, CUSTOMER, refresh="true").status_code == 200
        clock.advance(5)
        ok = other_instance.get("/readyz").json["shared_upstream"]
        assert (ok["state"], ok["last_outcome"], ok["last_outcome_age_s"]) == ("up", "success", 5.0)

        emulator.fault("503", target="all")
        for _ in range(3):  # the shared state is down after 3 failed fetches (its breaker opens sooner)
            clock.advance(60)
            assert balances_of(haier_client, keys, CUSTOMER, refresh="true").status_code == 503
        clock.advance(2)

        ready = other_instance.get("/readyz")
        assert ready.status_code == 200  # this instance can still serve: stored snapshots, deferrals
        mine, shared = ready.json["upstream"], ready.json["shared_upstream"]
        assert mine["haier_breaker"] == "closed" and mine["scope"].startswith("this process (pid ")
        assert shared["scope"] == "every instance (from the database)"
        assert shared["state"] == "down" and shared["consecutive_failures"] >= 3
        assert shared["last_error"] == "CIRCUIT_OPEN"  # the first instance's breaker stopped sending
        assert shared["last_outcome"] == "failure" and shared["last_outcome_age_s"] == 2.0
        assert re.fullmatch(UTC_ISO, shared["last_outcome_at"])
        assert re.fullmatch(UTC_ISO, shared["state_since"])
        assert haier_client.get("/readyz").json["upstream"]["haier_breaker"] == "open"
