"""The per-key rate limit (adapters/web/rate_limit.py): a key over its rate is answered 429 problem+json
with Retry-After and nothing changes; another key is unaffected; the answer is documented on every
authenticated operation; the setting is read and checked. Time is a fake clock: nothing here is timed."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event

from adapters.bootstrap import Settings, load_settings
from adapters.web.app import create_app
from adapters.web.rate_limit import (
    RateLimited,
    RateLimitPolicy,
    SharedTokenBuckets,
    TokenBuckets,
    parse_rate,
)
from creditctl.services.context import AppContext
from tests.api.conftest import Api, assert_problem, order
from tests.clocks import Ticks


@pytest.fixture
def ticks() -> Ticks:
    return Ticks(1000.0)


@pytest.fixture
def app(context: AppContext, ticks: Ticks) -> Flask:
    app = create_app(context, {"TESTING": True, "CREDITCTL_RATE_LIMIT": RateLimitPolicy(10.0, 5.0)})
    app.extensions["creditctl.rate_limit"] = TokenBuckets(RateLimitPolicy(10.0, 5.0), clock=ticks)
    return app


def test_a_key_over_its_rate_gets_429_with_retry_after_and_nothing_changes(api: Api, db_state: Any) -> None:
    for _ in range(5):  # the burst
        assert api.decision("nope-1").status_code == 404
    before = db_state()
    body = order()
    r = api.decide(body)
    problem = assert_problem(r, 429)
    assert r.headers["Retry-After"] == "1"
    assert problem["type"].endswith("/rate_limited")
    assert db_state() == before  # the decision was not made
    assert api.decision(body["order_id"]).status_code == 429


def test_other_keys_are_unaffected(api: Api) -> None:
    for _ in range(6):
        api.decision("nope-1")
    assert api.decision("nope-1").status_code == 429
    for _ in range(5):
        assert api.decision("nope-1", key="auditor").status_code == 404


def test_tokens_come_back_at_the_rate(api: Api, ticks: Ticks) -> None:
    for _ in range(5):
        api.decision("nope-1")
    assert api.decision("nope-1").status_code == 429
    ticks.now += 0.1  # one token at 10/s
    assert api.decision("nope-1").status_code == 404
    assert api.decision("nope-1").status_code == 429
    ticks.now += 10  # refilled, but never beyond the burst
    assert [api.decision("nope-1").status_code for _ in range(6)] == [404] * 5 + [429]


def test_an_unauthenticated_request_spends_nothing(api: Api) -> None:
    for _ in range(20):
        assert api.decision("nope-1", key="not-a-key").status_code == 401
    assert api.decision("nope-1").status_code == 404


def test_retry_after_is_the_whole_seconds_until_a_token() -> None:
    t = Ticks()
    buckets = TokenBuckets(RateLimitPolicy(0.25, 1.0), clock=t)  # one request every 4 s
    buckets.take("k")
    with pytest.raises(RateLimited) as refused:
        buckets.take("k")
    assert refused.value.retry_after_s == 4
    t.now += 3.5
    with pytest.raises(RateLimited) as refused:
        buckets.take("k")
    assert refused.value.retry_after_s == 1  # 0.5 s rounded up: never 0
    t.now += 0.5
    buckets.take("k")


def test_buckets_are_bounded_in_number() -> None:
    buckets = TokenBuckets(RateLimitPolicy(1.0, 1.0), clock=Ticks(), max_keys=3)
    for k in range(10):
        buckets.take(k)
    assert len(buckets._buckets) <= 3


def test_every_authenticated_operation_documents_429(client: Any) -> None:
    spec = client.get("/openapi.json").json
    authenticated = [
        (path, method, op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if isinstance(op, dict) and op.get("security") != []
    ]
    assert authenticated
    missing = [f"{m.upper()} {p}" for p, m, op in authenticated if "429" not in op["responses"]]
    assert not missing, missing
    open_ones = [
        op
        for ops in spec["paths"].values()
        for op in ops.values()
        if isinstance(op, dict) and op.get("security") == []
    ]
    assert all("429" not in op["responses"] for op in open_ones)


@pytest.mark.parametrize(
    ("text", "burst", "rate", "size"),
    [("100/s", None, 100.0, 200.0), ("6000/min", "50", 100.0, 50.0), ("0.5/s", None, 0.5, 1.0)],
)
def test_the_setting_is_read(text: str, burst: str | None, rate: float, size: float) -> None:
    assert parse_rate(text, burst) == RateLimitPolicy(rate, size)


@pytest.mark.parametrize(("text", "burst"), [("100", None), ("-1/s", None), ("fast", None), ("10/s", "0")])
def test_a_bad_setting_stops_the_start(text: str, burst: str | None, tmp_path: Any) -> None:
    env = {"CREDITCTL_INSTANCE_PATH": str(tmp_path), "CREDITCTL_RATE_LIMIT_PER_KEY": text}
    if burst is not None:
        env["CREDITCTL_RATE_LIMIT_BURST"] = burst
    with pytest.raises(SystemExit, match="CREDITCTL_RATE_LIMIT_PER_KEY"):
        load_settings(env)


def test_on_by_default_in_production_and_off_when_asked(tmp_path: Any) -> None:
    default = load_settings({"CREDITCTL_INSTANCE_PATH": str(tmp_path)})
    assert default.rate_limit == RateLimitPolicy(100.0, 200.0)
    assert Settings(instance_path=tmp_path, database_url="sqlite://").rate_limit.enabled
    off = load_settings({"CREDITCTL_INSTANCE_PATH": str(tmp_path), "CREDITCTL_RATE_LIMIT_PER_KEY": "off"})
    assert not off.rate_limit.enabled


def test_the_seed_compatible_view_answers_429_in_its_own_shape(client: Any, keys: dict[str, str]) -> None:
    headers = {"Authorization": f"Bearer {keys['orders']}"}
    answers = [
        client.get("/api/haier/balance/", headers=headers, query_string={"customer_code": "8800000001"})
        for _ in range(6)
    ]
    assert [r.status_code for r in answers] == [200] * 5 + [429], [r.json for r in answers]
    assert answers[-1].mimetype == "application/json"
    assert answers[-1].json["code"] == "RATE_LIMITED" and answers[-1].json["success"] is False
    assert answers[-1].headers["Retry-After"] == "1"


# -- one table for every worker process of an instance ---------------------------------------------------


def _take_all(buckets: SharedTokenBuckets, key: int, n: int) -> int:
    admitted = 0
    for _ in range(n):
        try:
            buckets.take(key)
            admitted += 1
        except RateLimited:
            pass
    return admitted


def _in_children(work: Callable[[], int], n: int) -> list[int]:
    """Run `work` in n forked processes at once (as gunicorn's workers are); what each returned."""
    ctx = multiprocessing.get_context("fork")
    results = ctx.SimpleQueue()
    start = ctx.Event()

    def child() -> None:
        start.wait(30)
        results.put(work())

    children = [ctx.Process(target=child) for _ in range(n)]
    for c in children:
        c.start()
    start.set()
    for c in children:
        c.join(60)
    assert all(c.exitcode == 0 for c in children), [c.exitcode for c in children]
    return [results.get() for _ in range(n)]


def test_the_shared_table_admits_a_key_at_its_rate_across_processes(tmp_path: Path) -> None:
    """Four processes take from one key with the clock standing still: together they get the burst,
    not four bursts; another key has its own."""
    t = Ticks()
    buckets = SharedTokenBuckets(RateLimitPolicy(10.0, 20.0), tmp_path / "rate-limit.table", clock=t)
    assert sum(_in_children(lambda: _take_all(buckets, 7, 50), 4)) == 20
    assert _take_all(buckets, 8, 50) == 20
    t.now += 1.0  # a second later: ten more, wherever they are asked for
    assert sum(_in_children(lambda: _take_all(buckets, 7, 50), 4)) == 10


def test_a_process_killed_while_holding_the_table_does_not_wedge_the_others(tmp_path: Path) -> None:
    buckets = SharedTokenBuckets(RateLimitPolicy(10.0, 5.0), tmp_path / "rate-limit.table", clock=Ticks())
    holding = multiprocessing.get_context("fork").Event()

    def hold_forever() -> None:
        fd, _ = buckets._table()
        fcntl.flock(fd, fcntl.LOCK_EX)
        holding.set()
        time.sleep(600)

    child = multiprocessing.get_context("fork").Process(target=hold_forever)
    child.start()
    try:
        assert holding.wait(30)
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        child.join(30)
    finally:
        if child.is_alive():
            child.kill()
    assert _take_all(buckets, 1, 6) == 5  # the kernel released the dead worker's lock


def test_the_shared_table_answers_like_the_in_process_one(tmp_path: Path) -> None:
    t = Ticks()
    shared = SharedTokenBuckets(RateLimitPolicy(0.25, 1.0), tmp_path / "t", clock=t)
    shared.take(3)
    with pytest.raises(RateLimited) as refused:
        shared.take(3)
    assert refused.value.retry_after_s == 4
    t.now += 4
    shared.take(3)


def test_a_full_shared_table_starts_afresh_rather_than_refusing(tmp_path: Path) -> None:
    buckets = SharedTokenBuckets(RateLimitPolicy(1.0, 1.0), tmp_path / "t", slots=4, clock=Ticks())
    assert [_take_all(buckets, k, 1) for k in range(10)] == [1] * 10


def test_served_apps_share_the_instance_table_and_plain_apps_keep_their_own(
    context: AppContext, tmp_path: Path
) -> None:
    policy = RateLimitPolicy(10.0, 5.0)
    table = tmp_path / "rate-limit.table"
    served = create_app(context, {"CREDITCTL_RATE_LIMIT": policy, "CREDITCTL_RATE_LIMIT_TABLE": str(table)})
    plain = create_app(context, {"CREDITCTL_RATE_LIMIT": policy})
    assert isinstance(served.extensions["creditctl.rate_limit"], SharedTokenBuckets)
    assert isinstance(plain.extensions["creditctl.rate_limit"], TokenBuckets)


def test_the_limit_adds_no_database_statement_to_a_decision(
    context: AppContext, keys: dict[str, str], sqlite_engine: Any, tmp_path: Path
) -> None:
    """The same decision request through an app without the limit and one with the instance's shared
    table: the same number of SQL statements (the limit never asks the database)."""
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    policy = RateLimitPolicy(100.0, 200.0)
    table = str(tmp_path / "rate-limit.table")
    apps = {
        "off": create_app(context, {"TESTING": True}),
        "on": create_app(context, {"CREDITCTL_RATE_LIMIT": policy, "CREDITCTL_RATE_LIMIT_TABLE": table}),
    }
    headers = {"Authorization": f"Bearer {keys['orders']}"}
    for app in apps.values():  # warm each app's key cache and the rule set cache
        app.test_client().post("/v1/decisions", json=order(), headers=headers)
    counted = {}
    event.listen(sqlite_engine, "before_cursor_execute", count)
    try:
        for name, app in apps.items():
            statements.clear()
            r = app.test_client().post("/v1/decisions", json=order(), headers=headers)
            assert r.status_code == 201, r.json
            counted[name] = len(statements)
    finally:
        event.remove(sqlite_engine, "before_cursor_execute", count)
    assert counted["on"] == counted["off"] > 0, counted
