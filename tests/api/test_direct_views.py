"""POST /v1/decisions and GET /v1/decisions/{id} are direct views (adapters/web/decisions.py): they answer
the common case themselves and hand the rest to the flask-smorest/webargs stack that documents them. Each
request here is sent twice, once to the direct view and once to that stack registered as the view (as it
was before), and the two answers must be the same bytes: status, every header in order, body."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

import adapters.web.decisions as views
from adapters.web.app import create_app
from adapters.web.rate_limit import RateLimited
from creditctl.services.context import AppContext
from tests.api.conftest import CUSTOMER_A, order

REQUEST_ID = {"X-Request-ID": "same-request-id"}  # else each answer names its own
ORIGIN = "https://erp.example.com"
STACKS = {"decisions.decide": views._decide_stack, "decisions.read": views._read_stack}
Answer = tuple[str, list[tuple[str, str]], bytes]


@pytest.fixture
def app(context: AppContext) -> Flask:
    return create_app(context, {"TESTING": True, "CREDITCTL_CORS_ORIGINS": ORIGIN})


@pytest.fixture
def stack_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The direct views' hand-overs to the stack (the stack registered as the view is not counted)."""
    calls: list[str] = []
    for name in ("_decide_stack", "_read_stack"):
        stack = getattr(views, name)

        def counted(*args: Any, _stack: Callable[..., Any] = stack, _name: str = name, **kw: Any) -> Any:
            calls.append(_name)
            return _stack(*args, **kw)

        monkeypatch.setattr(views, name, counted)
    return calls


@pytest.fixture
def send(app: Flask, client: FlaskClient, keys: dict[str, str]) -> Callable[..., tuple[Answer, Answer]]:
    def answer(method: str, path: str, key: str | None, headers: dict[str, str], **kw: Any) -> Answer:
        sent = {**REQUEST_ID, **({"Authorization": f"Bearer {keys.get(key, key)}"} if key else {}), **headers}
        r = client.open(path, method=method, headers=sent, **kw)
        return r.status, list(r.headers.items()), r.get_data()

    def both(
        method: str, path: str, key: str | None = "orders", headers: dict[str, str] | None = None, **kw: Any
    ) -> tuple[Answer, Answer]:
        assert STACKS.keys() <= app.view_functions.keys()  # the endpoints keep their names
        direct = answer(method, path, key, headers or {}, **kw)
        views_before = dict(app.view_functions)
        app.view_functions.update(STACKS)  # the routes as they were: the stack is the view
        try:
            stack = answer(method, path, key, headers or {}, **kw)
        finally:
            app.view_functions.clear()
            app.view_functions.update(views_before)
        return direct, stack

    return both


@pytest.fixture
def decided(send: Callable[..., tuple[Answer, Answer]]) -> Iterator[dict[str, Any]]:
    """An order decided (201) through the direct view."""
    body = order("DIRECT-1")
    direct, _replay = send("POST", "/v1/decisions", json=body)
    assert direct[0] == "201 CREATED", direct
    yield body


def test_a_new_decision_is_answered_alike(
    send: Callable[..., tuple[Answer, Answer]],
    decided: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    stack_calls: list[str],
) -> None:
    """201: the service stubbed to make the same decision twice (a real one would have new ids)."""
    real = views.decide_order
    made: list[Any] = []

    def once(cmd: Any, **kw: Any) -> Any:
        result = real(cmd, **kw)  # the replay of DIRECT-1: its stored decision, as new
        made.append(result)
        return type(result)(decision=result.decision, created=True)

    monkeypatch.setattr(views, "decide_order", once)
    direct, stack = send("POST", "/v1/decisions", json=decided)
    assert direct[0] == "201 CREATED"
    assert direct == stack
    assert len(made) == 2 and stack_calls == []  # the direct view answered, without the stack


@pytest.mark.parametrize("origin", [None, ORIGIN, "https://elsewhere.example"])
def test_a_replay_is_answered_alike(
    send: Callable[..., tuple[Answer, Answer]],
    decided: dict[str, Any],
    stack_calls: list[str],
    origin: str | None,
) -> None:
    headers = {"Origin": origin} if origin else {}
    direct, stack = send("POST", "/v1/decisions", json=decided, headers=headers)
    assert direct[0] == "200 OK"
    assert direct == stack
    assert stack_calls == []


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/x+json"])
def test_other_json_media_types_are_answered_alike(
    send: Callable[..., tuple[Answer, Answer]],
    decided: dict[str, Any],
    stack_calls: list[str],
    content_type: str,
) -> None:
    direct, stack = send("POST", "/v1/decisions", data=json.dumps(decided), content_type=content_type)
    assert direct[0] == "200 OK"
    assert direct == stack
    assert stack_calls == []


def test_a_conflict_is_answered_alike(
    send: Callable[..., tuple[Answer, Answer]], decided: dict[str, Any]
) -> None:
    direct, stack = send("POST", "/v1/decisions", json={**decided, "amount": "101.00"})
    assert direct[0] == "409 CONFLICT"
    assert direct == stack


def test_an_unknown_account_is_answered_alike(send: Callable[..., tuple[Answer, Answer]]) -> None:
    direct, stack = send("POST", "/v1/decisions", json=order(customer="8899999999"))
    assert direct[0].startswith("4") or direct[0].startswith("5")
    assert direct == stack


REFUSED_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("no body", {}),
    ("empty JSON body", {"data": b"", "content_type": "application/json"}),
    ("invalid JSON", {"data": b'{"order_id": ', "content_type": "application/json"}),
    ("NaN", {"data": b'{"amount": NaN}', "content_type": "application/json"}),
    ("not UTF-8", {"data": b'{"order_id": "\xff"}', "content_type": "application/json"}),
    ("a duplicate key", {"data": b'{"order_id": "a", "order_id": "b"}', "content_type": "application/json"}),
    ("nested too deeply", {"data": b"[" * 100 + b"]" * 100, "content_type": "application/json"}),
    ("a list", {"json": [order()]}),
    ("null", {"json": None}),
    ("a form", {"data": {"order_id": "x"}}),
    ("text", {"data": b"order", "content_type": "text/plain"}),
    ("a field missing", {"json": {k: v for k, v in order().items() if k != "amount"}}),
    ("an unknown field", {"json": order(colour="red")}),
    ("amount a number", {"json": order(amount=12.5)}),
    ("amount negative", {"json": order(amount="-1.00")}),
    ("amount three places", {"json": order(amount="1.005")}),
    ("order id with a '..' segment", {"json": order("a/../b")}),
    ("order id too long", {"json": order("x" * 65)}),
    ("order id with a newline", {"json": order("PO-1\n")}),
    ("customer code with a space", {"json": order(customer="88 00")}),
    ("channel blank", {"json": order(channel=" ")}),
    ("metadata too many keys", {"json": order(metadata={f"k{i}": i for i in range(40)})}),
    ("a lone surrogate", {"data": b'{"order_id": "\\ud800"}', "content_type": "application/json"}),
    ("U+0000 in a field", {"json": order("PO-\x00-1")}),
    ("U+0000 in a member name", {"json": {**order(), "channel\x00": "x"}}),
]


@pytest.mark.parametrize("what, body", REFUSED_BODIES, ids=[w for w, _ in REFUSED_BODIES])
def test_bodies_the_stack_reads_are_answered_alike(
    send: Callable[..., tuple[Answer, Answer]], what: str, body: dict[str, Any], stack_calls: list[str]
) -> None:
    direct, stack = send("POST", "/v1/decisions", **body)
    assert direct == stack, what
    assert stack_calls in ([], ["_decide_stack"])  # refused before the view (415), or handed over


def test_a_valid_body_the_short_road_does_not_take_is_handed_to_the_stack(
    send: Callable[..., tuple[Answer, Answer]], stack_calls: list[str]
) -> None:
    """Metadata and non-ASCII text are the schema's to load: a new decision each time, so the status and
    headers compare, and the body as a decision of the same order."""
    body = order("META-1", metadata={"po": "采购-1"}, channel="渠道")
    direct, stack = send("POST", "/v1/decisions", json=body)
    assert stack_calls == ["_decide_stack"]
    assert direct[0] == "201 CREATED" and stack[0] == "200 OK"  # the stack's send replays the first
    assert json.loads(direct[2]) == json.loads(stack[2])


@pytest.mark.parametrize(
    "key, headers",
    [
        (None, {}),
        ("not-a-key", {}),
        ("finance", {}),
        (None, {"X-API-Key": "not-a-key"}),
        (None, {"Authorization": "Basic abc"}),
    ],
)
def test_keys_refused_are_answered_alike(
    send: Callable[..., tuple[Answer, Answer]], key: str | None, headers: dict[str, str]
) -> None:
    for method, path, kw in (("POST", "/v1/decisions", {"json": order()}), ("GET", "/v1/decisions/X-1", {})):
        direct, stack = send(method, path, key=key, headers=headers, **kw)
        assert direct[0] in ("401 UNAUTHORIZED", "403 FORBIDDEN"), direct
        assert direct == stack


def test_a_reader_may_not_decide_alike(send: Callable[..., tuple[Answer, Answer]]) -> None:
    direct, stack = send("POST", "/v1/decisions", key="auditor", json=order())
    assert direct[0] == "403 FORBIDDEN"
    assert direct == stack


def test_a_key_limited_to_other_customers_is_answered_alike(
    send: Callable[..., tuple[Answer, Answer]], decided: dict[str, Any]
) -> None:
    for method, path, kw in (
        ("POST", "/v1/decisions", {"json": order(customer="8800000002")}),
        ("GET", f"/v1/decisions/{decided['order_id']}", {}),
    ):
        direct, stack = send(method, path, key="orders_a", **kw)
        assert direct == stack


def test_the_x_api_key_header_is_answered_alike(
    send: Callable[..., tuple[Answer, Answer]], decided: dict[str, Any], keys: dict[str, str]
) -> None:
    headers = {"X-API-Key": keys["orders"]}
    direct, stack = send("POST", "/v1/decisions", key=None, headers=headers, json=decided)
    assert direct[0] == "200 OK"
    assert direct == stack


def test_rate_limited_is_answered_alike(app: Flask, send: Callable[..., tuple[Answer, Answer]]) -> None:
    class Spent:
        def take(self, _key: object) -> None:
            raise RateLimited(3)

    app.extensions["creditctl.rate_limit"] = Spent()
    for method, path, kw in (("POST", "/v1/decisions", {"json": order()}), ("GET", "/v1/decisions/X-1", {})):
        direct, stack = send(method, path, **kw)
        assert direct[0] == "429 TOO MANY REQUESTS"
        assert direct == stack


def test_a_cors_preflight_is_answered_alike(send: Callable[..., tuple[Answer, Answer]]) -> None:
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Content-Type",
    }
    direct, stack = send("OPTIONS", "/v1/decisions", key=None, headers=preflight)
    assert direct[0] == "204 NO CONTENT"
    assert direct == stack


@pytest.mark.parametrize("query", ["", f"?customer_code={CUSTOMER_A}", "?customer_code=bad code", "?other=1"])
def test_reading_a_decision_is_answered_alike(
    send: Callable[..., tuple[Answer, Answer]], decided: dict[str, Any], stack_calls: list[str], query: str
) -> None:
    for key in ("orders", "auditor", "admin"):
        direct, stack = send("GET", f"/v1/decisions/{decided['order_id']}{query}", key=key)
        assert direct == stack
    assert stack_calls == ([] if not query else ["_read_stack"] * 3)
    direct, stack = send("GET", f"/v1/decisions/NOT-DECIDED{query}")
    assert direct[0] in ("404 NOT FOUND", "422 UNPROCESSABLE ENTITY")
    assert direct == stack


def test_a_body_too_large_is_answered_alike(send: Callable[..., tuple[Answer, Answer]]) -> None:
    big = json.dumps(order(channel="x" * 70_000)).encode()
    direct, stack = send("POST", "/v1/decisions", data=big, content_type="application/json")
    assert direct[0] == "413 REQUEST ENTITY TOO LARGE"
    assert direct == stack
