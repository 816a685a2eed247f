"""Decision semantics through HTTP: approve, replay, conflict, defer, block, freeze, settle, release,
recheck, freeze/unfreeze by hand; money as decimal strings and times as UTC ISO 8601 everywhere."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from adapters.web.app import create_app
from creditctl.services.api_keys import create_api_key
from tests.api.conftest import CUSTOMER_A, MONEY, UTC_ISO, assert_problem, order
from tests.random_refs import random_order_id

pytestmark = pytest.mark.api

MONEY_KEYS = {"amount", "exposure", "available", "credit_limit", "shortfall"}
DECISION_KEYS = {
    "decision_id",
    "order_id",
    "outcome",
    "reasons",
    "amount",
    "balance",
    "exposure",
    "available",
    "credit_limit",
    "hold",
    "rule_set",
    "decided_at",
    "shortfall",
}
REFRESH_AFTER_S = 300  # the default rule set's refresh_after_s


def assert_wire_formats(raw: bytes) -> Any:
    """No JSON number with a fraction anywhere; money a two-place decimal string; times UTC ISO 8601."""

    def no_float(text: str) -> Any:
        raise AssertionError(f"a JSON number with a fraction in an answer: {text}")

    body = json.loads(raw, parse_float=no_float)

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif key in MONEY_KEYS and node is not None:
            assert isinstance(node, str) and MONEY.match(node), (key, node)
        elif key.endswith("_at") and node is not None:
            assert isinstance(node, str) and UTC_ISO.match(node), (key, node)

    walk(body)
    return body


def grant_credit_line(context, group: str, amount: str, customer: str = CUSTOMER_A) -> None:
    with context.uow() as uow:
        account = uow.accounts.lock(customer, group)
        account.params["base_credit_limit"] = amount
        uow.accounts.save(account)
        uow.commit()


def reasons(decision: dict[str, Any]) -> list[str]:
    return [r["reason"] for r in decision["reasons"]]


class TestApprove:
    def test_an_order_that_fits_is_approved_with_a_hold_for_its_amount(self, api):
        before = api.account(CUSTOMER_A, "GB20").json
        r = api.decide(order(amount="1999.98"))
        assert r.status_code == 201
        d = assert_wire_formats(r.data)
        assert set(d) >= DECISION_KEYS
        assert d["outcome"] == "approve" and d["state"] == "decided" and d["shortfall"] is None
        assert d["hold"]["amount"] == "1999.98" and d["hold"]["status"] == "open" and d["hold"]["id"]
        assert d["balance"] == {
            "amount": "100000.00",
            "fetched_at": d["balance"]["fetched_at"],
            "source": "fake",
        }
        assert d["rule_set"] == {"id": 1, "version": 1}
        after = api.account(CUSTOMER_A, "GB20").json
        assert Decimal(after["exposure"]) - Decimal(before["exposure"]) == Decimal("1999.98")
        assert Decimal(before["available"]) - Decimal(after["available"]) == Decimal("1999.98")
        assert [h["id"] for h in after["open_holds"]] == [d["hold"]["id"]]

    def test_reading_the_decision_gives_what_deciding_answered(self, api):
        r = api.decide(order(channel="web", metadata={"erp": "SAP", "lines": 3}))
        got = api.decision(r.json["order_id"], key="auditor")
        assert got.status_code == 200
        assert got.json == r.json
        assert_wire_formats(got.data)

    def test_a_low_balance_approval_says_so(self, api):
        d = api.decide(order(amount="100.00", group="GA10")).json
        assert d["outcome"] == "approve"
        assert reasons(d) == ["BALANCE_LOW"]


class TestReplayAndConflict:
    def test_a_replay_is_200_with_the_identical_body_and_changes_nothing(self, api, db_state):
        body = order(channel="edi", metadata={"po": "A-1", "lines": 2, "urgent": True, "ratio": 0.5})
        first = api.decide(body)
        assert first.status_code == 201
        before = db_state()
        for _ in range(20):
            again = api.decide(body)
            assert again.status_code == 200
            assert again.data == first.data
        assert db_state() == before

    def test_a_replay_with_keys_in_another_order_is_still_a_replay(self, api):
        body = order()
        first = api.decide(body)
        again = api.decide(dict(reversed(list(body.items()))))
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json == first.json

    @pytest.mark.parametrize(
        "change",
        [
            {"amount": "100.01"},
            {"amount": "100"},  # the same money written another way is the same body...
            {"sale_group_code": "GA10"},
            {"channel": "web"},
            {"metadata": {"po": "other"}},
        ],
    )
    def test_the_same_order_id_with_another_body_is_409_and_changes_nothing(self, api, db_state, change):
        body = order()
        first = api.decide(body).json
        before = db_state()
        r = api.decide(body | change)
        if change == {"amount": "100"}:  # ...so it replays rather than conflicts
            assert r.status_code == 200 and r.json == first
        else:
            problem = assert_problem(r, 409, "order_id")
            assert body["order_id"] in problem["detail"]
        assert db_state() == before
        assert api.decision(body["order_id"]).json == first


class TestDeferAndBlock:
    def test_an_order_short_of_balance_but_within_the_credit_line_is_deferred_with_the_shortfall(
        self, api, context, db_state
    ):
        grant_credit_line(context, "GA10", "500.00")
        assert api.account(CUSTOMER_A, "GA10").json["credit_limit"] == "500.00"
        before = db_state()
        r = api.decide(order(amount="1200.00", group="GA10"))
        assert r.status_code == 201
        d = assert_wire_formats(r.data)
        assert d["outcome"] == "defer" and d["state"] == "deferred"
        assert "INSUFFICIENT_BALANCE" in reasons(d)
        assert d["shortfall"] == "200.00"
        assert d["hold"] is None and d["deferral_expires_at"]
        assert d["available"] == "1000.00" and d["credit_limit"] == "500.00"
        assert db_state()["holds"] == before["holds"]
        assert api.exposure(CUSTOMER_A, "GA10") == "0.00"

    def test_an_order_beyond_balance_and_credit_line_is_blocked_with_the_shortfall(self, api, context):
        grant_credit_line(context, "GA10", "500.00")
        d = api.decide(order(amount="2000.00", group="GA10")).json
        assert d["outcome"] == "block"
        assert "CREDIT_LIMIT_EXCEEDED" in reasons(d)
        assert d["shortfall"] == "1000.00"
        assert d["hold"] is None
        assert api.exposure(CUSTOMER_A, "GA10") == "0.00"

    def test_without_a_credit_line_a_short_order_is_blocked(self, api):
        d = api.decide(order(amount="1000.01", group="GA10")).json
        assert (d["outcome"], d["shortfall"]) == ("block", "0.01")

    def test_an_order_that_does_not_fit_what_others_reserved_is_not_approved(self, api):
        assert api.decide(order(amount="600.00", group="GA10")).json["outcome"] == "approve"
        d = api.decide(order(amount="600.00", group="GA10")).json
        assert d["outcome"] == "block"
        assert d["exposure"] == "600.00" and d["available"] == "400.00" and d["shortfall"] == "200.00"

    def test_a_deferred_order_is_approved_on_recheck_once_the_balance_rose(
        self, api, context, balances, clock
    ):
        grant_credit_line(context, "GA10", "500.00")
        oid = api.decide(order(amount="1200.00", group="GA10")).json["order_id"]
        assert api.act(oid, "recheck").json["outcome"] == "defer"  # nothing changed yet
        balances.set_balance(CUSTOMER_A, "GA10", "5000.00")
        clock.advance(REFRESH_AFTER_S + 1)
        r = api.act(oid, "recheck")
        assert r.status_code == 200
        d = assert_wire_formats(r.data)
        assert d["outcome"] == "approve" and d["state"] == "decided" and d["shortfall"] is None
        assert d["hold"]["status"] == "open" and d["hold"]["amount"] == "1200.00"
        assert d["rechecks"] == 2
        assert api.exposure(CUSTOMER_A, "GA10") == "1200.00"
        assert api.decision(oid).json == d
        assert api.act(oid, "recheck").json == d  # a decided order comes back unchanged

    def test_releasing_a_deferred_order_cancels_it(self, api, context):
        grant_credit_line(context, "GA10", "500.00")
        oid = api.decide(order(amount="1200.00", group="GA10")).json["order_id"]
        r = api.act(oid, "release")
        assert r.status_code == 200
        assert r.json["state"] == "cancelled"
        assert api.act(oid, "recheck").json["state"] == "cancelled"


class TestFreeze:
    def test_a_depleted_balance_freezes_the_account_and_later_orders_are_blocked(self, api, balances, clock):
        balances.set_balance(CUSTOMER_A, "GA10", "0.00")
        clock.advance(REFRESH_AFTER_S + 1)
        d = api.decide(order(amount="10.00", group="GA10")).json
        assert d["outcome"] == "freeze" and "BALANCE_DEPLETED" in reasons(d) and d["hold"] is None
        account = assert_wire_formats(api.account(CUSTOMER_A, "GA10").data)
        assert account["status"] == "frozen" and account["frozen_reason"] == "BALANCE_DEPLETED"
        # Money coming back does not lift the freeze: the next order is blocked as frozen.
        balances.set_balance(CUSTOMER_A, "GA10", "1000.00")
        clock.advance(REFRESH_AFTER_S + 1)
        d = api.decide(order(amount="10.00", group="GA10")).json
        assert d["outcome"] == "block" and reasons(d)[0] == "ACCOUNT_FROZEN" and d["hold"] is None
        assert api.exposure(CUSTOMER_A, "GA10") == "0.00"
        # Other accounts of the customer are not affected.
        assert api.decide(order(group="GB20")).json["outcome"] == "approve"

    def test_an_admin_freezes_and_unfreezes_with_a_reason(self, api):
        r = api.freeze(CUSTOMER_A, "GB20", {"reason": "payment dispute"})
        assert r.status_code == 200
        account = assert_wire_formats(r.data)
        assert account["status"] == "frozen" and account["frozen_reason"] == "payment dispute"
        assert account["frozen_at"]
        d = api.decide(order()).json
        assert (d["outcome"], reasons(d)) == ("block", ["ACCOUNT_FROZEN"])
        r = api.freeze(CUSTOMER_A, "GB20", {"reason": "resolved"}, undo=True)
        assert r.status_code == 200
        assert r.json["status"] == "active" and r.json["frozen_reason"] is None
        assert api.decide(order()).json["outcome"] == "approve"

    @pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": None}, {"why": "x"}])
    @pytest.mark.parametrize("undo", [False, True])
    def test_freezing_or_unfreezing_without_a_reason_is_422_and_changes_nothing(
        self, api, db_state, body, undo
    ):
        if undo:
            api.freeze(CUSTOMER_A, "GB20", {"reason": "frozen first"})
        before = db_state()
        problem = assert_problem(api.freeze(CUSTOMER_A, "GB20", body, undo=undo), 422)
        assert set(problem["errors"]) & {"reason", "why"}
        assert db_state() == before

    def test_a_second_freeze_for_the_same_reason_is_an_idempotent_200(self, api, db_state, clock):
        first = api.freeze(CUSTOMER_A, "GB20", {"reason": "payment dispute"}).json
        before = db_state()
        clock.advance(60)
        again = api.freeze(CUSTOMER_A, "GB20", {"reason": "payment dispute"})
        assert again.status_code == 200
        assert (again.json["frozen_reason"], again.json["frozen_at"]) == (
            "payment dispute",
            first["frozen_at"],
        )
        assert db_state() == before

    def test_a_second_freeze_for_another_reason_is_409_naming_the_current_freeze(self, api, db_state, clock):
        first = api.freeze(CUSTOMER_A, "GB20", {"reason": "payment dispute"}).json
        before = db_state()
        clock.advance(60)
        r = api.freeze(CUSTOMER_A, "GB20", {"reason": "fraud suspected"})
        problem = assert_problem(r, 409)
        assert problem["type"].endswith("/conflict/already_frozen")
        assert problem["errors"]["frozen_reason"] == ["payment dispute"]
        assert problem["errors"]["frozen_by"] == ["admin:test-admin"]
        since = problem["errors"]["frozen_at"][0]
        assert datetime.fromisoformat(since) == datetime.fromisoformat(first["frozen_at"])
        assert "payment dispute" in problem["detail"] and "admin:test-admin" in problem["detail"]
        assert_wire_formats(r.data)
        assert db_state() == before
        assert api.account(CUSTOMER_A, "GB20").json["frozen_reason"] == "payment dispute"

    @pytest.mark.parametrize("undo", [False, True])
    def test_freeze_and_unfreeze_bodies_refuse_unknown_fields_with_422(self, api, db_state, undo):
        if undo:
            api.freeze(CUSTOMER_A, "GB20", {"reason": "frozen first"})
        before = db_state()
        body = {"reason": "payment dispute", "until": "2030-01-01"}
        problem = assert_problem(api.freeze(CUSTOMER_A, "GB20", body, undo=undo), 422)
        assert set(problem["errors"]) == {"until"}
        assert db_state() == before

    def test_freezing_an_unknown_account_is_404(self, api, db_state):
        before = db_state()
        assert_problem(api.freeze(CUSTOMER_A, "ZZ99", {"reason": "x"}), 404, "sale_group_code")
        assert_problem(api.freeze("8899999999", "GA10", {"reason": "x"}), 404)
        assert db_state() == before


class TestSettleAndRelease:
    def test_settle_ends_the_hold_which_counts_until_a_newer_balance_arrives(self, api, balances, clock):
        oid = api.decide(order(amount="300.00")).json["order_id"]
        r = api.act(oid, "settle")
        assert r.status_code == 200
        d = assert_wire_formats(r.data)
        assert d["hold"]["status"] == "settled" and d["hold"]["ended_at"]
        assert api.exposure(CUSTOMER_A, "GB20") == "300.00"
        retried = api.act(oid, "settle")  # the order system's first settle timed out: it retries
        assert (retried.status_code, retried.json) == (200, r.json)
        assert api.exposure(CUSTOMER_A, "GB20") == "300.00"
        shown = api.account(CUSTOMER_A, "GB20").json  # still counting, but not open: shown apart
        assert oid not in [h["id"] for h in shown["open_holds"]]
        assert [h["id"] for h in shown["settled_holds_counting"]] == [d["hold"]["id"]]
        assert shown["settled_holds_counting"][0]["status"] == "settled"
        assert_problem(api.act(oid, "release"), 409, "order_id")
        # Haier debited it: the next balance includes it and the settled hold stops counting.
        balances.set_balance(CUSTOMER_A, "GB20", "99700.00")
        clock.advance(REFRESH_AFTER_S + 1)
        d = api.decide(order(amount="1.00")).json
        assert d["balance"]["amount"] == "99700.00" and d["exposure"] == "0.00"

    def test_release_ends_the_hold_and_gives_the_money_back_at_once(self, api):
        start = api.account(CUSTOMER_A, "GB20").json
        oid = api.decide(order(amount="300.00")).json["order_id"]
        assert api.exposure(CUSTOMER_A, "GB20") == "300.00"
        r = api.act(oid, "release")
        assert r.status_code == 200
        assert r.json["hold"]["status"] == "released"
        after = api.account(CUSTOMER_A, "GB20").json
        assert (after["exposure"], after["available"]) == (start["exposure"], start["available"])
        assert after["open_holds"] == []
        retried = api.act(oid, "release")
        assert (retried.status_code, retried.json) == (200, r.json)
        assert_problem(api.act(oid, "settle"), 409, "order_id")


class TestAccountView:
    def test_the_account_shows_balance_exposure_available_limit_grade_status_and_holds(self, api, context):
        grant_credit_line(context, "GB20", "1000.00")
        d = api.decide(order(amount="250.50")).json
        r = api.account(CUSTOMER_A, "GB20", key="auditor")
        assert r.status_code == 200
        a = assert_wire_formats(r.data)
        assert {
            "balance",
            "exposure",
            "available",
            "credit_limit",
            "credit_grade",
            "status",
            "open_holds",
        } <= set(a)
        assert a["balance"]["amount"] == "100000.00" and a["balance"]["source"] == "fake"
        assert (a["exposure"], a["available"]) == ("250.50", "99749.50")
        assert (a["credit_limit"], a["credit_grade"], a["status"]) == ("1000.00", "A", "active")
        assert a["open_holds"] == [d["hold"]]

    def test_an_unknown_account_is_404(self, api):
        assert_problem(api.account(CUSTOMER_A, "ZZ99"), 404, "sale_group_code")


@pytest.mark.postgres
class TestConcurrentReplays:
    """Reliability item 2 over HTTP on PostgreSQL: 50 concurrent sends of one order, one decision."""

    def test_fifty_concurrent_sends_of_one_order_make_one_decision_one_hold_one_event(
        self, pg_context, postgres_engine
    ):
        app = create_app(pg_context, {"TESTING": True})
        key = create_api_key(
            name="erp", role="orders", customers=None, uow=pg_context.uow(), clock=pg_context.clock
        )
        headers = {"Authorization": f"Bearer {key.secret}"}
        body = order(random_order_id("race"), amount="100.00", group="GA10")  # BALANCE_LOW: one outbox row

        def send(_: int) -> tuple[int, bytes]:
            r = app.test_client().post("/v1/decisions", json=body, headers=headers)
            return r.status_code, r.data

        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(send, range(50)))
        statuses = sorted(s for s, _ in answers)
        assert statuses == [200] * 49 + [201], statuses
        assert len({data for _, data in answers}) == 1
        conflict = app.test_client().post("/v1/decisions", json=body | {"amount": "100.01"}, headers=headers)
        assert conflict.status_code == 409
        with pg_context.uow() as uow:
            account = uow.accounts.get(CUSTOMER_A, "GA10")
            holds = uow.holds.counting(account.id)
        assert [h.order_id for h in holds] == [body["order_id"]]
        assert account.exposure == Decimal("100.00")
        with postgres_engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM decisions")).scalar() == 1
            assert conn.execute(text("SELECT count(*) FROM outbox")).scalar() == 1
