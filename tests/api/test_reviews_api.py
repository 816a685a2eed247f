"""The review queue over HTTP: who may read and work it, releases within a key's approval authority,
rejections, rechecks, a batch recheck, and an account's freeze history."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.fake.clock import FakeClock
from creditctl.services.api_keys import create_api_key
from creditctl.services.context import AppContext
from tests.api.conftest import CUSTOMER_A, CUSTOMER_B, Api, assert_problem, order

pytestmark = pytest.mark.api


@pytest.fixture
def reviewers(api: Api, context: AppContext) -> Api:
    """`lead`: an admin key that may release up to 100,000.00; `admin_b`: an admin limited to customer B.
    Customer A's GA10 (1,000.00) gets a 100,000.00 credit line, so larger orders wait for funds."""
    for name, customers, limit in (("lead", None, "100000.00"), ("admin_b", [CUSTOMER_B], "100000.00")):
        api.keys[name] = create_api_key(
            name=name,
            role="admin",
            customers=customers,
            uow=context.uow(),
            clock=context.clock,
            approval_limit=limit,
        ).secret
    r = api.client.put(
        f"/v1/accounts/{CUSTOMER_A}/GA10/credit-profile",
        json={"base_limit": "100000.00", "reason": "review tests"},
        headers=api.auth("admin"),
    )
    assert r.status_code == 200, r.json
    return api


def deferred(api: Api, amount: str = "1200.00") -> dict[str, Any]:
    r = api.decide(order(amount=amount, group="GA10"))
    assert r.status_code == 201 and r.json["state"] == "deferred", r.json
    return r.json  # type: ignore[no-any-return]


def act(api: Api, order_id: str, action: str, body: Any, key: str = "lead") -> Any:
    return api.client.post(f"/v1/reviews/{order_id}/{action}", json=body, headers=api.auth(key))


def queue(api: Api, key: str = "lead", query: str = "") -> Any:
    return api.client.get(f"/v1/reviews{query}", headers=api.auth(key))


class TestReviewQueueApi:
    def test_admins_and_auditors_read_the_queue_the_orders_role_does_not(
        self, reviewers: Api, clock: FakeClock
    ) -> None:
        first = deferred(reviewers)
        clock.advance(1)  # oldest first: by when first decided (the database's clock, here the fake)
        second = deferred(reviewers, "1500.00")
        r = queue(reviewers, "auditor")
        assert r.status_code == 200
        assert [d["order_id"] for d in r.json["items"]] == [first["order_id"], second["order_id"]]
        assert_problem(queue(reviewers, "orders"), 403)
        assert queue(reviewers, "admin_b").json["items"] == []  # only its own customers
        page = queue(reviewers, query="?limit=1").json
        rest = queue(reviewers, query=f"?limit=1&cursor={page['next_cursor']}").json
        assert [d["order_id"] for d in rest["items"]] == [second["order_id"]] and rest["next_cursor"] is None
        filtered = queue(reviewers, query="?min_amount=1300.00&reason=INSUFFICIENT_BALANCE").json
        assert [d["order_id"] for d in filtered["items"]] == [second["order_id"]]
        assert_problem(queue(reviewers, query="?cursor=bm9wZQ"), 422, "cursor")

    def test_release_within_authority_takes_the_hold_and_records_who_and_why(self, reviewers: Api) -> None:
        d = deferred(reviewers)
        r = act(reviewers, d["order_id"], "release", {"reason": "transfer confirmed"})
        assert r.status_code == 200, r.json
        assert (r.json["outcome"], r.json["state"], r.json["hold"]["amount"]) == (
            "approve",
            "decided",
            "1200.00",
        )
        assert r.json["reviews"][0]["by"] == "lead" and r.json["reviews"][0]["reason"] == "transfer confirmed"
        assert reviewers.exposure(CUSTOMER_A, "GA10") == "1200.00"
        assert_problem(act(reviewers, d["order_id"], "release", {"reason": "again"}), 409, "order_id")

    def test_release_beyond_authority_is_refused_naming_authority_and_amount(self, reviewers: Api) -> None:
        d = deferred(reviewers)
        body = assert_problem(
            act(reviewers, d["order_id"], "release", {"reason": "x"}, key="admin"),
            403,
            "approval_limit",
            "amount",
        )
        assert "no approval authority" in body["detail"] and "1200.00" in body["detail"]
        assert_problem(act(reviewers, d["order_id"], "release", {"reason": "x"}, key="auditor"), 403)
        assert_problem(act(reviewers, d["order_id"], "release", {"reason": "x"}, key="admin_b"), 404)
        assert_problem(act(reviewers, d["order_id"], "release", {}), 422, "reason")

    def test_reject_recheck_and_batch_recheck(self, reviewers: Api) -> None:
        a, b, c = deferred(reviewers), deferred(reviewers), deferred(reviewers)
        r = act(reviewers, a["order_id"], "reject", {"reason": "on watch list"})
        assert (r.status_code, r.json["outcome"], r.json["reviews"][0]["action"]) == (200, "block", "reject")
        r = act(reviewers, b["order_id"], "recheck", {})
        assert (r.status_code, r.json["state"], r.json["reviews"][0]["action"]) == (
            200,
            "deferred",
            "recheck",
        )
        r = reviewers.client.post(
            "/v1/reviews/recheck",
            json={"filter": {"customer_code": CUSTOMER_A}, "reason": "sweep"},
            headers=reviewers.auth("lead"),
        )
        assert r.status_code == 200, r.json
        assert r.json == {"rechecked": 2, "by_outcome": {"defer": 2}, "more": False}
        assert c["order_id"]

    def test_releases_rejects_and_rechecks_leave_an_audit_event_naming_the_reviewer_and_request(
        self, reviewers: Api
    ) -> None:
        released, rejected, rechecked = (deferred(reviewers, a) for a in ("1200.00", "1100.00", "1050.00"))
        requests = {}
        for oid, action, body in (
            (released["order_id"], "release", {"reason": "transfer confirmed"}),
            (rejected["order_id"], "reject", {"reason": "on watch list"}),
            (rechecked["order_id"], "recheck", {"reason": "paid"}),
        ):
            r = act(reviewers, oid, action, body)
            assert r.status_code == 200, r.json
            requests[oid] = r.headers["X-Request-ID"]
        for oid, kind, reason in (
            (released["order_id"], "deferral.released", "transfer confirmed"),
            (rejected["order_id"], "deferral.rejected", "on watch list"),
            (rechecked["order_id"], "decision.rechecked", None),
        ):
            r = reviewers.client.get(
                "/v1/audit/events",
                query_string={"order_id": oid, "type": kind},
                headers=reviewers.auth("auditor"),
            )
            assert r.status_code == 200, r.json
            [event] = r.json["events"]
            assert {k: event["actor"].get(k) for k in ("name", "role", "owner")} == {
                "name": "lead",
                "role": "admin",
                "owner": "lead",
            }, (kind, event["actor"])
            assert event["request_id"] == requests[oid], kind
            if reason is not None:
                assert event["after"]["reason"] == reason

    def test_a_recheck_that_brings_a_newer_balance_is_still_the_reviewers(
        self, reviewers: Api, balances: Any, clock: Any
    ) -> None:
        """The newer balance re-evaluates the account's whole queue, this order among them: every event
        it writes names the request that brought the balance, not the system."""
        first, second = deferred(reviewers), deferred(reviewers, "1100.00")
        clock.advance(3600)  # the stored balance is too old now: a recheck asks the provider
        balances.set_balance(CUSTOMER_A, "GA10", "5000.00")
        r = act(reviewers, first["order_id"], "recheck", {"reason": "paid in"})
        assert r.status_code == 200 and r.json["outcome"] == "approve", r.json
        request_id = r.headers["X-Request-ID"]
        for oid in (first["order_id"], second["order_id"]):
            events = reviewers.client.get(
                "/v1/audit/events",
                query_string={"order_id": oid, "type": "decision.rechecked"},
                headers=reviewers.auth("auditor"),
            ).json["events"]
            assert [(e["actor"]["name"], e["request_id"]) for e in events] == [("lead", request_id)], oid

    def test_freeze_history_for_admins_and_auditors(self, reviewers: Api) -> None:
        assert reviewers.freeze(CUSTOMER_A, "GB20", {"reason": "dispute"}).status_code == 200
        assert reviewers.freeze(CUSTOMER_A, "GB20", {"reason": "settled"}, undo=True).status_code == 200
        r = reviewers.client.get(f"/v1/accounts/{CUSTOMER_A}/GB20/freezes", headers=reviewers.auth("auditor"))
        assert r.status_code == 200
        [freeze] = r.json["freezes"]
        assert (freeze["frozen_by"], freeze["lifted_how"], freeze["lift_reason"]) == (
            "admin:test-admin",
            "manual",
            "settled",
        )
        forbidden = reviewers.client.get(
            f"/v1/accounts/{CUSTOMER_A}/GB20/freezes", headers=reviewers.auth("orders")
        )
        assert_problem(forbidden, 403)
