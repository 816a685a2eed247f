"""Idempotency-Key on every creating call of the API: a retry with the same key and body gets the first
answer again and changes nothing; the same key with another body is 409; a refused call keeps no record;
records are kept 24 hours. On SQLite through the Flask client (the threaded twins: PostgreSQL tests)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from adapters.bootstrap import Settings
from adapters.cli.main import CliOps, build_cli
from adapters.fake.clock import FakeClock
from creditctl.domain.api_key import Role
from creditctl.services.api_keys import create_api_key
from creditctl.services.context import AppContext
from tests.api.conftest import BOOKKEEPING, CUSTOMER_A, TABLES, Api, assert_problem, order
from tests.api.test_backtests_api import PERIOD, tightened
from tests.api.test_haier_configs_api import body as haier_config

pytestmark = pytest.mark.api

HOOK = {"url": "https://hooks.example.com/creditctl", "events": ["balance.low"]}
OTHER_PERIOD = {"from": "2001-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}
# Everything a creating call could change; idempotency_records is left out (a replay reads it only).
WATCHED = (
    *(t for t in TABLES if t != "idempotency_records"),
    "audit_events",
    "webhook_subscriptions",
    "backtest_runs",
    "backtest_changes",
    "upstream_configs",
)


def state(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        out = {}
        for table in WATCHED:
            rows = conn.execute(text(f"SELECT * FROM {table}"))
            kept = (tuple((k, v) for k, v in r._mapping.items() if k not in BOOKKEEPING) for r in rows)
            out[table] = sorted(kept, key=repr)
        return out


def payment(invoice_id: str, paid: str = "0.00") -> dict[str, Any]:
    return {"invoice_id": invoice_id, "amount": "100.00", "due_date": "2026-12-31", "paid_amount": paid}


@dataclass(frozen=True)
class Call:
    """A creating call: `setup` prepares what it needs and answers its path; `body` and `other` differ."""

    method: str
    setup: Callable[[Api], str]
    body: Any
    other: Any
    who: str = "admin"  # the key (of the `admins` fixture) that makes the call


def fixed(path: str) -> Callable[[Api], str]:
    return lambda api: path


def _draft(api: Api) -> str:
    r = api.client.post("/v1/rule-sets", json={"name": "to publish"}, headers=api.auth("admin"))
    assert r.status_code == 201, r.json
    return f"/v1/rule-sets/{r.json['id']}/publish"


def _subscription(api: Api) -> str:
    r = api.client.post("/v1/webhooks", json=HOOK, headers=api.auth("admin"))
    assert r.status_code == 201, r.json
    return f"/v1/webhooks/{r.json['id']}/rotate-secret"


def _limit_request(action: str) -> Callable[[Api], str]:
    def setup(api: Api) -> str:
        r = api.client.post(
            f"/v1/accounts/{CUSTOMER_A}/GB20/credit-limit-requests",
            json={"amount": "300.00", "until": "2026-12-31T00:00:00Z", "reason": "year end"},
            headers=api.auth("admin2"),  # four eyes: the call under test is another admin's
        )
        assert r.status_code == 201, r.json
        return f"/v1/credit-limit-requests/{r.json['id']}/{action}"

    return setup


def _frozen(api: Api) -> str:
    r = api.freeze(CUSTOMER_A, "GB20", {"reason": "dispute"}, key="admin2")
    assert r.status_code == 200, r.json
    return f"/v1/accounts/{CUSTOMER_A}/GB20/unfreeze"


def _deferred(action: str) -> Callable[[Api], str]:
    def setup(api: Api) -> str:
        r = api.client.put(
            f"/v1/accounts/{CUSTOMER_A}/GA10/credit-profile",
            json={"base_limit": "100000.00", "reason": "reviews"},
            headers=api.auth("admin"),
        )
        assert r.status_code == 200, r.json
        decided = api.decide(order(amount="1200.00", group="GA10"))
        assert decided.json["state"] == "deferred", decided.json
        return f"/v1/reviews/{decided.json['order_id']}/{action}"

    return setup


CALLS = {
    "draft": Call("POST", fixed("/v1/rule-sets"), {"name": "a"}, {"name": "b"}),
    "publish": Call("POST", _draft, {"reason": "go"}, {"reason": "go now"}),
    "rollback": Call("POST", fixed("/v1/rule-sets/1/rollback"), {"reason": "back"}, {"reason": "undo"}),
    "rule set backtest": Call("POST", fixed("/v1/rule-sets/1/backtest"), PERIOD, OTHER_PERIOD),
    "backtest": Call(
        "POST",
        fixed("/v1/backtests"),
        {"rule_set": tightened(), **PERIOD},
        {"rule_set": tightened(), **OTHER_PERIOD},
    ),
    "webhook": Call("POST", fixed("/v1/webhooks"), HOOK, {**HOOK, "url": "https://hooks.example.com/other"}),
    "webhook secret": Call("POST", _subscription, None, {}),
    "credit limit request": Call(
        "POST",
        fixed(f"/v1/accounts/{CUSTOMER_A}/GB20/credit-limit-requests"),
        {"amount": "300.00", "until": "2026-12-31T00:00:00Z", "reason": "year end"},
        {"amount": "400.00", "until": "2026-12-31T00:00:00Z", "reason": "year end"},
    ),
    "approve": Call("POST", _limit_request("approve"), {"note": "ok"}, {"note": "fine"}),
    "reject": Call("POST", _limit_request("reject"), {"note": "no"}, {"note": "never"}),
    "freeze": Call("POST", fixed(f"/v1/accounts/{CUSTOMER_A}/GB20/freeze"), {"reason": "a"}, {"reason": "b"}),
    "unfreeze": Call("POST", _frozen, {"reason": "resolved"}, {"reason": "paid"}),
    "review release": Call("POST", _deferred("release"), {"reason": "known"}, {"reason": "vip"}),
    "review reject": Call("POST", _deferred("reject"), {"reason": "no"}, {"reason": "never"}),
    "payments": Call(
        "POST",
        fixed(f"/v1/accounts/{CUSTOMER_A}/GB20/payments"),
        {"payments": [payment("INV-1")]},
        {"payments": [payment("INV-1", paid="50.00")]},
        who="payer",
    ),
    "upstream config": Call(
        "PUT", fixed("/v1/admin/haier/configs/main"), haier_config(), haier_config(client_id="other")
    ),
}


@pytest.fixture
def admins(api: Api, context: AppContext) -> Api:
    """A second admin key (`admin2`), and the first one with approval authority for reviews."""
    for name in ("admin2", "lead"):
        api.keys[name] = create_api_key(
            name=f"test-{name}",
            role="admin",
            customers=None,
            uow=context.uow(),
            clock=context.clock,
            approval_limit="100000.00",
        ).secret
    api.keys["admin"] = api.keys["lead"]
    # Who posts payments: a finance key where that role exists (the authority table merged on main
    # after this branch was cut), an admin key before it.
    role = "finance" if "finance" in {r.value for r in Role} else "admin"
    api.keys["payer"] = create_api_key(
        name="test-payer", role=role, customers=None, uow=context.uow(), clock=context.clock
    ).secret
    return api


def send(api: Api, call: Call, path: str, body: Any, key: str | None, who: str = "admin") -> Any:
    headers = api.auth(who) | ({"Idempotency-Key": key} if key is not None else {})
    return api.client.open(path, method=call.method, json=body, headers=headers)


@pytest.mark.parametrize("name", list(CALLS))
def test_a_retry_with_the_same_key_gets_the_first_answer_and_changes_nothing(
    admins: Api, sqlite_engine: Engine, name: str
) -> None:
    call = CALLS[name]
    path = call.setup(admins)
    before = state(sqlite_engine)
    first = send(admins, call, path, call.body, "retry-1", who=call.who)
    assert 200 <= first.status_code < 300, first.get_data(as_text=True)
    applied = state(sqlite_engine)
    assert applied != before  # the first one did something
    again = send(admins, call, path, call.body, "retry-1", who=call.who)
    assert (again.status_code, again.get_data()) == (first.status_code, first.get_data())
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert again.headers.get("ETag") == first.headers.get("ETag")
    assert state(sqlite_engine) == applied


@pytest.mark.parametrize("name", list(CALLS))
def test_the_same_key_with_another_body_is_409_and_changes_nothing(
    admins: Api, sqlite_engine: Engine, name: str
) -> None:
    call = CALLS[name]
    path = call.setup(admins)
    assert 200 <= send(admins, call, path, call.body, "once", who=call.who).status_code < 300
    applied = state(sqlite_engine)
    problem = assert_problem(
        send(admins, call, path, call.other, "once", who=call.who), 409, "Idempotency-Key"
    )
    assert problem["type"].endswith("/conflict/idempotency_key_reused")
    assert state(sqlite_engine) == applied


def rule_set_versions(engine: Engine) -> list[tuple[int, int]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, version FROM rule_sets WHERE version IS NOT NULL ORDER BY id"))
        return [tuple(r) for r in rows]  # type: ignore[misc]


def events(engine: Engine, type_: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(text("SELECT count(*) FROM audit_events WHERE type = :t"), {"t": type_}).scalar()
        )


class TestRetries:
    def test_a_rollback_sent_twice_with_one_key_makes_one_version(
        self, admins: Api, sqlite_engine: Engine
    ) -> None:
        call = CALLS["rollback"]
        answers = [send(admins, call, "/v1/rule-sets/1/rollback", call.body, "rb-1") for _ in range(2)]
        assert [a.status_code for a in answers] == [201, 201]
        assert answers[0].json == answers[1].json and answers[0].json["version"] == 2
        assert rule_set_versions(sqlite_engine) == [(1, 1), (2, 2)]
        assert events(sqlite_engine, "rule_set.rolled_back") == 1

    def test_without_a_key_a_second_rollback_is_a_second_version(
        self, admins: Api, sqlite_engine: Engine
    ) -> None:
        """What a retry without a key still does: the key is what makes it safe."""
        call = CALLS["rollback"]
        for _ in range(2):
            assert send(admins, call, "/v1/rule-sets/1/rollback", call.body, None).status_code == 201
        assert len(rule_set_versions(sqlite_engine)) == 3

    def test_a_webhook_subscription_sent_twice_is_one_subscription_and_the_replay_shows_its_secret(
        self, admins: Api, sqlite_engine: Engine
    ) -> None:
        call = CALLS["webhook"]
        first, again = (send(admins, call, "/v1/webhooks", HOOK, "sub-1") for _ in range(2))
        assert first.status_code == again.status_code == 201
        assert again.json["id"] == first.json["id"] and again.json["secret"] == first.json["secret"]
        listed = admins.client.get("/v1/webhooks", headers=admins.auth("admin")).json["webhooks"]
        assert [w["id"] for w in listed] == [first.json["id"]]
        with sqlite_engine.connect() as conn:
            kept = conn.execute(text("SELECT body, sealed FROM idempotency_records")).one()
        assert kept.sealed and first.json["secret"] not in kept.body  # the answer at rest is sealed

    def test_keys_belong_to_the_api_key_that_sent_them(self, admins: Api, sqlite_engine: Engine) -> None:
        call = CALLS["rollback"]
        mine = send(admins, call, "/v1/rule-sets/1/rollback", call.body, "shared", who="admin")
        theirs = send(admins, call, "/v1/rule-sets/1/rollback", call.body, "shared", who="admin2")
        assert mine.status_code == theirs.status_code == 201
        assert "Idempotent-Replayed" not in theirs.headers and theirs.json["version"] == 3

    def test_the_same_key_on_another_route_is_another_key(self, admins: Api) -> None:
        first = send(admins, CALLS["draft"], "/v1/rule-sets", {"name": "a"}, "k")
        other = send(admins, CALLS["rollback"], "/v1/rule-sets/1/rollback", {"reason": "x"}, "k")
        assert (first.status_code, other.status_code) == (201, 201)

    def test_a_refused_call_keeps_no_record_and_its_retry_is_judged_again(
        self, admins: Api, sqlite_engine: Engine
    ) -> None:
        call = CALLS["freeze"]
        path = f"/v1/accounts/{CUSTOMER_A}/GB99/freeze"  # no such account
        assert_problem(send(admins, call, path, {"reason": "x"}, "f-1"), 404)
        assert_problem(send(admins, call, path, {"reason": "other"}, "f-1"), 404)  # not 409: nothing kept
        with sqlite_engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM idempotency_records")).scalar() == 0

    def test_a_publish_retried_after_it_was_published_gets_the_first_answer(
        self, admins: Api, sqlite_engine: Engine
    ) -> None:
        path = _draft(admins)
        first = send(admins, CALLS["publish"], path, {"reason": "go"}, "pub-1")
        again = send(admins, CALLS["publish"], path, {"reason": "go"}, "pub-1")
        without = send(admins, CALLS["publish"], path, {"reason": "go"}, None)
        assert (first.status_code, again.status_code) == (200, 200) and again.json == first.json
        problem = assert_problem(without, 409, "version")
        assert problem["errors"]["version"] == [str(first.json["version"])]
        assert events(sqlite_engine, "rule_set.published") == 1

    @pytest.mark.parametrize("key", ["", " padded ", "x" * 256, "tab\there", "ключ"])
    def test_a_malformed_key_is_422_and_changes_nothing(
        self, admins: Api, sqlite_engine: Engine, key: str
    ) -> None:
        before = state(sqlite_engine)
        headers = admins.auth("admin") | {"Idempotency-Key": key}
        r = admins.client.post("/v1/rule-sets/1/rollback", json={"reason": "x"}, headers=headers)
        assert_problem(r, 422, "Idempotency-Key")
        assert state(sqlite_engine) == before

    def test_the_body_is_compared_by_meaning_not_by_spelling(self, admins: Api) -> None:
        headers = admins.auth("admin") | {"Idempotency-Key": "spelling", "Content-Type": "application/json"}
        url = f"/v1/accounts/{CUSTOMER_A}/GB20/credit-limit-requests"
        spelled = [
            '{"amount": "300.00", "until": "2026-12-31T00:00:00Z", "reason": "r"}',
            '{"reason":"r","until":"2026-12-31T00:00:00Z","amount":"300.00"}',
        ]
        first, again = (admins.client.post(url, data=raw, headers=headers) for raw in spelled)
        assert first.status_code == again.status_code == 201 and again.json == first.json


class TestRetention:
    def test_a_key_is_kept_24_hours_then_runs_again_and_expire_prunes_it(
        self, admins: Api, sqlite_engine: Engine, clock: FakeClock, context: AppContext, tmp_path: Path
    ) -> None:
        url = str(sqlite_engine.url)
        ops = CliOps(
            load_settings=lambda: Settings(instance_path=tmp_path / "instance", database_url=url),
            make_context=lambda: context,
            upgrade_db=lambda: None,
            database_url=lambda: url,
            configure_logging=lambda level: None,
        )
        call = CALLS["rollback"]
        send(admins, call, "/v1/rule-sets/1/rollback", call.body, "day")
        clock.advance(23 * 3600)
        assert send(admins, call, "/v1/rule-sets/1/rollback", call.body, "day").headers["Idempotent-Replayed"]
        clock.advance(3600)
        later = send(admins, call, "/v1/rule-sets/1/rollback", call.body, "day")
        assert later.status_code == 201 and "Idempotent-Replayed" not in later.headers
        assert later.json["version"] == 3
        send(admins, call, "/v1/rule-sets/1/rollback", call.body, "another")
        clock.advance(25 * 3600)
        out = CliRunner().invoke(build_cli(ops), ["expire"], catch_exceptions=False)
        assert out.exit_code == 0, out.output
        assert "idempotency records pruned: 2" in out.output
        with sqlite_engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM idempotency_records")).scalar() == 0


class TestDocumented:
    def test_every_creating_call_documents_the_key_and_the_409(self, client: FlaskClient) -> None:
        paths = client.get("/openapi.json").json["paths"]
        routes = {
            ("post", "/v1/rule-sets"),
            ("post", "/v1/rule-sets/{rule_set_id}/publish"),
            ("post", "/v1/rule-sets/{rule_set_id}/rollback"),
            ("post", "/v1/rule-sets/{rule_set_id}/backtest"),
            ("post", "/v1/backtests"),
            ("post", "/v1/webhooks"),
            ("post", "/v1/webhooks/{subscription_id}/rotate-secret"),
            ("post", "/v1/accounts/{customer_code}/{sale_group_code}/credit-limit-requests"),
            ("post", "/v1/credit-limit-requests/{request_id}/approve"),
            ("post", "/v1/credit-limit-requests/{request_id}/reject"),
            ("post", "/v1/accounts/{customer_code}/{sale_group_code}/freeze"),
            ("post", "/v1/accounts/{customer_code}/{sale_group_code}/unfreeze"),
            ("post", "/v1/reviews/{order_id}/release"),
            ("post", "/v1/reviews/{order_id}/reject"),
            ("post", "/v1/accounts/{customer_code}/{sale_group_code}/payments"),
            ("put", "/v1/admin/haier/configs/{name}"),
        }
        for method, path in routes:
            operation = paths[path][method]
            headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
            assert "Idempotency-Key" in headers, (method, path)
            assert "idempotency_key_reused" in operation["responses"]["409"]["description"], (method, path)
            assert "422" in operation["responses"], (method, path)
