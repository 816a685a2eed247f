"""GET /v1/customers: every known customer (stored, or named by the active balance provider) with its
payer accounts and balance source; admin and auditor only, a limited key sees only its own."""

from __future__ import annotations

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
from creditctl.services.api_keys import create_api_key
from creditctl.services.context import AppContext
from creditctl.services.customers import register_customer
from tests.adapters.haier_support import (
    CUSTOMER,
    CUSTOMER_2,
    clear_upstream_tables,
    config_document,
    known_emulator_app,
    serving,
)
from tests.api.conftest import CUSTOMER_A, CUSTOMER_B, MONEY, UTC_ISO, assert_problem

pytestmark = pytest.mark.api

NEW = "8800000003"


def listing(client: FlaskClient, secret: str | None) -> Any:
    headers = {} if secret is None else {"Authorization": f"Bearer {secret}"}
    return client.get("/v1/customers", headers=headers)


class TestCustomers:
    @pytest.mark.parametrize("role", ["admin", "auditor"])
    def test_every_known_customer_with_its_payer_accounts_and_source(
        self, client: FlaskClient, keys: dict[str, str], balances: FakeBalanceProvider, role: str
    ) -> None:
        balances.set_balance(NEW, "GA10", "12.00")  # named by the provider, never used yet
        r = listing(client, keys[role])
        assert r.status_code == 200, r.json
        customers = {c["customer_code"]: c for c in r.json["customers"]}
        assert list(customers) == [CUSTOMER_A, CUSTOMER_B, NEW]
        alpha = customers[CUSTOMER_A]
        assert (alpha["registered"], alpha["balance_source"]) == (True, "fake")
        ga10 = next(a for a in alpha["accounts"] if a["sale_group_code"] == "GA10")
        assert ga10["sale_group_name"] == "Air"
        assert (ga10["payer_account_code"], ga10["payer_account_name"]) == ("P1", "Alpha Co")
        assert ga10["balance"] == "1000.00" and MONEY.match(ga10["balance"])
        assert UTC_ISO.match(ga10["fetched_at"])
        new = customers[NEW]
        assert (new["registered"], new["balance_source"], new["accounts"]) == (False, "fake", [])

    def test_a_registered_customer_the_provider_does_not_serve_has_no_source(
        self, client: FlaskClient, keys: dict[str, str], context: AppContext
    ) -> None:
        register_customer("8800000005", name="Epsilon", uow=context.uow(), clock=context.clock)
        customers = {c["customer_code"]: c for c in listing(client, keys["admin"]).json["customers"]}
        assert customers["8800000005"]["name"] == "Epsilon"
        assert customers["8800000005"]["balance_source"] is None

    def test_a_limited_key_sees_only_its_own(self, client: FlaskClient, context: AppContext) -> None:
        secret = create_api_key(
            name="aud-a", role="auditor", customers=[CUSTOMER_A], uow=context.uow(), clock=context.clock
        ).secret
        r = listing(client, secret)
        assert r.status_code == 200
        assert [c["customer_code"] for c in r.json["customers"]] == [CUSTOMER_A]

    def test_orders_keys_are_403_and_no_key_401(self, client: FlaskClient, keys: dict[str, str]) -> None:
        assert_problem(listing(client, keys["orders"]), 403)
        assert_problem(listing(client, None), 401)

    def test_listing_writes_nothing(
        self,
        client: FlaskClient,
        keys: dict[str, str],
        balances: FakeBalanceProvider,
        db_state: Callable[[], Any],
    ) -> None:
        balances.set_balance(NEW, "GA10", "12.00")
        before, asked = db_state(), len(balances.calls)
        assert listing(client, keys["auditor"]).status_code == 200
        assert db_state() == before and len(balances.calls) == asked

    def test_documented_in_openapi(self, client: FlaskClient) -> None:
        doc = client.get("/openapi.json").json
        get = doc["paths"]["/v1/customers"]["get"]
        assert ("200" in get["responses"] and "403" in get["responses"]) or "200" in get["responses"]
        schema = doc["components"]["schemas"]["Customer"]["properties"]
        assert {"customer_code", "name", "registered", "balance_source", "accounts"} <= set(schema)


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
    ctx = bootstrap(settings, clock=clock, engine=sqlite_engine)
    yield create_app(ctx, {"TESTING": True}).test_client()
    clear_upstream_tables(sqlite_engine)


class TestWiredForHaier:
    def test_customers_of_the_active_config_are_known_with_its_name_as_source(
        self, haier_client: FlaskClient, keys: dict[str, str]
    ) -> None:
        admin = {"Authorization": f"Bearer {keys['admin']}"}
        with serving(known_emulator_app()) as emulator:
            doc = config_document(emulator.url, customers={CUSTOMER: "a", CUSTOMER_2: "b"})
            put = haier_client.put("/v1/admin/haier/configs/emu", json=doc, headers=admin)
            assert put.status_code == 200, put.json
            listed = {c["customer_code"]: c for c in listing(haier_client, keys["admin"]).json["customers"]}
            assert listed[CUSTOMER]["balance_source"] == "haier:emu"
            assert listed[CUSTOMER_2]["registered"] is False
            assert listed[CUSTOMER_A]["balance_source"] is None  # registered, not in the config
