"""Who may create credit, over HTTP, with one person holding several keys: alice holds an orders key and
an admin key limited to customer A, a global admin key and a finance key; bob, the head office, a global
admin key. Each act of the authority table is tried with each of alice's keys that could walk around it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from werkzeug.test import TestResponse

from adapters.fake.clock import FakeClock
from creditctl.domain.errors import InvalidRequest
from creditctl.services.api_keys import create_api_key
from creditctl.services.context import AppContext
from tests.api.conftest import CUSTOMER_A, Api, assert_problem, order

pytestmark = pytest.mark.api

GA10 = f"/v1/accounts/{CUSTOMER_A}/GA10"  # balance 1,000.00


@pytest.fixture
def people(api: Api, context: AppContext) -> Api:
    for name, role, owner, customers, limit in (
        ("alice-orders", "orders", "alice", [CUSTOMER_A], None),
        ("alice-c", "admin", "alice", [CUSTOMER_A], "100000.00"),
        ("alice-hq", "admin", "alice", None, "3000.00"),
        ("alice-finance", "finance", "alice", None, None),
        ("bob", "admin", "bob", None, "1000000.00"),
    ):
        api.keys[name] = create_api_key(
            name=name,
            role=role,
            owner=owner,
            customers=customers,
            uow=context.uow(),
            clock=context.clock,
            approval_limit=limit,
        ).secret
    return api


def put(api: Api, path: str, body: Any, key: str) -> TestResponse:
    return api.client.put(f"{GA10}{path}", json=body, headers=api.auth(key))


def post(api: Api, path: str, body: Any, key: str) -> TestResponse:
    return api.client.post(
        path if path.startswith("/v1/") else f"{GA10}{path}", json=body, headers=api.auth(key)
    )


def base(api: Api, amount: str | None, key: str) -> TestResponse:
    return put(api, "/credit-profile", {"base_limit": amount, "reason": "review"}, key)


def deferred(api: Api, amount: str) -> str:
    r = api.decide(order(amount=amount, group="GA10"))
    assert r.status_code == 201 and r.json["state"] == "deferred", r.json
    return str(r.json["order_id"])


def release(api: Api, order_id: str, key: str, **extra: Any) -> TestResponse:
    return post(api, f"/v1/reviews/{order_id}/release", {"reason": "customer called", **extra}, key)


class TestOnePersonNeverCreatesCreditAlone:
    def test_the_limited_admin_of_the_finding_can_neither_raise_the_limit_nor_overdraw(
        self, people: Api, db_state: Any
    ) -> None:
        """The reviewer's walk: base limit 1,000,000.00 with a key limited to the customer, then releases
        of 90,000.00 orders on a 1,000.00 balance. Now refused, and nothing changes."""
        before = db_state()
        assert_problem(base(people, "1000000.00", "alice-c"), 403, "authority")
        assert db_state() == before
        assert base(people, "5000.00", "bob").status_code == 200
        orders = [deferred(people, "3000.00") for _ in range(4)]
        assert release(people, orders[0], "alice-c").status_code == 200
        second = release(people, orders[1], "alice-c")
        assert second.status_code == 200, second.json
        review = second.json["reviews"][-1]
        assert (review["available_before"], review["available_after"], review["overdraft"]) == (
            "-2000.00",
            "-5000.00",
            "0.00",
        )
        assert second.json["available"] == "-2000.00"  # the account now, not the deferral's figures
        # the third would take available + credit limit to -3,000.00
        assert_problem(release(people, orders[2], "alice-c", override=True), 403, "authority")
        refused = assert_problem(release(people, orders[2], "alice-hq"), 403, "authority")
        assert "override" in refused["detail"]
        third = release(people, orders[2], "alice-hq", override=True)  # authority 3,000.00 covers it
        assert third.status_code == 200, third.json
        assert third.json["reviews"][-1]["overdraft"] == "3000.00"
        assert third.json["reviews"][-1]["override"] is True
        # the fourth overdraws by 6,000.00: beyond alice's 3,000.00, within bob's
        assert_problem(release(people, orders[3], "alice-hq", override=True), 403, "authority")
        assert release(people, orders[3], "bob", override=True).status_code == 200
        assert people.exposure(CUSTOMER_A, "GA10") == "12000.00"

    def test_only_finance_posts_payments_whatever_else_the_person_holds(
        self, people: Api, clock: FakeClock, db_state: Any
    ) -> None:
        due = (clock.now() - timedelta(days=400)).date().isoformat()
        paid = {
            "payments": [
                {
                    "invoice_id": "INV-9",
                    "amount": "10.00",
                    "due_date": due,
                    "paid_amount": "10.00",
                    "paid_date": due,
                }
            ]
        }
        before = db_state()
        for key in ("alice-orders", "alice-c", "alice-hq", "bob"):
            assert_problem(post(people, "/payments", paid, key), 403)
        assert db_state() == before
        assert post(people, "/payments", paid, "alice-finance").status_code == 200

    def test_a_limited_admin_lowers_a_base_limit_but_raises_none(self, people: Api) -> None:
        assert base(people, "5000.00", "bob").status_code == 200
        assert base(people, "4000.00", "alice-c").status_code == 200
        assert_problem(base(people, "4000.01", "alice-c"), 403, "authority")
        assert base(people, "4000.01", "alice-hq").status_code == 200

    def test_account_parameters_need_a_global_admin(self, people: Api) -> None:
        body = {"params": {"safety_margin": "100.00"}}
        assert_problem(put(people, "/params", body, "alice-c"), 403)
        assert put(people, "/params", body, "alice-hq").status_code == 200


class TestFreezesAcrossOwners:
    def test_a_freeze_the_head_office_set_is_not_lifted_by_a_limited_key(self, people: Api) -> None:
        assert post(people, "/freeze", {"reason": "fraud check"}, "bob").status_code == 200
        assert_problem(post(people, "/unfreeze", {"reason": "mine"}, "alice-c"), 403, "authority")
        assert people.account(CUSTOMER_A, "GA10").json["status"] == "frozen"
        assert post(people, "/unfreeze", {"reason": "cleared"}, "alice-hq").status_code == 200

    def test_an_owner_lifts_their_own_freeze_with_another_of_their_keys(self, people: Api) -> None:
        assert post(people, "/freeze", {"reason": "dispute"}, "alice-hq").status_code == 200
        assert post(people, "/unfreeze", {"reason": "settled"}, "alice-c").status_code == 200


class TestFourEyesAreTwoOwners:
    def test_a_second_key_of_the_requester_cannot_approve(self, people: Api, clock: FakeClock) -> None:
        until = (clock.now() + timedelta(days=1)).isoformat()
        asked = post(
            people,
            "/credit-limit-requests",
            {"amount": "900000.00", "until": until, "reason": "season"},
            "alice-c",
        )
        assert asked.status_code == 201, asked.json
        url = f"/v1/credit-limit-requests/{asked.json['id']}"
        refused = assert_problem(post(people, f"{url}/approve", {"note": None}, "alice-hq"), 403)
        assert "alice" in refused["detail"]
        approved = post(people, f"{url}/approve", {"note": "ok"}, "bob")
        assert approved.status_code == 200 and approved.json["status"] == "approved"

    def test_a_key_made_again_with_the_requesters_name_is_the_same_person(
        self, people: Api, context: AppContext, clock: FakeClock
    ) -> None:
        people.keys["alice-c-named"] = create_api_key(
            name="alice-x", role="admin", customers=None, uow=context.uow(), clock=context.clock
        ).secret
        until = (clock.now() + timedelta(days=1)).isoformat()
        asked = post(
            people,
            "/credit-limit-requests",
            {"amount": "900000.00", "until": until, "reason": "season"},
            "alice-c-named",
        )
        url = f"/v1/credit-limit-requests/{asked.json['id']}/approve"
        people.keys["alice-x-again"] = create_api_key(
            name="alice-x", role="admin", customers=None, uow=context.uow(), clock=context.clock
        ).secret  # no owner given: the name's, as for the reviewer's second key of the same name
        assert_problem(post(people, url, {"note": None}, "alice-x-again"), 403)

    def test_the_api_says_who_owns_the_calling_key(self, people: Api) -> None:
        r = people.client.get("/v1/keys/current", headers=people.auth("alice-c"))
        assert r.status_code == 200
        assert {k: r.json[k] for k in ("name", "owner", "role", "customers", "approval_limit")} == {
            "name": "alice-c",
            "owner": "alice",
            "role": "admin",
            "customers": [CUSTOMER_A],
            "approval_limit": "100000.00",
        }
        assert "secret" not in r.get_data(as_text=True)


def test_a_finance_key_limited_to_customers_is_refused_when_made(context: AppContext) -> None:
    with pytest.raises(InvalidRequest, match="finance"):
        create_api_key(
            name="fin", role="finance", customers=[CUSTOMER_A], uow=context.uow(), clock=context.clock
        )


class TestWhatTheReviewFoundNext:
    """Walks a reviewer found around the first version of the table."""

    def test_approving_a_temporary_limit_is_within_the_approvers_authority_and_at_most_a_year(
        self, people: Api, clock: FakeClock
    ) -> None:
        def ask(amount: str, days: int) -> TestResponse:
            until = (clock.now() + timedelta(days=days)).isoformat()
            return post(
                people, "/credit-limit-requests", {"amount": amount, "until": until, "reason": "x"}, "alice-c"
            )

        assert_problem(ask("1000.00", 367), 422, "until")
        asked = ask("5000.00", 366)
        assert asked.status_code == 201, asked.json
        url = f"/v1/credit-limit-requests/{asked.json['id']}"
        # the test admin (another owner) has no approval authority; bob's is 1,000,000.00
        refused = assert_problem(post(people, f"{url}/approve", {"note": None}, "admin"), 403, "authority")
        assert "approval authority" in refused["detail"]
        assert post(people, f"{url}/approve", {"note": None}, "bob").status_code == 200

    def test_a_limited_key_cannot_pin_the_rule_value_as_the_accounts_own_base(self, people: Api) -> None:
        """Pinning cuts the account off from the rule set: head office's later lowering would not reach it."""
        r = put(people, "/params", {"params": {"base_credit_limit": "100000.00"}}, "bob")
        assert r.status_code == 200, r.json
        assert_problem(base(people, "100000.00", "alice-c"), 403, "authority")
        assert base(people, "99999.99", "alice-c").status_code == 200  # a real lowering is hers to make

    def test_no_release_into_an_account_the_rules_would_freeze_now(
        self, people: Api, clock: FakeClock
    ) -> None:
        assert base(people, "5000.00", "bob").status_code == 200
        order_id = deferred(people, "3000.00")
        due = (clock.now() - timedelta(days=200)).date().isoformat()
        overdue = {"payments": [{"invoice_id": "INV-OLD", "amount": "10.00", "due_date": due}]}
        assert post(people, "/payments", overdue, "alice-finance").status_code == 200
        refused = assert_problem(release(people, order_id, "bob", override=True), 409)
        assert "freeze" in refused["detail"] and "PAYMENT_OVERDUE" in refused["detail"]
        assert people.decision(order_id, key="admin").json["state"] == "deferred"

    def test_a_refusal_at_the_route_names_the_act(self, people: Api) -> None:
        for method, path, body in (
            ("PUT", f"{GA10}/params", {"params": {}}),
            ("POST", "/v1/rule-sets", {"name": "x"}),
            ("PUT", f"/v1/customers/{CUSTOMER_A}/rule-set", {"rule_set_id": 1, "reason": "x"}),
            ("POST", f"{GA10}/payments", {"payments": []}),
        ):
            r = people.client.open(path, method=method, json=body, headers=people.auth("alice-c"))
            assert assert_problem(r, 403, "authority")["errors"]["authority"], (method, path)

    def test_an_owner_may_not_pose_as_the_operator_or_the_rules(self, context: AppContext) -> None:
        for owner in ("cli:root", "Rule:overdue", "admin:hq"):
            with pytest.raises(InvalidRequest, match="may not start with"):
                create_api_key(
                    name="k",
                    role="admin",
                    owner=owner,
                    customers=None,
                    uow=context.uow(),
                    clock=context.clock,
                )
