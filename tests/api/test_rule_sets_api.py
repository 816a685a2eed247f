"""/v1/rule-sets and assignments through the Flask client: drafts, validation, publication, rollback,
diff, simulation, and decisions taking the assigned set."""

from __future__ import annotations

import copy
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tests.api.conftest import CUSTOMER_A, Api, assert_problem, order

TIGHT = "0.00"


def _draft(api: Api, document: dict[str, Any] | None = None, name: str = "tight") -> dict[str, Any]:
    body: dict[str, Any] = {"name": name}
    if document is not None:
        body["document"] = document
    r = api.client.post("/v1/rule-sets", json=body, headers=api.auth("admin"))
    assert r.status_code == 201, r.json
    return r.get_json()  # type: ignore[no-any-return]


def _publish(api: Api, rule_set_id: int, **extra: Any) -> Any:
    return api.client.post(
        f"/v1/rule-sets/{rule_set_id}/publish", json={"reason": "test", **extra}, headers=api.auth("admin")
    )


def _publish_not_the_default(api: Api, rule_set_id: int) -> None:
    """Publish it in effect now, then roll the default back to version 1: it decides only where assigned.
    (A version scheduled for later would not: a pinned version decides from its effective_at too.)"""
    assert _publish(api, rule_set_id).status_code == 200
    r = api.client.post("/v1/rule-sets/1/rollback", json={"reason": "test"}, headers=api.auth("admin"))
    assert r.status_code == 201, r.json


def _blocking_document(api: Api) -> dict[str, Any]:
    """The default set with a tiny review amount: any order above 1.00 is deferred (MANUAL_REVIEW)."""
    current = api.client.get("/v1/rule-sets/1", headers=api.auth("admin")).get_json()["document"]
    document = copy.deepcopy(current)
    document["params"]["single_order_review_amount"] = "1.00"
    return document


class TestDrafts:
    def test_a_draft_starts_as_a_copy_of_the_active_set_with_no_version(self, api: Api) -> None:
        draft = _draft(api)
        assert draft["version"] is None and draft["status"] == "draft"
        assert draft["created_by"] == "test-admin"
        listed = api.client.get("/v1/rule-sets", headers=api.auth("auditor")).get_json()["rule_sets"]
        assert [(s["version"], s["status"]) for s in listed] == [(1, "active"), (None, "draft")]

    def test_a_published_version_cannot_be_edited(self, api: Api) -> None:
        r = api.client.put("/v1/rule-sets/1", json={"name": "x", "document": {}}, headers=api.auth("admin"))
        assert_problem(r, 409, "rule_set")

    def test_validate_lists_every_problem_with_its_pointer(self, api: Api) -> None:
        bad = {
            "name": "bad",
            "rules": [
                {"id": "a", "when": {"fact": "nope", "op": "gt", "value": 1}, "outcome": "x", "reason": "AA"},
                {
                    "id": "a",
                    "when": {"fact": "order.amount", "op": "gt", "value": "abc"},
                    "outcome": "block",
                    "reason": "BB",
                    "message": "{unknown_field}",
                },
            ],
        }
        draft = _draft(api, bad)
        r = api.client.post(f"/v1/rule-sets/{draft['id']}/validate", headers=api.auth("admin"))
        pointers = {e["pointer"] for e in r.get_json()["errors"]}
        assert r.get_json()["valid"] is False
        assert pointers == {
            "/rules/0/when/fact",
            "/rules/0/outcome",
            "/rules/1/id",
            "/rules/1/when/value",
            "/rules/1/message",
        }
        body = assert_problem(_publish(api, draft["id"]), 422, "/rules/0/when/fact", "/rules/1/message")
        assert body["code"] == "invalid.rule_set" if "code" in body else True

    def test_writes_need_an_admin_key_not_limited_to_customers(self, api: Api) -> None:
        r = api.client.post("/v1/rule-sets", json={"name": "x"}, headers=api.auth("auditor"))
        assert_problem(r, 403)


class TestPublishing:
    def test_publishing_makes_version_two_active_with_who_and_why(self, api: Api) -> None:
        draft = _draft(api, _blocking_document(api))
        r = _publish(api, draft["id"])
        assert r.status_code == 200, r.json
        assert (r.json["version"], r.json["status"], r.json["published_by"], r.json["reason"]) == (
            2,
            "active",
            "test-admin",
            "test",
        )
        assert_problem(_publish(api, draft["id"]), 409)
        decided = api.decide(order(amount="50.00"))
        assert decided.json["outcome"] == "defer"
        assert decided.json["rule_set"] == {"id": draft["id"], "version": 2}

    def test_a_version_effective_in_the_future_is_published_but_not_yet_active(self, api: Api) -> None:
        draft = _draft(api, _blocking_document(api))
        r = _publish(api, draft["id"], effective_at="2999-01-01T00:00:00+00:00")
        assert (r.json["version"], r.json["status"]) == (2, "published")
        assert api.decide(order(amount="50.00")).json["rule_set"]["version"] == 1

    def test_rollback_publishes_a_copy_of_the_older_version(self, api: Api) -> None:
        draft = _draft(api, _blocking_document(api))
        _publish(api, draft["id"])
        r = api.client.post(
            "/v1/rule-sets/1/rollback", json={"reason": "too tight"}, headers=api.auth("admin")
        )
        assert r.status_code == 201, r.json
        assert (r.json["version"], r.json["status"], r.json["rolled_back_from"]) == (3, "active", 1)
        assert api.decide(order(amount="50.00")).json["outcome"] == "approve"
        listed = api.client.get("/v1/rule-sets", headers=api.auth("admin")).get_json()["rule_sets"]
        assert [s["status"] for s in listed] == ["retired", "retired", "active"]

    def test_diff_names_the_changed_param(self, api: Api) -> None:
        draft = _draft(api, _blocking_document(api))
        r = api.client.get(f"/v1/rule-sets/diff?from=1&to={draft['id']}", headers=api.auth("auditor"))
        assert r.status_code == 200, r.json
        assert r.json["params"]["changed"] == {
            "single_order_review_amount": {"before": "500000.00", "after": "1.00"}
        }
        assert r.json["rules"] == {"added": [], "removed": [], "changed": []}


class TestAssignments:
    def test_the_account_assignment_beats_the_customer_one_and_the_account_view_says_why(
        self, api: Api
    ) -> None:
        assert api.decide(order(amount="10.00")).status_code == 201  # the account exists now
        draft = _draft(api, _blocking_document(api))
        _publish_not_the_default(api, draft["id"])
        assert api.account(CUSTOMER_A, "GB20").json["rule_set"]["why"] == "the global default"
        r = api.client.put(
            f"/v1/customers/{CUSTOMER_A}/rule-set",
            json={"rule_set_id": draft["id"], "reason": "risky"},
            headers=api.auth("admin"),
        )
        assert r.status_code == 200, r.json
        view = api.account(CUSTOMER_A, "GB20").json["rule_set"]
        assert (view["version"], view["why"]) == (2, "assigned to the customer")
        assert api.decide(order(amount="50.00")).json["outcome"] == "defer"
        r = api.client.put(
            f"/v1/accounts/{CUSTOMER_A}/GB20/rule-set",
            json={"rule_set_id": 1, "reason": "exempt"},
            headers=api.auth("admin"),
        )
        assert r.status_code == 200, r.json
        view = api.account(CUSTOMER_A, "GB20").json["rule_set"]
        assert (view["version"], view["why"]) == (1, "assigned to the account")
        assert api.decide(order(amount="50.00")).json["outcome"] == "approve"

    def test_the_exposure_report_uses_each_accounts_own_rule_set(self, api: Api) -> None:
        assert api.decide(order(amount="10.00")).status_code == 201
        current = api.client.get("/v1/rule-sets/1", headers=api.auth("admin")).get_json()["document"]
        document = copy.deepcopy(current)
        document["params"]["safety_margin"] = "5000.00"
        draft = _draft(api, document, name="margin")
        _publish_not_the_default(api, draft["id"])
        r = api.client.put(
            f"/v1/customers/{CUSTOMER_A}/rule-set",
            json={"rule_set_id": draft["id"], "reason": "keep a margin"},
            headers=api.auth("admin"),
        )
        assert r.status_code == 200, r.json
        view = api.account(CUSTOMER_A, "GB20").json
        report = api.client.get("/v1/reports/exposure", headers=api.auth("auditor")).json
        [line] = [
            a
            for a in report["accounts"]
            if (a["customer_code"], a["sale_group_code"]) == (CUSTOMER_A, "GB20")
        ]
        assert line["available"] == view["available"]
        assert Decimal(view["balance"]["amount"]) - Decimal(view["exposure"]) - Decimal(
            line["available"]
        ) == Decimal("5000.00")

    def test_a_draft_cannot_be_assigned(self, api: Api) -> None:
        api.decide(order(amount="10.00"))
        draft = _draft(api)
        r = api.client.put(
            f"/v1/customers/{CUSTOMER_A}/rule-set",
            json={"rule_set_id": draft["id"], "reason": "x"},
            headers=api.auth("admin"),
        )
        assert_problem(r, 409, "rule_set")

    def test_param_overrides_are_type_checked_and_shown_on_the_account(self, api: Api) -> None:
        api.decide(order(amount="10.00"))
        url = f"/v1/accounts/{CUSTOMER_A}/GB20/params"
        r = api.client.put(
            url,
            json={"params": {"nope": 1, "max_overdue_days": "1.00", "base_credit_limit": 5}},
            headers=api.auth("admin"),
        )
        assert_problem(r, 422, "/params/nope", "/params/max_overdue_days", "/params/base_credit_limit")
        r = api.client.put(
            url, json={"params": {"single_order_review_amount": "1.00"}}, headers=api.auth("admin")
        )
        assert r.status_code == 200, r.json
        assert r.json["params"] == {"single_order_review_amount": "1.00"}
        assert api.decide(order(amount="50.00")).json["outcome"] == "defer"


class TestSimulation:
    def test_simulating_a_draft_on_a_hypothetical_account_traces_every_rule(self, api: Api) -> None:
        draft = _draft(api)
        body = {
            "amount": "600000.00",
            "sale_group_code": "GB20",
            "account": {"balance": "1000000.00", "balance_age_s": 10},
        }
        r = api.client.post(f"/v1/rule-sets/{draft['id']}/simulate", json=body, headers=api.auth("auditor"))
        assert r.status_code == 200, r.json
        assert r.json["outcome"] == "defer"
        assert [x["reason"] for x in r.json["reasons"]] == ["MANUAL_REVIEW"]
        large = next(t for t in r.json["trace"] if t["rule"] == "large")
        assert large["matched"] is True and large["reads"] == {"order.amount": "600000.00"}

    def test_simulating_on_a_real_account_writes_nothing(
        self, api: Api, db_state: Callable[[], dict[str, Any]]
    ) -> None:
        api.decide(order(amount="10.00"))
        before = db_state()
        body = {"amount": "50.00", "sale_group_code": "GB20", "customer_code": CUSTOMER_A}
        r = api.client.post("/v1/rule-sets/1/simulate", json=body, headers=api.auth("admin"))
        assert r.status_code == 200, r.json
        assert r.json["outcome"] == "approve" and r.json["facts"]["exposure"] == "10.00"
        assert db_state() == before

    def test_simulating_without_an_account_is_refused(self, api: Api) -> None:
        r = api.client.post(
            "/v1/rule-sets/1/simulate",
            json={"amount": "1.00", "sale_group_code": "GB20"},
            headers=api.auth("admin"),
        )
        assert_problem(r, 422, "account")
