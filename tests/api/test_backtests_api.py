"""/v1/backtests over HTTP on SQLite: run, read, page, export as CSV; who may do what."""

from __future__ import annotations

import csv
import io
from typing import Any

from creditctl.services.context import AppContext
from rules import default_rule_set_document
from tests.api.conftest import CUSTOMER_A, Api, order

PERIOD = {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}


def tightened() -> dict[str, Any]:
    document = default_rule_set_document()
    document["params"] = {**document.get("params", {}), "single_order_review_amount": "1000.00"}
    return document


def decide_some(api: Api) -> list[str]:
    ids = []
    for amount in ("500.00", "2000.00", "3000.00", "4000.00"):
        body = order(amount=amount)
        assert api.decide(body).status_code == 201
        ids.append(body["order_id"])
    return ids


class TestBacktestsApi:
    def test_an_admin_runs_one_and_an_auditor_reads_its_summary_and_pages(
        self, client: Any, keys: dict[str, str], context: AppContext
    ) -> None:
        api = Api(client, keys)
        ids = decide_some(api)
        r = client.post("/v1/backtests", json={"rule_set": tightened(), **PERIOD}, headers=api.auth("admin"))
        assert r.status_code == 201, r.json
        run = r.json
        assert (run["decisions"], run["changed"], run["status"]) == (4, 3, "done")
        assert run["before"] == {
            "counts": {"approve": 4, "defer": 0, "block": 0, "freeze": 0},
            "approved": "9500.00",
        }
        assert run["after"]["approved"] == "500.00" and run["after"]["counts"]["defer"] == 3

        assert client.get(f"/v1/backtests/{run['id']}", headers=api.auth("auditor")).json == run
        seen, cursor = [], ""
        while cursor is not None:
            page = client.get(
                f"/v1/backtests/{run['id']}/changes?limit=2&cursor={cursor}", headers=api.auth("auditor")
            ).json
            seen += page["changes"]
            cursor = page["next_cursor"]
        # one clock in the test: all decided at the same instant, so in decision-id order
        assert sorted(c["order_id"] for c in seen) == sorted(ids[1:])
        assert [c["seq"] for c in seen] == [1, 2, 3]
        first = next(c for c in seen if c["order_id"] == ids[1])
        assert first | {"reasons": None, "seq": None} == {
            "seq": None,
            "order_id": ids[1],
            "customer_code": CUSTOMER_A,
            "sale_group_code": "GB20",
            "amount": "2000.00",
            "before": "approve",
            "after": "defer",
            "reasons": None,
        }
        assert [x["reason"] for x in first["reasons"]] == ["MANUAL_REVIEW"]

    def test_exports_the_changes_as_csv_with_documented_columns(
        self, client: Any, keys: dict[str, str]
    ) -> None:
        api = Api(client, keys)
        ids = decide_some(api)
        run = client.post(
            "/v1/backtests", json={"rule_set": tightened(), **PERIOD}, headers=api.auth("admin")
        ).json

        r = client.get(f"/v1/backtests/{run['id']}/changes?format=csv", headers=api.auth("auditor"))

        assert r.status_code == 200 and r.mimetype == "text/csv"
        rows = list(csv.reader(io.StringIO(r.get_data(as_text=True))))
        assert rows[0] == [
            "order_id",
            "customer_code",
            "sale_group_code",
            "amount",
            "before",
            "after",
            "reasons",
        ]
        assert [ids[1], CUSTOMER_A, "GB20", "2000.00", "approve", "defer", "MANUAL_REVIEW"] in rows
        assert len(rows) == 4

    def test_refuses_an_invalid_rule_set_with_pointers_and_non_admins(
        self, client: Any, keys: dict[str, str]
    ) -> None:
        api = Api(client, keys)
        bad = default_rule_set_document()
        bad["rules"][0]["outcome"] = "maybe"
        r = client.post("/v1/backtests", json={"rule_set": bad, **PERIOD}, headers=api.auth("admin"))
        assert r.status_code == 422 and r.mimetype == "application/problem+json"
        assert "rule_set/rules/0/outcome" in r.json["errors"]
        for key in ("auditor", "orders"):
            r = client.post("/v1/backtests", json={"rule_set": tightened(), **PERIOD}, headers=api.auth(key))
            assert r.status_code == 403
        r = client.post(
            "/v1/backtests", json={"rule_set": tightened(), **PERIOD, "extra": 1}, headers=api.auth("admin")
        )
        assert r.status_code == 422
        assert client.get("/v1/backtests/nope", headers=api.auth("auditor")).status_code == 404
        assert (
            client.get("/v1/backtests/nope/changes?format=csv", headers=api.auth("auditor")).status_code
            == 404
        )

    def test_the_routes_are_in_the_openapi_document(self, client: Any) -> None:
        paths = client.get("/openapi.json").json["paths"]
        assert {"/v1/backtests", "/v1/backtests/{run_id}", "/v1/backtests/{run_id}/changes"} <= set(paths)
        assert "text/csv" in paths["/v1/backtests/{run_id}/changes"]["get"]["responses"]["200"]["content"]


class TestBacktestOfAStoredRuleSet:
    def test_a_draft_is_backtested_by_id_before_it_is_published(
        self, client: Any, keys: dict[str, str], context: AppContext
    ) -> None:
        api = Api(client, keys)
        decide_some(api)
        draft = client.post(
            "/v1/rule-sets", json={"name": "tighter", "document": tightened()}, headers=api.auth("admin")
        )
        assert draft.status_code == 201, draft.json
        r = client.post(f"/v1/rule-sets/{draft.json['id']}/backtest", json=PERIOD, headers=api.auth("admin"))
        assert r.status_code == 201, r.json
        assert (r.json["decisions"], r.json["changed"]) == (4, 3)
        assert r.json["after"]["counts"]["defer"] == 3
        # the draft is still a draft: a backtest publishes nothing
        assert (
            client.get(f"/v1/rule-sets/{draft.json['id']}", headers=api.auth("admin")).json["status"]
            == "draft"
        )

    def test_an_unknown_rule_set_is_404_and_an_auditor_may_not_run_one(
        self, client: Any, keys: dict[str, str]
    ) -> None:
        api = Api(client, keys)
        assert (
            client.post("/v1/rule-sets/999/backtest", json=PERIOD, headers=api.auth("admin")).status_code
            == 404
        )
        assert (
            client.post("/v1/rule-sets/1/backtest", json=PERIOD, headers=api.auth("auditor")).status_code
            == 403
        )
