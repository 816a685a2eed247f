"""The WSGI lane in front of Flask for POST /v1/decisions (adapters/web/fast_lane.py) answers exactly as
Flask does: each request is sent through the lane and then straight to Flask (the lane's `inner`), and
the two must give the same status, every header in order, the same body, the same access log line and
the same metrics. Requests the lane does not take must reach Flask untouched."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from sqlalchemy.exc import OperationalError

import adapters.web.decisions as views
from adapters.web.app import create_app
from adapters.web.fast_lane import DecisionLane
from adapters.web.rate_limit import RateLimited
from creditctl.ports.balance_provider import BalanceUnavailable
from creditctl.services.context import AppContext
from tests.api.conftest import order
from tests.api.test_direct_views import REFUSED_BODIES

REQUEST_ID = {"X-Request-ID": "same-request-id"}
Answer = tuple[str, list[tuple[str, str]], bytes, list[tuple[Any, ...]], dict[str, float]]
METRICS = [
    ("creditctl_http_requests_total", {"method": "POST", "endpoint": "/v1/decisions", "status": status})
    for status in ("200", "201", "404", "409", "422", "429", "500", "503")
] + [
    ("creditctl_decision_replays_total", {}),
    ("creditctl_decisions_total", {"outcome": "approve"}),
    ("creditctl_decision_seconds_count", {}),
]


@pytest.fixture
def lane(app: Flask) -> DecisionLane:
    assert isinstance(app.wsgi_app, DecisionLane)
    return app.wsgi_app


@pytest.fixture
def flask_calls(lane: DecisionLane, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The requests the lane handed to Flask."""
    calls: list[str] = []
    inner = lane.inner

    def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        calls.append(environ["PATH_INFO"])
        return inner(environ, start_response)

    counted.real = inner  # type: ignore[attr-defined]  # what `send` sends straight to
    monkeypatch.setattr(lane, "inner", counted)
    return calls


class AccessLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[Any, ...]] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = ("method", "path", "status", "key")
        self.lines.append((record.getMessage(), *(getattr(record, f) for f in fields)))


@pytest.fixture
def access() -> Iterator[AccessLines]:
    handler = AccessLines()
    log = logging.getLogger("creditctl.access")
    level = log.level
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    yield handler
    log.removeHandler(handler)
    log.setLevel(level)


def _metrics() -> dict[str, float]:
    return {f"{n}{labels}": REGISTRY.get_sample_value(n, labels) or 0.0 for n, labels in METRICS}


@pytest.fixture
def send(
    app: Flask, lane: DecisionLane, client: FlaskClient, keys: dict[str, str], access: AccessLines
) -> Callable[..., tuple[Answer, Answer]]:
    def answer(method: str, path: str, key: str | None, headers: dict[str, str], **kw: Any) -> Answer:
        sent = {**REQUEST_ID, **({"Authorization": f"Bearer {keys.get(key, key)}"} if key else {}), **headers}
        access.lines.clear()
        before = _metrics()
        r = client.open(path, method=method, headers=sent, **kw)
        after = _metrics()
        counted = {k: after[k] - before[k] for k in after if after[k] != before[k]}
        return r.status, list(r.headers.items()), r.get_data(), list(access.lines), counted

    def both(
        method: str, path: str, key: str | None = "orders", headers: dict[str, str] | None = None, **kw: Any
    ) -> tuple[Answer, Answer]:
        through_lane = answer(method, path, key, headers or {}, **kw)
        app.wsgi_app = getattr(lane.inner, "real", lane.inner)  # type: ignore[method-assign]
        try:
            through_flask = answer(method, path, key, headers or {}, **kw)
        finally:
            app.wsgi_app = lane  # type: ignore[method-assign]
        return through_lane, through_flask

    return both


@pytest.fixture
def decided(send: Callable[..., tuple[Answer, Answer]]) -> dict[str, Any]:
    """An order decided (201; its key now in the key cache)."""
    body = order("LANE-1")
    first, _replay = send("POST", "/v1/decisions", json=body)
    assert first[0] == "201 CREATED", first
    return body


def test_a_new_decision_is_answered_alike(
    send: Callable[..., tuple[Answer, Answer]],
    decided: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    flask_calls: list[str],
) -> None:
    """201: the service stubbed to make the same decision twice (a real one would have new ids)."""
    real = views.decide_order

    def again(cmd: Any, **kw: Any) -> Any:
        result = real(cmd, **kw)  # the replay of LANE-1: its stored decision, as new
        return type(result)(decision=result.decision, created=True)

    monkeypatch.setattr(views, "decide_order", again)
    lane, flask = send("POST", "/v1/decisions", json=decided)
    assert lane[0] == "201 CREATED"
    assert lane == flask
    assert lane[3] == [("POST /v1/decisions 201", "POST", "/v1/decisions", 201, "test-orders")]
    assert flask_calls == []  # the lane answered


def test_a_replay_and_a_conflict_are_answered_alike(
    send: Callable[..., tuple[Answer, Answer]], decided: dict[str, Any], flask_calls: list[str]
) -> None:
    lane, flask = send("POST", "/v1/decisions", json=decided)
    assert lane[0] == "200 OK"
    assert lane == flask
    lane, flask = send("POST", "/v1/decisions", json={**decided, "amount": "101.00"})
    assert lane[0] == "409 CONFLICT"
    assert lane == flask
    assert flask_calls == []


def test_a_decision_in_readable_json_is_answered_alike(
    app: Flask, send: Callable[..., tuple[Answer, Answer]], decided: dict[str, Any], flask_calls: list[str]
) -> None:
    """The lane writes the answer itself: in the JSON provider's readable form (debug mode, or compact
    off) too, as Flask's path does."""
    app.json.compact = False  # type: ignore[attr-defined]
    lane, flask = send("POST", "/v1/decisions", json=decided)
    assert lane[0] == "200 OK"
    assert lane == flask
    assert lane[2].startswith(b'{\n  "decision_id": ') and lane[2].endswith(b"\n}\n")
    assert flask_calls == []


def test_a_decision_without_a_request_id_gets_one_of_its_own(
    client: FlaskClient, keys: dict[str, str], decided: dict[str, Any], flask_calls: list[str]
) -> None:
    for sent in ({}, {"X-Request-ID": "not a valid id!"}):
        headers = {"Authorization": f"Bearer {keys['orders']}", **sent}
        r = client.post("/v1/decisions", json=decided, headers=headers)
        assert r.status_code == 200
        assert len(r.headers["X-Request-ID"]) == 32 and int(r.headers["X-Request-ID"], 16) >= 0
    assert flask_calls == []


def test_a_request_id_ending_in_a_newline_is_not_taken(
    client: FlaskClient, keys: dict[str, str], decided: dict[str, Any], flask_calls: list[str]
) -> None:
    """`$` in a pattern also matches before a final newline: such an id must not be echoed in a header (the
    lane writes its headers without werkzeug's check of their values), by the lane or by Flask."""
    headers = {"Authorization": f"Bearer {keys['orders']}"}
    sent = {"HTTP_X_REQUEST_ID": "abc\n"}  # as a server that keeps the newline would hand it on
    lane = client.post("/v1/decisions", json=decided, headers=headers, environ_overrides=sent)
    flask = client.get(f"/v1/decisions/{decided['order_id']}", headers=headers, environ_overrides=sent)
    for r in (lane, flask):
        assert r.status_code == 200, r.get_data()
        assert len(r.headers["X-Request-ID"]) == 32 and int(r.headers["X-Request-ID"], 16) >= 0
    assert flask_calls == ["/v1/decisions/LANE-1"]  # the decision was the lane's


@pytest.mark.parametrize(
    "error",
    [
        BalanceUnavailable("UPSTREAM_TIMEOUT", "the balance source did not answer in time"),
        OperationalError("SELECT 1", {}, Exception("connection refused")),
        RuntimeError("a bug"),
    ],
    ids=["upstream", "database away", "unexpected"],
)
def test_errors_of_the_service_are_answered_alike(
    send: Callable[..., tuple[Answer, Answer]],
    decided: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    flask_calls: list[str],
    error: Exception,
) -> None:
    def failing(_cmd: Any, **_kw: Any) -> Any:
        raise error

    monkeypatch.setattr(views, "decide_order", failing)
    lane, flask = send("POST", "/v1/decisions", json=order("LANE-2"))
    assert lane[0][:3] in ("500", "503", "504")
    assert lane == flask
    assert flask_calls == []


def test_an_unknown_account_is_answered_alike(
    send: Callable[..., tuple[Answer, Answer]], decided: dict[str, Any]
) -> None:
    lane, flask = send("POST", "/v1/decisions", json=order(customer="8899999999"))
    assert lane[0][:1] in ("4", "5")
    assert lane == flask


def test_rate_limited_is_answered_alike(
    app: Flask, send: Callable[..., tuple[Answer, Answer]], decided: dict[str, Any], flask_calls: list[str]
) -> None:
    class Spent:
        def take(self, _key: object) -> None:
            raise RateLimited(3)

    app.extensions["creditctl.rate_limit"] = Spent()
    lane, flask = send("POST", "/v1/decisions", json=order())
    assert lane[0] == "429 TOO MANY REQUESTS"
    assert lane == flask
    assert lane[3] == [("POST /v1/decisions 429", "POST", "/v1/decisions", 429, None)]
    assert flask_calls == []


@pytest.mark.parametrize("what, body", REFUSED_BODIES, ids=[w for w, _ in REFUSED_BODIES])
def test_bodies_the_lane_does_not_take_reach_flask_alike(
    send: Callable[..., tuple[Answer, Answer]],
    decided: dict[str, Any],
    flask_calls: list[str],
    what: str,
    body: dict[str, Any],
) -> None:
    lane, flask = send("POST", "/v1/decisions", **body)
    assert lane == flask, what
    assert flask_calls == ["/v1/decisions"]


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/x+json", "APPLICATION/JSON"]
)
def test_other_media_types_reach_flask_alike(
    send: Callable[..., tuple[Answer, Answer]],
    decided: dict[str, Any],
    flask_calls: list[str],
    content_type: str,
) -> None:
    lane, flask = send("POST", "/v1/decisions", data=json.dumps(decided), content_type=content_type)
    assert lane == flask
    assert flask_calls == ["/v1/decisions"]


def test_a_non_ascii_body_reaches_flask_alike(
    send: Callable[..., tuple[Answer, Answer]], flask_calls: list[str]
) -> None:
    body = order("LANE-META", metadata={"po": "采购-1"}, channel="渠道")
    lane, flask = send("POST", "/v1/decisions", json=body)
    assert flask_calls == ["/v1/decisions"]
    assert (lane[0], flask[0]) == ("201 CREATED", "200 OK")  # the second is the first's replay
    assert json.loads(lane[2]) == json.loads(flask[2])


@pytest.mark.parametrize(
    "key, headers",
    [(None, {}), ("not-a-key", {}), ("auditor", {}), ("finance", {}), (None, {"Authorization": "Basic a"})],
)
def test_keys_refused_reach_flask_alike(
    send: Callable[..., tuple[Answer, Answer]],
    decided: dict[str, Any],
    flask_calls: list[str],
    key: str | None,
    headers: dict[str, str],
) -> None:
    lane, flask = send("POST", "/v1/decisions", key=key, headers=headers, json=order())
    assert lane[0] in ("401 UNAUTHORIZED", "403 FORBIDDEN")
    assert lane == flask
    assert flask_calls == ["/v1/decisions"]


def test_a_key_not_in_the_cache_yet_reaches_flask_then_the_lane(
    send: Callable[..., tuple[Answer, Answer]], keys: dict[str, str], flask_calls: list[str]
) -> None:
    body = order("LANE-X")
    headers = {"X-API-Key": keys["orders_a"]}
    lane, flask = send("POST", "/v1/decisions", key=None, headers=headers, json=body)
    assert flask_calls == ["/v1/decisions"]  # looked up in the database by Flask, then kept
    assert (lane[0], flask[0]) == ("201 CREATED", "200 OK")
    lane, flask = send("POST", "/v1/decisions", key=None, headers=headers, json=body)
    assert lane == flask
    assert flask_calls == ["/v1/decisions"]  # the lane answered the replay
    other = order("LANE-Y", customer="8800000002")
    lane, flask = send("POST", "/v1/decisions", key=None, headers=headers, json=other)
    assert lane == flask  # a customer the key may not see: the service refuses it, alike


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/v1/decisions"),
        ("OPTIONS", "/v1/decisions"),
        ("POST", "/v1/decisions/"),
        ("PUT", "/v1/decisions"),
    ],
)
def test_other_calls_reach_flask_alike(
    send: Callable[..., tuple[Answer, Answer]],
    decided: dict[str, Any],
    flask_calls: list[str],
    method: str,
    path: str,
) -> None:
    lane, flask = send(method, path, json=decided)
    assert lane == flask
    assert flask_calls == [path]


def test_a_body_too_large_and_a_chunked_body_reach_flask_alike(
    send: Callable[..., tuple[Answer, Answer]], decided: dict[str, Any], flask_calls: list[str]
) -> None:
    big = json.dumps(order(channel="x" * 70_000))
    lane, flask = send("POST", "/v1/decisions", data=big, content_type="application/json")
    assert lane[0] == "413 REQUEST ENTITY TOO LARGE"
    assert lane == flask
    chunked = {"Transfer-Encoding": "chunked"}
    lane, flask = send("POST", "/v1/decisions", headers=chunked, json=decided)
    assert lane == flask
    assert flask_calls == ["/v1/decisions", "/v1/decisions"]


def test_the_lane_stands_aside_for_hooks_it_does_not_repeat(context: AppContext) -> None:
    with_cors = create_app(context, {"TESTING": True, "CREDITCTL_CORS_ORIGINS": "https://erp.example.com"})
    assert not isinstance(with_cors.wsgi_app, DecisionLane)
    cookie_everywhere = create_app(context, {"TESTING": True, "SESSION_COOKIE_PATH": "/"})
    assert not isinstance(cookie_everywhere.wsgi_app, DecisionLane)
    plain = create_app(context, {"TESTING": True})
    assert isinstance(plain.wsgi_app, DecisionLane)
    proxied = create_app(context, {"TESTING": True, "CREDITCTL_TRUSTED_PROXIES": 1})
    assert isinstance(proxied.wsgi_app.app, DecisionLane)  # type: ignore[attr-defined]  # behind ProxyFix
