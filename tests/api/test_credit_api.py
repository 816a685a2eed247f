"""Payments, credit profiles and credit limit requests through the HTTP API."""

from __future__ import annotations

from datetime import timedelta

import pytest

from creditctl.services.api_keys import create_api_key
from tests.api.conftest import CUSTOMER_A, CUSTOMER_B, assert_problem, order

pytestmark = pytest.mark.api
ACCOUNT = f"/v1/accounts/{CUSTOMER_A}/GB20"


def payment(invoice_id: str = "INV-1", **kw):
    return {"invoice_id": invoice_id, "amount": "1000.00", "due_date": "2026-01-10", **kw}


@pytest.fixture
def second_admin(context, keys):
    keys["admin2"] = create_api_key(
        name="test-admin-2",
        role="admin",
        customers=None,
        uow=context.uow(),
        clock=context.clock,
        approval_limit="100000.00",  # approving a temporary limit is within the approver's authority
    ).secret
    return "admin2"


def post(api, body, key="finance", account=ACCOUNT):
    return api.client.post(f"{account}/payments", json=body, headers=api.auth(key))


class TestPostingPayments:
    def test_records_are_created_then_unchanged_then_updated_with_history(self, api, context):
        first = post(api, {"payments": [payment()]})
        assert first.status_code == 200, first.json
        assert first.json["created"] == 1
        again = post(api, {"payments": [payment()]})
        assert again.json == {
            "created": 0,
            "updated": 0,
            "unchanged": 1,
            "results": [{"invoice_id": "INV-1", "result": "unchanged"}],
        }
        paid = post(api, {"payments": [payment(paid_amount="400.00", paid_date="2026-01-05")]})
        assert paid.json["updated"] == 1
        with context.uow() as uow:
            account = uow.accounts.get(CUSTOMER_A, "GB20")
            changes = uow.payments.changes(account.id, "INV-1")
        assert [c["before"] is None for c in changes] == [True, False]
        assert changes[1]["after"]["paid_amount"] == "400.00" and changes[1]["by"] == "test-finance"

    def test_a_bad_record_refuses_the_whole_batch_naming_it(self, api, db_state):
        before = db_state()
        r = post(
            api, {"payments": [payment(), payment("INV-2", paid_amount="2000.00", paid_date="2026-01-01")]}
        )
        assert_problem(r, 422, "payments.1.paid_amount")
        assert db_state() == before

    def test_a_paid_date_in_the_future_is_refused(self, api):
        r = post(api, {"payments": [payment(paid_amount="1.00", paid_date="2099-01-01")]})
        assert_problem(r, 422, "payments.0.paid_date")

    def test_more_than_1000_records_are_refused(self, api):
        body = {"payments": [payment(f"I{i}") for i in range(1001)]}
        assert_problem(post(api, body), 422, "payments")

    def test_an_auditor_reads_but_may_not_post(self, api):
        assert_problem(post(api, {"payments": [payment()]}, key="auditor"), 403)
        r = api.client.get(f"{ACCOUNT}/payments", headers=api.auth("auditor"))
        assert r.status_code == 200 and r.json == {"items": [], "next_cursor": None, "limit": 100}

    def test_only_finance_posts_payment_records(self, api, db_state):
        before = db_state()
        for key in ("orders", "orders_a", "admin", "auditor"):
            for account in (ACCOUNT, f"/v1/accounts/{CUSTOMER_B}/GB20"):
                assert_problem(post(api, {"payments": [payment()]}, key=key, account=account), 403)
        assert db_state() == before

    def test_the_list_comes_in_cursor_pages(self, api):
        post(api, {"payments": [payment(f"INV-{i}") for i in range(5)]})
        seen, cursor = [], None
        while True:
            q = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            r = api.client.get(f"{ACCOUNT}/payments", query_string=q, headers=api.auth("orders"))
            assert r.status_code == 200, r.json
            seen += [p["invoice_id"] for p in r.json["items"]]
            cursor = r.json["next_cursor"]
            if cursor is None:
                break
        assert seen == [f"INV-{i}" for i in range(5)]
        assert r.json["items"][0]["paid_amount"] == "0.00"


class TestCreditProfile:
    def test_overdue_payments_lower_the_grade_and_the_limit_decisions_use(self, api, clock):
        r = api.client.put(
            f"{ACCOUNT}/credit-profile",
            json={"base_limit": "10000.00", "reason": "annual review"},
            headers=api.auth("admin"),
        )
        assert r.status_code == 200, r.json
        assert r.json["terms"]["credit_limit"] == "10000.00" and r.json["terms"]["base_source"] == "account"
        due = (clock.now() - timedelta(days=40)).date().isoformat()
        post(api, {"payments": [payment(due_date=due)]})
        profile = api.client.get(f"{ACCOUNT}/credit-profile", headers=api.auth("auditor")).json
        assert profile["payment"]["max_overdue_days"] == 40
        assert profile["payment"]["overdue_amount"] == "1000.00"
        assert profile["matched_band"] == "D"  # on-time ratio 0 of 1
        assert profile["terms"]["credit_limit"] == "0.00"
        assert [h["trigger"] for h in profile["history"]][:2] == ["payments", "base_limit"]
        decided = api.decide(order(amount="100.00"))
        assert decided.json["credit_limit"] == "0.00"

    def test_a_limited_admin_key_cannot_set_another_customers_base(self, api, context):
        keys_b = create_api_key(
            name="a-admin", role="admin", customers=[CUSTOMER_A], uow=context.uow(), clock=context.clock
        ).secret
        r = api.client.put(
            f"/v1/accounts/{CUSTOMER_B}/GB20/credit-profile",
            json={"base_limit": "1.00", "reason": "x"},
            headers=api.auth(keys_b),
        )
        assert_problem(r, 404)


class TestCreditLimitRequests:
    def ask(self, api, clock, key="admin", hours=2, amount="50000.00"):
        until = (clock.now() + timedelta(hours=hours)).isoformat()
        return api.client.post(
            f"{ACCOUNT}/credit-limit-requests",
            json={"amount": amount, "until": until, "reason": "seasonal stock"},
            headers=api.auth(key),
        )

    def test_the_requester_cannot_approve_its_own_request(self, api, clock):
        r = self.ask(api, clock)
        assert r.status_code == 201 and r.json["status"] == "pending"
        own = api.client.post(
            f"/v1/credit-limit-requests/{r.json['id']}/approve", json={}, headers=api.auth("admin")
        )
        body = assert_problem(own, 403)
        assert "four eyes" in body["detail"]

    def test_an_approved_limit_counts_until_it_ends_by_itself(self, api, clock, second_admin):
        r = self.ask(api, clock)
        ok = api.client.post(
            f"/v1/credit-limit-requests/{r.json['id']}/approve",
            json={"note": "ok"},
            headers=api.auth(second_admin),
        )
        assert ok.status_code == 200 and ok.json["status"] == "approved", ok.json
        assert api.account(CUSTOMER_A, "GB20").json["credit_limit"] == "50000.00"
        again = api.client.post(
            f"/v1/credit-limit-requests/{r.json['id']}/reject", json={}, headers=api.auth(second_admin)
        )
        assert_problem(again, 409)
        clock.advance(3 * 3600)
        assert api.account(CUSTOMER_A, "GB20").json["credit_limit"] == "0.00"
        listed = api.client.get(
            "/v1/credit-limit-requests", query_string={"status": "expired"}, headers=api.auth("auditor")
        )
        assert [i["id"] for i in listed.json["items"]] == [r.json["id"]]

    def test_a_rejected_request_changes_no_limit(self, api, clock, second_admin):
        r = self.ask(api, clock)
        no = api.client.post(
            f"/v1/credit-limit-requests/{r.json['id']}/reject", json={}, headers=api.auth(second_admin)
        )
        assert no.json["status"] == "rejected"
        assert api.account(CUSTOMER_A, "GB20").json["credit_limit"] == "0.00"
        mine = api.client.get(f"{ACCOUNT}/credit-limit-requests", headers=api.auth("orders"))
        assert [i["status"] for i in mine.json["items"]] == ["rejected"]

    def test_an_until_in_the_past_is_refused(self, api, clock):
        assert_problem(self.ask(api, clock, hours=-1), 422, "until")

    def test_an_orders_key_may_not_ask(self, api, clock):
        assert_problem(self.ask(api, clock, key="orders"), 403)


def test_a_limit_moved_by_account_parameters_is_in_the_credit_history(api):
    """The credit history holds every change of the limit, also one that parameters made (it showed none)."""
    r = api.client.put(
        f"{ACCOUNT}/params", json={"params": {"base_credit_limit": "1200000.00"}}, headers=api.auth("admin")
    )
    assert r.status_code == 200, r.json
    profile = api.client.get(f"{ACCOUNT}/credit-profile", headers=api.auth("auditor")).json
    assert profile["terms"]["credit_limit"] == "1200000.00"
    latest = profile["history"][0]
    assert (latest["trigger"], latest["limit"], latest["by"]) == ("params", "1200000.00", "test-admin")
