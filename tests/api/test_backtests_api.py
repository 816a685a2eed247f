"""/v1/backtests over HTTP on SQLite: queue (202), poll while a worker's job loop runs it in-process,
read, page, export as CSV; who may do what."""

from __future__ import annotations

import csv
import io
from typing import Any

from adapters.cli.backtest_jobs import run_queued
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


def queue(api: Api, body: Any, path: str = "/v1/backtests") -> dict[str, Any]:
    """POST a backtest: 202 at once, the run queued, its Location."""
    r = api.client.post(path, json=body, headers=api.auth("admin"))
    assert r.status_code == 202, r.json
    assert r.json["status"] == "queued"
    assert r.headers["Location"] == f"/v1/backtests/{r.json['id']}"
    return r.json  # type: ignore[no-any-return]


def worked(api: Api, context: AppContext, run_id: str) -> dict[str, Any]:
    """Run the queue as a worker does (in-process), then read the run."""
    run_queued(context)
    r = api.client.get(f"/v1/backtests/{run_id}", headers=api.auth("auditor"))
    assert r.status_code == 200, r.json
    return r.json  # type: ignore[no-any-return]


class TestBacktestsApi:
    def test_an_admin_runs_one_and_an_auditor_reads_its_summary_and_pages(
        self, client: Any, keys: dict[str, str], context: AppContext
    ) -> None:
        api = Api(client, keys)
        ids = decide_some(api)
        run = worked(api, context, queue(api, {"rule_set": tightened(), **PERIOD})["id"])
        assert (run["decisions"], run["changed"], run["status"]) == (4, 3, "succeeded")
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
        self, client: Any, keys: dict[str, str], context: AppContext
    ) -> None:
        api = Api(client, keys)
        ids = decide_some(api)
        run = worked(api, context, queue(api, {"rule_set": tightened(), **PERIOD})["id"])

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
        queued = queue(api, PERIOD, f"/v1/rule-sets/{draft.json['id']}/backtest")
        assert queued["rule_set_name"] == "default"  # the name inside the document replayed
        run = worked(api, context, queued["id"])
        assert (run["status"], run["decisions"], run["changed"]) == ("succeeded", 4, 3)
        assert run["after"]["counts"]["defer"] == 3
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


RUN_MEMBERS = {
    "id", "status", "progress", "rule_set_name", "from", "to", "requested_by", "created_at", "started_at",
    "finished_at", "decisions", "changed", "missing_facts", "missing_by_fact", "params_source", "before",
    "after", "error",
}  # fmt: skip


class Watched:
    """A decision history that looks at the run through the API before handing out each batch."""

    def __init__(self, inner: Any, look: Any) -> None:
        self.inner, self.look, self.seen = inner, look, []

    def as_of(self) -> Any:
        return self.inner.as_of()

    def count(self, start: Any, end: Any) -> int:
        return self.inner.count(start, end)  # type: ignore[no-any-return]

    def account_overrides(self) -> Any:
        return self.inner.account_overrides()

    def batches(self, start: Any, end: Any, *, batch_size: int) -> Any:
        for batch in self.inner.batches(start, end, batch_size=batch_size):
            self.seen.append(self.look())
            yield batch


class TestBacktestsAreJobs:
    def test_a_post_answers_202_at_once_and_the_worker_loop_runs_it_while_the_client_polls(
        self, client: Any, keys: dict[str, str], context: AppContext
    ) -> None:
        api = Api(client, keys)
        decide_some(api)

        queued = queue(api, {"rule_set": tightened(), **PERIOD})

        assert set(queued) == RUN_MEMBERS
        assert queued["progress"] == {"replayed": 0, "total": None}
        assert (queued["started_at"], queued["finished_at"], queued["error"]) == (None, None, None)
        assert queued["decisions"] == 0 and queued["requested_by"] == "test-admin"
        read = client.get(f"/v1/backtests/{queued['id']}", headers=api.auth("auditor")).json
        assert read == queued  # nothing runs it until a worker does
        early = client.get(f"/v1/backtests/{queued['id']}/changes", headers=api.auth("auditor"))
        assert early.status_code == 409 and early.mimetype == "application/problem+json"
        assert "queued" in early.json["detail"] and "status" in early.json["errors"]
        early_csv = client.get(
            f"/v1/backtests/{queued['id']}/changes?format=csv", headers=api.auth("auditor")
        )
        assert early_csv.status_code == 409

        from adapters.cli.backtest_jobs import BacktestJobs

        jobs = BacktestJobs(context, idle_s=0.01)  # the worker's job loop, in a thread of this process
        jobs.start()
        try:
            seen = [queued["status"]]
            run = queued
            for _ in range(3000):  # polls, not a time limit: the loop ends when the run has ended
                run = client.get(f"/v1/backtests/{queued['id']}", headers=api.auth("auditor")).json
                if seen[-1] != run["status"]:
                    seen.append(run["status"])
                if run["status"] in ("succeeded", "failed"):
                    break
                jobs.stopping.wait(0.01)
        finally:
            jobs.stopping.set()
            jobs.join(timeout=30)

        assert seen[0] == "queued" and seen[-1] == "succeeded", seen
        assert set(seen) <= {"queued", "running", "succeeded"}
        assert run["progress"] == {"replayed": 4, "total": 4}
        assert (run["decisions"], run["changed"], run["error"]) == (4, 3, None)
        assert run["started_at"] is not None and run["finished_at"] is not None
        page = client.get(f"/v1/backtests/{queued['id']}/changes", headers=api.auth("auditor"))
        assert page.status_code == 200 and len(page.json["changes"]) == 3

    def test_get_shows_progress_as_the_worker_replays(
        self, client: Any, keys: dict[str, str], context: AppContext
    ) -> None:
        from creditctl.services.backtest_jobs import work_next_backtest
        from creditctl.services.backtest_replay import BacktestPolicy

        api = Api(client, keys)
        decide_some(api)
        run_id = queue(api, {"rule_set": tightened(), **PERIOD})["id"]

        def look() -> tuple[str, int, int | None]:
            run = client.get(f"/v1/backtests/{run_id}", headers=api.auth("auditor")).json
            return run["status"], run["progress"]["replayed"], run["progress"]["total"]

        history = Watched(context.decision_history, look)
        assert context.backtests is not None
        work_next_backtest(
            store=context.backtests,
            history=history,  # type: ignore[arg-type]
            holder="test-worker",
            policy=BacktestPolicy(progress_every_s=0),  # store progress after every batch
            batch_size=1,
        )

        # before each batch of one decision: running, the ones before it replayed, of the period's 4
        assert history.seen == [("running", n, 4) for n in range(4)]
        assert look() == ("succeeded", 4, 4)

    def test_a_run_whose_worker_died_ends_as_failed_when_its_lease_runs_out(
        self, client: Any, keys: dict[str, str], context: AppContext, clock: Any
    ) -> None:
        api = Api(client, keys)
        decide_some(api)
        run_id = queue(api, {"rule_set": tightened(), **PERIOD})["id"]
        store = context.backtests
        assert store is not None
        lease_s = context.backtest_policy.lease_s
        now = store.now()
        dead = store.claim("a-worker-that-dies", now, now + __import__("datetime").timedelta(seconds=lease_s))
        assert dead is not None and dead.id == run_id

        assert run_queued(context) == []  # within its lease the run is the dead worker's: left alone
        running = client.get(f"/v1/backtests/{run_id}", headers=api.auth("auditor")).json
        assert running["status"] == "running" and running["finished_at"] is None

        clock.advance(lease_s + 1)
        run_queued(context)  # the next worker round

        failed = client.get(f"/v1/backtests/{run_id}", headers=api.auth("auditor")).json
        assert failed["status"] == "failed"
        assert failed["error"].startswith("worker stopped")
        assert failed["finished_at"] is not None
        assert not store.progress(dead)  # the dead worker, back from the dead, may not write any more
        assert client.get(f"/v1/backtests/{run_id}", headers=api.auth("auditor")).json == failed
        assert client.get(f"/v1/backtests/{run_id}/changes", headers=api.auth("auditor")).status_code == 200

    def test_the_openapi_document_says_202_with_a_location_and_a_run_whose_members_are_all_required(
        self, client: Any
    ) -> None:
        spec = client.get("/openapi.json").json
        for path in ("/v1/backtests", "/v1/rule-sets/{rule_set_id}/backtest"):
            responses = spec["paths"][path]["post"]["responses"]
            assert "201" not in responses and "200" not in responses
            assert responses["202"]["headers"]["Location"]["required"] is True
            assert responses["202"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Backtest"
            }
        schemas = spec["components"]["schemas"]
        run = schemas["Backtest"]
        assert set(run["required"]) == set(run["properties"]) == RUN_MEMBERS
        nullable = {name for name, member in run["properties"].items() if member.get("nullable")}
        assert nullable == {"started_at", "finished_at", "error"}
        assert run["properties"]["status"]["enum"] == ["queued", "running", "succeeded", "failed"]
        progress = schemas["Progress"]
        assert (
            set(progress["required"]) == {"replayed", "total"} and progress["properties"]["total"]["nullable"]
        )
        tally = schemas["Tally"]
        assert set(tally["required"]) == {"counts", "approved"}
        assert "409" in spec["paths"]["/v1/backtests/{run_id}/changes"]["get"]["responses"]
