"""A Haier balance that is not exact money ("1000.005") is UPSTREAM_MALFORMED end to end: the decision is
deferred naming that code (never a 500, never an approval), and nothing is stored from that answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from flask.testing import FlaskClient
from sqlalchemy import Engine

from adapters.fake.clock import FakeClock
from adapters.haier.balance_provider import HaierBalanceProvider
from adapters.haier.token_store import InMemoryTokenStore
from adapters.web.app import create_app
from creditctl.services.api_keys import create_api_key
from creditctl.services.customers import register_customer
from tests.adapters.haier.conftest import (
    BALANCE_URL,
    CUSTOMER,
    ENTRIES,
    TOKEN_URL,
    make_config,
)
from tests.api.conftest import assert_problem
from tests.conftest import make_context
from tests.random_refs import random_order_id

pytestmark = pytest.mark.api


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(TOKEN_URL, json={"access_token": "tok-1", "token_type": "bearer", "expires_in": 3600})
        yield rsps


@pytest.fixture
def haier(sqlite_engine: Engine, clock: FakeClock, tmp_path: Path) -> tuple[FlaskClient, dict[str, str]]:
    provider = HaierBalanceProvider(
        make_config(), token_store=InMemoryTokenStore(), config_name="main", clock=clock
    )
    context = make_context(sqlite_engine, provider, clock, tmp_path)  # type: ignore[arg-type]
    register_customer(CUSTOMER, uow=context.uow(), clock=clock)  # decisions do not register (yet)
    headers = {}
    for role in ("orders", "auditor"):
        secret = create_api_key(name=role, role=role, customers=None, uow=context.uow(), clock=clock).secret
        headers[role] = f"Bearer {secret}"
    return create_app(context, {"TESTING": True}).test_client(), headers


def answer(rsps: responses.RequestsMock, balance: str) -> None:
    entries = [ENTRIES[0], {**ENTRIES[1], "payerAccountBalance": balance}]
    rsps.upsert(responses.POST, BALANCE_URL, json={"success": True, "code": "success", "data": entries})


def decide(client: FlaskClient, headers: dict[str, str], group: str = "1002") -> Any:
    body = {
        "order_id": random_order_id("odd"),
        "customer_code": CUSTOMER,
        "sale_group_code": group,
        "amount": "100.00",
    }
    return client.post("/v1/decisions", json=body, headers={"Authorization": headers["orders"]})


class TestThreeDecimalBalance:
    def test_a_decision_is_deferred_with_upstream_malformed_and_nothing_stored(
        self, haier: tuple[FlaskClient, dict[str, str]], mocked: responses.RequestsMock, clock: FakeClock
    ) -> None:
        client, headers = haier
        mocked.post(BALANCE_URL, json={"success": True, "data": ENTRIES})
        first = decide(client, headers)
        assert first.status_code == 201 and first.json["outcome"] == "approve", first.json  # 38000.50
        clock.advance(3600)  # past max_balance_age_s: the stored balance may not stand in
        answer(mocked, "1000.005")

        r = decide(client, headers)
        assert r.status_code == 201, r.get_data(as_text=True)
        assert r.json["outcome"] == "defer" and r.json["hold"] is None
        upstream = [x["reason"] for x in r.json["reasons"] if x["rule"] == "upstream"]
        assert upstream == ["UPSTREAM_MALFORMED"], r.json["reasons"]
        account = client.get(f"/v1/accounts/{CUSTOMER}/1002", headers={"Authorization": headers["auditor"]})
        assert account.json["balance"]["amount"] == "38000.50"  # the old snapshot, untouched

    def test_a_refresh_is_a_problem_naming_upstream_malformed(
        self, haier: tuple[FlaskClient, dict[str, str]], mocked: responses.RequestsMock
    ) -> None:
        client, headers = haier
        answer(mocked, "1000.005")
        r = client.get(
            f"/v1/balances/{CUSTOMER}",
            query_string={"refresh": "true"},
            headers={"Authorization": headers["orders"]},
        )
        problem = assert_problem(r, 502, "upstream")
        assert "UPSTREAM_MALFORMED" in repr(problem)
        listed = client.get(f"/v1/balances/{CUSTOMER}", headers={"Authorization": headers["auditor"]})
        assert listed.json["accounts"] == []  # nothing stored from that answer
