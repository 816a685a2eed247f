"""API test helpers: a small client that speaks the contract, problem+json checks, and a database
snapshot to prove that a refused request changed nothing."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, text
from werkzeug.test import TestResponse

from creditctl.services.context import AppContext
from tests.random_refs import random_order_id

CUSTOMER_A = "8800000001"
CUSTOMER_B = "8800000002"
PROBLEM_FIELDS = {"type", "title", "status", "detail", "errors", "request_id"}
MONEY = re.compile(r"^-?\d+\.\d{2}$")
UTC_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(\+00:00|Z)$")
# Every table a request could write to; api_keys and rule_sets included so that nothing slips by.
# The SQL adapter stamps updated_at with the wall clock whenever it saves an account, also when a refused
# settle/release commits the (unchanged) account it had locked: bookkeeping, not state.
BOOKKEEPING = {"updated_at"}
TABLES = (
    "customers",
    "credit_accounts",
    "decisions",
    "holds",
    "hold_settlements",
    "outbox",
    "api_keys",
    "rule_sets",
    "payments",
    "payment_changes",
    "balance_history",
    "credit_profile_changes",
    "credit_limit_requests",
    "rule_set_assignments",
    "freezes",
    "idempotency_records",
)


def order(
    order_id: str | None = None,
    *,
    amount: str = "100.00",
    customer: str = CUSTOMER_A,
    group: str = "GB20",
    **extra: Any,
) -> dict[str, Any]:
    """A decision request body; GB20 of customer A holds 100,000.00, GA10 1,000.00."""
    return {
        "order_id": order_id or random_order_id(),
        "customer_code": customer,
        "sale_group_code": group,
        "amount": amount,
        **extra,
    }


class Api:
    """The calls of the contract, each with a role's key (by the name used in the `keys` fixture)."""

    def __init__(self, client: FlaskClient, keys: dict[str, str]) -> None:
        self.client = client
        self.keys = keys

    def auth(self, key: str | None) -> dict[str, str]:
        return {} if key is None else {"Authorization": f"Bearer {self.keys.get(key, key)}"}

    def decide(self, body: Any, key: str | None = "orders", **kw: Any) -> TestResponse:
        return self.client.post("/v1/decisions", json=body, headers=self.auth(key), **kw)

    def decision(self, order_id: str, key: str | None = "orders") -> TestResponse:
        return self.client.get(f"/v1/decisions/{order_id}", headers=self.auth(key))

    def act(self, order_id: str, action: str, key: str | None = "orders") -> TestResponse:
        return self.client.post(f"/v1/decisions/{order_id}/{action}", headers=self.auth(key))

    def account(self, customer: str, group: str, key: str | None = "orders") -> TestResponse:
        return self.client.get(f"/v1/accounts/{customer}/{group}", headers=self.auth(key))

    def freeze(
        self, customer: str, group: str, body: Any, *, undo: bool = False, key: str | None = "admin"
    ) -> TestResponse:
        action = "unfreeze" if undo else "freeze"
        return self.client.post(
            f"/v1/accounts/{customer}/{group}/{action}", json=body, headers=self.auth(key)
        )

    def exposure(self, customer: str, group: str) -> str:
        r = self.account(customer, group, key="auditor")
        assert r.status_code == 200, r.json
        return str(r.json["exposure"])


@pytest.fixture
def api(client: FlaskClient, keys: dict[str, str]) -> Api:
    return Api(client, keys)


@pytest.fixture
def db_state(sqlite_engine: Engine, context: AppContext) -> Callable[[], dict[str, list[tuple[Any, ...]]]]:
    """Every row of every table the service writes, to compare before and after a refused request."""

    def snapshot() -> dict[str, list[tuple[Any, ...]]]:
        with sqlite_engine.connect() as conn:
            return {table: _rows(conn, table) for table in TABLES}

    return snapshot


def _rows(conn: Connection, table: str) -> list[tuple[Any, ...]]:
    rows = conn.execute(text(f"SELECT * FROM {table}"))
    kept = (tuple((k, v) for k, v in row._mapping.items() if k not in BOOKKEEPING) for row in rows)
    return sorted(kept, key=repr)


def assert_problem(r: TestResponse, status: int, *fields: str) -> dict[str, Any]:
    """An application/problem+json answer with the contract's members, naming each of `fields`."""
    assert r.status_code == status, (r.status_code, r.get_data(as_text=True))
    assert r.mimetype == "application/problem+json"
    body = r.get_json(force=True)
    assert set(body) >= PROBLEM_FIELDS, body
    assert body["status"] == status
    assert body["type"] and body["title"] and body["detail"]
    assert body["request_id"] == r.headers["X-Request-ID"]
    assert isinstance(body["errors"], dict)
    for name, messages in body["errors"].items():
        assert isinstance(name, str)
        assert messages and all(isinstance(m, str) and m for m in messages), body
    for field in fields:
        assert field in body["errors"], body
    return body  # type: ignore[no-any-return]
