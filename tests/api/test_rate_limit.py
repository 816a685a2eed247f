"""The per-key rate limit (adapters/web/rate_limit.py): a key over its rate is answered 429 problem+json
with Retry-After and nothing changes; another key is unaffected; the answer is documented on every
authenticated operation; the setting is read and checked. Time is a fake clock: nothing here is timed."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from adapters.bootstrap import Settings, load_settings
from adapters.web.app import create_app
from adapters.web.rate_limit import RateLimited, RateLimitPolicy, TokenBuckets, parse_rate
from creditctl.services.context import AppContext
from tests.api.conftest import Api, assert_problem, order


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


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
