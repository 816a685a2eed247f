"""Reliability item 13, resource limits (OWASP API4, unrestricted resource consumption).

1 MB and 10 MB bodies are 413; a page size beyond the documented maximum is clamped to it (the item's
"clamped pages"): the page says the size it used (`limit`), which the page honours, and the document
states the maximum as `x-clamped-maximum`, not as a `maximum` the service does not enforce; a 10,000-item
batch is refused (413 or 422) and so is one item over the batch maximum; one key sending 200 requests a
second meets 429 with Retry-After at its rate while another key sending at the same time is never
refused; 50 orders a second on one account are all decided, cost at most one upstream call per refresh
period, and both invariant checkers (checkers.py) pass. Time is a fake clock (the rate limiter's and the
service's): the bounds are counts and ratios, never milliseconds. Last, the limit as `creditctl serve`
runs it (2 gunicorn workers sharing one table): a key's rate holds for the instance as a whole.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import Engine

from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.fake.clock import FakeClock
from adapters.web.app import create_app
from adapters.web.rate_limit import DEFAULT_RATE, TokenBuckets, parse_rate
from adapters.web.schemas.pages import CLAMPED_MAXIMUM
from creditctl.services.context import AppContext
from tests.api.conftest import CUSTOMER_A, Api, assert_problem, order
from tests.clocks import Ticks
from tests.conftest import TEST_BALANCES
from tests.e2e.served import served_demo
from tests.random_refs import random_order_id
from tests.reliability.checkers import assert_checkers, books_for, saw_answer, starting_money

pytestmark = pytest.mark.api

SEED = int(os.environ.get("CREDITCTL_TEST_SEED", "0")) or random.randrange(1, 10**6)
KIB = 1024


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


@pytest.fixture
def app(context: AppContext, ticks: Ticks) -> Flask:
    """The app with the production default rate limit, on a clock the test moves."""
    policy = parse_rate(DEFAULT_RATE)
    app = create_app(context, {"TESTING": True, "CREDITCTL_RATE_LIMIT": policy})
    app.extensions["creditctl.rate_limit"] = TokenBuckets(policy, clock=ticks)
    return app


def padded(size: int, order_id: str) -> bytes:
    body = json.dumps({**order(order_id), "metadata": {"pad": ""}}).encode()
    return body.replace(b'"pad": ""', b'"pad": "' + b"x" * (size - len(body)) + b'"')


@pytest.mark.parametrize("size", [1024 * KIB, 10 * 1024 * KIB])
def test_a_1_mb_or_10_mb_body_is_413_and_changes_nothing(api: Api, db_state: Any, size: int) -> None:
    before = db_state()
    oid = random_order_id("big")
    r = api.client.post(
        "/v1/decisions", data=padded(size, oid), content_type="application/json", headers=api.auth("orders")
    )
    assert_problem(r, 413)
    payments = api.client.post(
        f"/v1/accounts/{CUSTOMER_A}/GB20/payments",
        data=b'{"payments": [' + b" " * size + b"]}",
        content_type="application/json",
        headers=api.auth("finance"),
    )
    assert_problem(payments, 413)
    assert db_state() == before
    assert api.decision(oid).status_code == 404


PATH_VALUES = {"customer_code": CUSTOMER_A, "sale_group_code": "GB20", "run_id": "1"}
NO_SUCH = ("/v1/backtests/1/",)  # no backtest ran: the limit is still read first (0: 422), then 404


def paged_operations(client: Any) -> list[tuple[str, int]]:
    """Every GET of the document that takes a `limit`, with its documented maximum (path filled)."""
    spec = client.get("/openapi.json").json
    out = []
    for path, ops in spec["paths"].items():
        for param in ops.get("get", {}).get("parameters", []):
            if param.get("in") == "query" and param["name"] == "limit":
                schema = param["schema"]
                maximum = schema.get(CLAMPED_MAXIMUM)
                assert maximum, f"GET {path}: a page size with no documented maximum"
                assert "maximum" not in schema, f"GET {path}: a maximum the service does not enforce"
                filled = path
                for name, value in PATH_VALUES.items():
                    filled = filled.replace("{" + name + "}", value)
                assert "{" not in filled, f"GET {path}: no value for a path parameter; add it to PATH_VALUES"
                out.append((filled, int(maximum)))
    return out


def test_a_huge_page_size_is_clamped_to_the_maximum_and_the_page_says_so(api: Api) -> None:
    paged = paged_operations(api.client)
    assert len(paged) >= 5, paged  # the sweep reads the document: not vacuous
    for path, maximum in paged:
        r = api.client.get(path, query_string={"limit": 0}, headers=api.auth("admin"))
        assert "limit" in assert_problem(r, 422)["errors"], path
        for asked in (maximum, maximum + 1, 10**6, 10**18, "9" * 5000):
            r = api.client.get(path, query_string={"limit": asked}, headers=api.auth("admin"))
            if path.startswith(NO_SUCH):
                assert r.status_code == 404, (path, r.get_data(as_text=True))
                continue
            assert r.status_code == 200, (path, r.get_data(as_text=True))
            assert r.json["limit"] == maximum, (path, asked, r.json["limit"])
            page = next(v for v in r.json.values() if isinstance(v, list))
            assert len(page) <= maximum, path


def test_the_page_size_used_is_the_one_asked_for_up_to_the_maximum(api: Api) -> None:
    for i in range(3):
        assert api.decide(order(amount=f"{i + 1}.00")).status_code == 201
    holds = f"/v1/accounts/{CUSTOMER_A}/GB20/holds"
    r = api.client.get(holds, query_string={"limit": 2}, headers=api.auth("orders"))
    assert (r.json["limit"], len(r.json["items"])) == (2, 2) and r.json["next_cursor"], r.json
    r = api.client.get(holds, headers=api.auth("orders"))
    assert (r.json["limit"], len(r.json["items"]), r.json["next_cursor"]) == (100, 3, None), r.json


def test_a_10000_item_batch_is_refused_and_so_is_one_over_the_maximum(api: Api, db_state: Any) -> None:
    before = db_state()
    path = f"/v1/accounts/{CUSTOMER_A}/GB20/payments"

    def batch(n: int) -> list[dict[str, str]]:
        return [{"invoice_id": f"I{i}", "amount": "1.00", "due_date": "2026-01-01"} for i in range(n)]

    huge = api.client.post(path, json={"payments": batch(10_000)}, headers=api.auth("finance"))
    assert huge.status_code in (413, 422), huge.status_code
    assert_problem(huge, huge.status_code)
    over = api.client.post(path, json={"payments": batch(1001)}, headers=api.auth("finance"))
    assert "payments" in assert_problem(over, 422)["errors"]
    assert db_state() == before


def test_200_requests_a_second_from_one_key_meet_429_at_its_rate_and_another_key_is_untouched(
    api: Api, ticks: Ticks, db_state: Any
) -> None:
    """Two seconds of one key at 200 requests/s (the default rate is 100/s with a burst of 200), with a
    second key sending 20 requests/s at the same time: the first is refused beyond burst + rate x time,
    each refusal 429 with a Retry-After of at least a second, and the second key is never refused."""
    policy = parse_rate(DEFAULT_RATE)
    answers: list[int] = []
    others: list[int] = []
    refused_retry: set[str] = set()
    for i in range(400):  # 200/s for 2 s
        ticks.now = i / 200
        r = api.decision("nope", key="orders")
        answers.append(r.status_code)
        if r.status_code == 429:
            assert_problem(r, 429)
            refused_retry.add(r.headers["Retry-After"])
        if i % 10 == 0:
            others.append(api.decision("nope", key="auditor").status_code)
    admitted = answers.count(404)
    assert set(answers) == {404, 429}, set(answers)
    ceiling = policy.burst + policy.rate_per_s * ticks.now + 1
    assert admitted <= ceiling, (admitted, ceiling)
    assert admitted >= policy.burst + policy.rate_per_s * ticks.now - 2  # the rate, not less
    assert refused_retry and all(int(s) >= 1 for s in refused_retry), refused_retry
    assert set(others) == {404}, others  # the other key: never 429


def test_50_orders_a_second_on_one_account_are_all_decided_within_the_upstream_budget(
    api: Api,
    ticks: Ticks,
    clock: FakeClock,
    balances: FakeBalanceProvider,
    sqlite_engine: Engine,
) -> None:
    """Under the default rate limit, 50 orders/s on one account (twice over, the second second after the
    stored balance is due for a refresh) are all decided; the upstream is asked at most once per refresh
    period (300 s by default), not once per order; both checkers pass."""
    rng = random.Random(SEED)
    books = books_for(starting_money(TEST_BALANCES))
    balances.calls.clear()
    outcomes = []
    for second in range(2):
        if second == 1:
            clock.advance(301)  # the stored balance is now due for a refresh
        for i in range(50):
            ticks.now = second + i / 50
            amount = Decimal(rng.randrange(100, 20000)) / 100
            r = api.decide(order(amount=str(amount), group="GB20"))
            assert r.status_code == 201, (f"seed {SEED}", r.get_data(as_text=True))
            outcomes.append(r.json["outcome"])
            saw_answer(books, r.json)
    assert "approve" in outcomes
    assert len(balances.calls) <= 1, (f"seed {SEED}", balances.calls)
    assert_checkers(sqlite_engine, books, SEED)


@pytest.mark.e2e
def test_served_by_gunicorn_the_limit_is_per_key_for_the_whole_instance(tmp_path: Path) -> None:
    """`creditctl serve` with 2 worker processes and a rate of 5/s (burst 5) per key: one key sending as
    fast as it can meets 429 problem+json with Retry-After; what it gets through is what one instance
    admits, burst + rate x elapsed, however its requests spread over the two workers (they share the
    instance's table); another key is not refused meanwhile. The bound grows with the measured time, so a
    slow machine cannot make it fail."""
    with served_demo(
        tmp_path, workers=2, CREDITCTL_RATE_LIMIT_PER_KEY="5/s", CREDITCTL_RATE_LIMIT_BURST="5"
    ) as served:
        session = requests.Session()
        orders = {"Authorization": f"Bearer {served.keys['orders']}"}
        auditor = {"Authorization": f"Bearer {served.keys['auditor']}"}
        started = time.monotonic()
        answers = [
            session.get(f"{served.url}/v1/decisions/nope", headers=orders, timeout=10) for _ in range(60)
        ]
        elapsed = time.monotonic() - started
        other = [
            session.get(f"{served.url}/v1/decisions/nope", headers=auditor, timeout=10) for _ in range(3)
        ]
    statuses = Counter(r.status_code for r in answers)
    assert set(statuses) <= {404, 429} and statuses[429] > 0, statuses
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    assert int(refused.headers["Retry-After"]) >= 1
    assert 5 <= statuses[404] <= 5 + 5 * elapsed + 1, (statuses, elapsed)
    assert [r.status_code for r in other] == [404] * 3
