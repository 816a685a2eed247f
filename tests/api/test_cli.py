"""The creditctl command, driven with click's CliRunner around the test context (fake balances, clock)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from adapters.bootstrap import Settings
from adapters.cli.main import CliOps, build_cli
from adapters.sql.migrate import upgrade
from rules import default_rule_set_document
from tests.api.conftest import CUSTOMER_A, order

pytestmark = pytest.mark.api

HOLD_TTL_S = 604800  # the default rule set's hold_ttl_s


@pytest.fixture
def cli(context, sqlite_engine, tmp_path):
    """Run a creditctl command line against the test database; returns the click Result."""
    url = str(sqlite_engine.url)
    ops = CliOps(
        load_settings=lambda: Settings(instance_path=tmp_path / "instance", database_url=url),
        make_context=lambda: context,
        upgrade_db=lambda: upgrade(url),
        database_url=lambda: url,
        configure_logging=lambda level: None,
    )
    command = build_cli(ops)
    runner = CliRunner()

    def run(*args: str, ok: bool = True):
        result = runner.invoke(command, list(args), catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return run


class TestKeys:
    def test_a_created_key_is_printed_once_and_authenticates(self, cli, client):
        secret = cli("keys", "create", "--role", "orders", "--name", "erp").output.strip()
        assert secret.startswith("cck_") and "\n" not in secret
        r = client.post("/v1/decisions", json=order(), headers={"X-API-Key": secret})
        assert r.status_code == 201, r.json
        assert secret not in cli("keys", "list").output

    def test_a_key_limited_to_a_customer_sees_only_that_customer(self, cli, client):
        secret = cli("keys", "create", "--role", "auditor", "--name", "a-only", "--customer", CUSTOMER_A)
        headers = {"Authorization": f"Bearer {secret.output.strip()}"}
        assert client.get(f"/v1/accounts/{CUSTOMER_A}/GA10", headers=headers).status_code == 200
        assert client.get("/v1/accounts/8800000002/GA10", headers=headers).status_code == 404

    def test_a_key_for_a_customer_the_provider_names_needs_no_registration(self, cli, client, balances):
        balances.set_balance("8800000003", "GA10", "500.00")  # in the fake file, never registered
        made = cli("keys", "create", "--role", "auditor", "--name", "gamma", "--customer", "8800000003")
        headers = {"Authorization": f"Bearer {made.output.strip()}"}
        assert "500.00" in cli("balance", "8800000003").output
        r = client.get("/v1/balances/8800000003", headers=headers)
        assert r.status_code == 200, r.json
        assert [a["balance"] for a in r.json["accounts"]] == ["500.00"]
        assert cli("customer", "8800000003", "--name", "Gamma").output.strip() == "already registered"
        listed = client.get("/v1/customers", headers=headers).json["customers"]
        assert [(c["customer_code"], c["name"]) for c in listed] == [("8800000003", "Gamma")]

    def test_a_key_for_an_unknown_customer_is_refused_cleanly(self, cli):
        result = cli(
            "keys", "create", "--role", "orders", "--name", "x", "--customer", "8899999999", ok=False
        )
        assert result.exit_code != 0
        assert "8899999999" in result.output
        assert "Traceback" not in result.output

    def test_an_admin_key_carries_the_approval_limit_it_was_made_with(self, cli):
        cli("keys", "create", "--role", "admin", "--name", "credit-lead", "--approval-limit", "100000.00")
        cli("keys", "create", "--role", "admin", "--name", "plain-admin")
        lines = cli("keys", "list").output.splitlines()
        assert next(x for x in lines if "\tcredit-lead\t" in x).endswith("\tapproval limit 100000.00")
        assert next(x for x in lines if "\tplain-admin\t" in x).endswith("\tno approval authority")
        for bad in (
            ("--role", "orders", "--approval-limit", "1.00"),
            ("--role", "admin", "--approval-limit", "1.005"),
        ):
            result = cli("keys", "create", "--name", "x", *bad, ok=False)
            assert result.exit_code == 1 and "approval limit" in result.output

    def test_a_key_is_issued_to_an_owner_the_list_shows(self, cli):
        cli("keys", "create", "--role", "admin", "--name", "ann-laptop", "--owner", "Ann Li")
        cli("keys", "create", "--role", "finance", "--name", "erp-sync")
        lines = [x.split("\t") for x in cli("keys", "list").output.splitlines()]
        owners = {row[1]: (row[2], row[3]) for row in lines}
        assert owners["ann-laptop"] == ("Ann Li", "admin")
        assert owners["erp-sync"] == ("erp-sync", "finance")  # no owner given: the key's name
        limited = cli(
            "keys", "create", "--role", "finance", "--name", "f", "--customer", "8800000001", ok=False
        )
        assert limited.exit_code == 1 and "finance" in limited.output
        for owner in (" ", "ali\u200bce", "x" * 101):
            refused = cli("keys", "create", "--role", "admin", "--name", "k", "--owner", owner, ok=False)
            assert refused.exit_code == 1 and "owner" in refused.output, owner
        cli("keys", "create", "--role", "admin", "--name", "k2", "--owner", "  Bo   Chen ")
        rows = [x.split("\t") for x in cli("keys", "list").output.splitlines()]
        assert next(r for r in rows if r[1] == "k2")[2] == "Bo Chen"

    def test_an_unknown_role_is_refused(self, cli):
        result = cli("keys", "create", "--role", "root", "--name", "x", ok=False)
        assert result.exit_code == 2 and "root" in result.output

    def test_the_list_shows_every_key_but_never_a_secret(self, cli, keys):
        listing = cli("keys", "list").output
        for name in ("test-orders", "test-admin", "test-auditor", "test-orders-a"):
            assert name in listing
        assert "8800000001" in listing and "all customers" in listing
        for secret in keys.values():
            assert secret not in listing and secret[4:20] not in listing

    def test_a_revoked_key_no_longer_authenticates(self, cli, app, client):
        secret = cli("keys", "create", "--role", "auditor", "--name", "leaving").output.strip()
        line = next(x for x in cli("keys", "list").output.splitlines() if "\tleaving\t" in x)
        key_id = line.split("\t")[0]
        assert cli("keys", "revoke", key_id).output.strip() == f"key {key_id} revoked"
        app.extensions["creditctl.keys"]._items.clear()  # the process cache would honour it up to its TTL
        r = client.get(f"/v1/accounts/{CUSTOMER_A}/GA10", headers={"X-API-Key": secret})
        assert r.status_code == 401
        assert "revoked" in next(x for x in cli("keys", "list").output.splitlines() if "\tleaving\t" in x)
        again = cli("keys", "revoke", key_id, ok=False)
        assert again.exit_code == 1 and "no active key" in again.output


class TestOperations:
    def test_balance_fetches_and_stores_every_payer_account(self, cli, balances, api, clock):
        balances.set_balance(CUSTOMER_A, "GA10", "4321.09")
        clock.advance(1)  # a snapshot replaces the stored one only when it is newer
        lines = cli("balance", CUSTOMER_A).output.splitlines()
        rows = {line.split("\t")[0]: line.split("\t") for line in lines}
        assert set(rows) == {"GA10", "GB20"}
        assert rows["GA10"][1] == "4321.09" and rows["GA10"][2] == "Alpha Co"
        assert api.account(CUSTOMER_A, "GA10").json["balance"]["amount"] == "4321.09"

    @pytest.mark.parametrize(
        ("args", "named"),
        [
            (("balance", "8899999999"), "8899999999"),
            (
                ("evaluate", "--customer", "8899999999", "--sale-group", "GA10", "--amount", "1.00"),
                "8899999999",
            ),
            (("evaluate", "--customer", CUSTOMER_A, "--sale-group", "ZZ99", "--amount", "1.00"), "ZZ99"),
            (("recheck", "never-decided"), "never-decided"),
        ],
        ids=["balance", "evaluate-customer", "evaluate-sale-group", "recheck"],
    )
    def test_an_unknown_customer_account_or_order_is_an_error_line_not_a_traceback(self, cli, args, named):
        result = cli(*args, ok=False)
        assert result.exit_code == 1
        assert result.output.startswith("Error: ") and named in result.output

    def test_evaluate_prints_the_outcome_and_the_rule_trace_and_reserves_nothing(self, cli, api, db_state):
        before = db_state()
        out = json.loads(
            cli("evaluate", "--customer", CUSTOMER_A, "--sale-group", "GA10", "--amount", "1000.01").output
        )
        assert out["outcome"] == "block"
        assert [r["reason"] for r in out["reasons"]] == ["CREDIT_LIMIT_EXCEEDED"]
        assert out["shortfall"] == "0.01" and out["rule_set_version"] == 1
        trace = {t["rule"]: t for t in out["trace"]}
        assert trace["over_limit"]["matched"] is True and trace["low"]["matched"] is False
        assert {"frozen", "stale", "depleted", "short", "large"} <= set(trace)
        assert db_state() == before

    def test_evaluate_refuses_an_amount_that_is_not_exact_money(self, cli):
        result = cli(
            "evaluate", "--customer", CUSTOMER_A, "--sale-group", "GA10", "--amount", "1.001", ok=False
        )
        assert result.exit_code == 2 and "--amount" in result.output

    def test_expire_ends_holds_past_their_time(self, cli, api, clock):
        api.decide(order(amount="300.00"))
        assert api.exposure(CUSTOMER_A, "GB20") == "300.00"
        clock.advance(HOLD_TTL_S + 1)
        assert "accounts with expired holds: 1" in cli("expire").output
        assert api.exposure(CUSTOMER_A, "GB20") == "0.00"
        assert "accounts with expired holds: 0" in cli("expire").output

    def test_recheck_re_evaluates_deferred_orders(self, cli, api, context, balances, clock):
        with context.uow() as uow:
            account = uow.accounts.lock(CUSTOMER_A, "GA10")
            account.params["base_credit_limit"] = "500.00"
            uow.accounts.save(account)
            uow.commit()
        oid = api.decide(order(amount="1200.00", group="GA10")).json["order_id"]
        assert cli("recheck").output.split() == [oid, "defer", "deferred"]
        balances.set_balance(CUSTOMER_A, "GA10", "5000.00")
        clock.advance(301)
        assert cli("recheck", oid).output.split() == [oid, "approve", "decided"]
        assert api.decision(oid).json["hold"]["status"] == "open"
        assert cli("recheck").output == ""


class TestRules:
    def test_export_then_import_publishes_the_next_version(self, cli, api, tmp_path):
        exported = cli("rules", "export").output
        document = json.loads(exported)
        assert {r["id"] for r in document["rules"]} >= {"frozen", "stale", "over_limit", "short", "low"}
        path = tmp_path / "rules.json"
        path.write_text(exported, encoding="utf-8")
        assert cli("rules", "import", str(path)).output.strip() == "published version 2"
        assert json.loads(cli("rules", "export").output)["rules"] == document["rules"]
        assert api.decide(order()).json["rule_set"]["version"] == 2

    @pytest.mark.parametrize(
        ("edit", "pointer"),
        [
            (lambda d: d["rules"][4]["when"].update(op="between"), "/rules/4/when"),
            (lambda d: d["rules"][0].update(outcome="maybe"), "/rules/0/outcome"),
            (lambda d: d["rules"][1]["when"]["any"][0].update(fact="no.such.fact"), "/rules/1/when/any/0"),
            (lambda d: d["params"].update(hold_ttl_s=0), "/params/hold_ttl_s"),
            (lambda d: d["params"].update(hold_ttl_s=2**63 - 1), "/params/hold_ttl_s"),
            (lambda d: d["params"].update(base_credit_limit="1" + "0" * 16), "/params/base_credit_limit"),
        ],
    )
    def test_a_bad_document_is_refused_with_a_pointer_and_nothing_published(
        self, cli, api, tmp_path, edit, pointer
    ):
        document = json.loads(cli("rules", "export").output)
        edit(document)
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        result = cli("rules", "import", str(path), ok=False)
        assert result.exit_code == 1
        assert "rule set refused" in result.output and pointer in result.output
        assert api.decide(order()).json["rule_set"]["version"] == 1

    @pytest.mark.parametrize("text", ["{not json", "[]", '{"rules": [], "params": {"x": NaN}}'])
    def test_a_document_that_is_not_a_json_object_is_refused(self, cli, tmp_path, text):
        path = tmp_path / "bad.json"
        path.write_text(text, encoding="utf-8")
        result = cli("rules", "import", str(path), ok=False)
        assert result.exit_code == 1 and "rule set refused" in result.output


class TestRulesSimulate:
    """`creditctl rules simulate FILE`: a rule set kept in git, tried on one order before it is stored."""

    def test_a_file_is_simulated_on_a_stored_account_and_on_a_hypothetical_one(self, cli, db_state, tmp_path):
        document = default_rule_set_document()
        document["params"] = {**document["params"], "single_order_review_amount": "100.00"}
        path = tmp_path / "tighter.json"
        path.write_text(json.dumps(document))
        before = db_state()
        real = json.loads(
            cli(
                "rules",
                "simulate",
                str(path),
                "--customer",
                CUSTOMER_A,
                "--sale-group",
                "GB20",
                "--amount",
                "500.00",
            ).output
        )
        assert real["outcome"] == "defer" and [r["reason"] for r in real["reasons"]] == ["MANUAL_REVIEW"]
        assert any(t["rule"] == "large" and t["matched"] for t in real["trace"])
        made_up = json.loads(
            cli(
                "rules",
                "simulate",
                str(path),
                "--sale-group",
                "GA10",
                "--amount",
                "50.00",
                "--balance",
                "60.00",
            ).output
        )
        assert made_up["outcome"] == "approve" and made_up["facts"]["available"] == "60.00"
        assert db_state() == before  # nothing written

    def test_a_bad_file_is_refused_with_pointers(self, cli, tmp_path):
        path = tmp_path / "bad.json"
        path.write_text(
            json.dumps(
                {"name": "bad", "rules": [{"id": "x", "when": {"fact": "nope", "op": "eq", "value": 1}}]}
            )
        )
        result = cli(
            "rules",
            "simulate",
            str(path),
            "--sale-group",
            "GA10",
            "--amount",
            "1.00",
            "--balance",
            "1.00",
            ok=False,
        )
        assert result.exit_code == 1
        assert "#/rules/0" in result.output
