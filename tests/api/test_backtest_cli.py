"""`creditctl rules backtest FILE --from --to [--csv OUT]` against the test database."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from adapters.bootstrap import Settings
from adapters.cli.main import CliOps, build_cli
from adapters.sql.migrate import upgrade
from creditctl.services.context import AppContext
from rules import default_rule_set_document
from tests.api.conftest import Api, order

pytestmark = pytest.mark.api


def run_cli(context: AppContext, engine: Engine, tmp_path: Path, *args: str) -> Any:
    url = str(engine.url)
    ops = CliOps(
        load_settings=lambda: Settings(instance_path=tmp_path / "instance", database_url=url),
        make_context=lambda: context,
        upgrade_db=lambda: upgrade(url),
        database_url=lambda: url,
        configure_logging=lambda level: None,
    )
    return CliRunner().invoke(build_cli(ops), list(args), catch_exceptions=False)


class TestRulesBacktest:
    def test_prints_counts_and_money_and_writes_the_changed_orders_as_csv(
        self, context: AppContext, sqlite_engine: Engine, tmp_path: Path, client: Any, keys: dict[str, str]
    ) -> None:
        api = Api(client, keys)
        for amount in ("500.00", "2000.00"):
            assert api.decide(order(amount=amount)).status_code == 201
        document = default_rule_set_document()
        document["params"] = {**document.get("params", {}), "single_order_review_amount": "1000.00"}
        rules = tmp_path / "draft.json"
        rules.write_text(json.dumps(document))
        out = tmp_path / "changes.csv"

        result = run_cli(
            context, sqlite_engine, tmp_path,
            "rules", "backtest", str(rules), "--from", "2000-01-01", "--to", "2100-01-01", "--csv", str(out),
        )  # fmt: skip

        assert result.exit_code == 0, result.output
        assert "approve              2           1" in result.output
        assert "approved money: 2500.00 before, 500.00 after" in result.output
        assert "orders whose outcome changes: 1" in result.output
        rows = list(csv.reader(out.read_text(encoding="utf-8").splitlines()))
        assert rows[0] == [
            "order_id",
            "customer_code",
            "sale_group_code",
            "amount",
            "before",
            "after",
            "reasons",
        ]
        assert rows[1][3:] == ["2000.00", "approve", "defer", "MANUAL_REVIEW"]

    def test_an_invalid_rule_set_is_an_error_line_naming_the_pointer(
        self, context: AppContext, sqlite_engine: Engine, tmp_path: Path
    ) -> None:
        document = default_rule_set_document()
        document["rules"][0]["outcome"] = "maybe"
        rules = tmp_path / "bad.json"
        rules.write_text(json.dumps(document))

        result = run_cli(
            context,
            sqlite_engine,
            tmp_path,
            "rules",
            "backtest",
            str(rules),
            "--from",
            "2026-01-01",
            "--to",
            "2026-02-01",
        )

        assert result.exit_code == 1
        assert "rule set is not valid" in result.output


def tightened() -> dict[str, Any]:
    document = default_rule_set_document()
    document["params"] = {**document.get("params", {}), "single_order_review_amount": "1000.00"}
    return document


PERIOD = {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}


class TestWorkerAndExpire:
    def test_worker_once_runs_every_queued_backtest(
        self,
        context: AppContext,
        sqlite_engine: Engine,
        tmp_path: Path,
        client: Any,
        keys: dict[str, str],
        clock: Any,
    ) -> None:
        api = Api(client, keys)
        assert api.decide(order(amount="2000.00")).status_code == 201
        ids = []
        for _ in range(2):
            clock.advance(1)  # queued one after the other: run oldest first
            post = client.post(
                "/v1/backtests", json={"rule_set": tightened(), **PERIOD}, headers=api.auth("admin")
            )
            ids.append(post.json["id"])

        result = run_cli(context, sqlite_engine, tmp_path, "worker", "--once", "--seal-every", "0")

        assert result.exit_code == 0, result.output
        assert f"backtests run 2; {ids[0]} succeeded; {ids[1]} succeeded" in result.output
        for run_id in ids:
            run = client.get(f"/v1/backtests/{run_id}", headers=api.auth("auditor")).json
            assert (run["status"], run["changed"]) == ("succeeded", 1)

    def test_expire_ends_runs_whose_worker_stopped_and_prunes_old_ones(
        self,
        context: AppContext,
        sqlite_engine: Engine,
        tmp_path: Path,
        client: Any,
        keys: dict[str, str],
        clock: Any,
    ) -> None:
        api = Api(client, keys)
        assert api.decide(order(amount="2000.00")).status_code == 201
        post = {"json": {"rule_set": tightened(), **PERIOD}, "headers": api.auth("admin")}
        old = [client.post("/v1/backtests", **post).json["id"] for _ in range(2)]
        assert (
            run_cli(context, sqlite_engine, tmp_path, "worker", "--once", "--seal-every", "0").exit_code == 0
        )
        stuck = client.post("/v1/backtests", **post).json["id"]
        store = context.backtests
        assert store is not None
        assert store.claim("a-worker-killed-with-sigkill", store.now(), store.now()) is not None
        clock.advance(31 * 86400)

        result = run_cli(context, sqlite_engine, tmp_path, "expire")

        assert result.exit_code == 0, result.output
        assert "backtests whose worker stopped: 1; old backtests pruned: 2" in result.output
        for run_id in old:  # ended 31 days ago: gone, with their changed orders
            assert client.get(f"/v1/backtests/{run_id}", headers=api.auth("auditor")).status_code == 404
        failed = client.get(f"/v1/backtests/{stuck}", headers=api.auth("auditor")).json
        assert failed["status"] == "failed" and failed["error"].startswith("worker stopped")
