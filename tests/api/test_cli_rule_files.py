"""`creditctl rules validate | diff | test` on files, so rule sets and their tests live in git."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from adapters.cli.main import CliOps, build_cli

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TESTS = ROOT / "tests" / "rules" / "default_rule_set.test.json"
DEFAULT_SET = ROOT / "migrations" / "data" / "default_rule_set_v1.json"


def run(*args: str):  # no database: these commands read files only
    def unused() -> None:
        raise AssertionError("a file command touched the database")

    ops = CliOps(
        load_settings=unused,
        make_context=unused,  # type: ignore[arg-type]
        upgrade_db=unused,
        database_url=lambda: "unused",
        configure_logging=lambda level: None,
    )
    return CliRunner().invoke(build_cli(ops), list(args), catch_exceptions=False)


class TestRuleTests:
    def test_the_default_rule_set_passes_its_own_rule_tests(self) -> None:
        result = run("rules", "test", str(DEFAULT_TESTS))
        assert result.exit_code == 0, result.output
        assert "0 failed" in result.output

    def test_a_failing_case_is_named_with_the_rule_trace_and_exits_non_zero(self, tmp_path: Path) -> None:
        suite = {
            "rule_set": str(DEFAULT_SET),
            "cases": [
                {
                    "name": "wrongly expects approval of a large order",
                    "order": {"amount": "600000.00"},
                    "account": {"balance": "1000000.00"},
                    "expect": {"outcome": "approve"},
                }
            ],
        }
        path = tmp_path / "t.test.json"
        path.write_text(json.dumps(suite))
        result = run("rules", "test", str(path))
        assert result.exit_code == 1
        assert "FAIL: wrongly expects approval of a large order" in result.output
        assert "outcome 'defer', expected 'approve'" in result.output
        assert "large: matched=True order.amount=600000.00" in result.output

    def test_a_case_setting_a_param_outside_its_bounds_fails_naming_the_bound(self, tmp_path: Path) -> None:
        suite = {
            "rule_set": str(DEFAULT_SET),
            "cases": [
                {
                    "name": "holds that end at once",
                    "params": {"hold_ttl_s": 0},
                    "order": {"amount": "900.00"},
                    "account": {"balance": "1000.00"},
                    "expect": {"outcome": "approve"},
                }
            ],
        }
        path = tmp_path / "t.test.json"
        path.write_text(json.dumps(suite))
        result = run("rules", "test", str(path))
        assert result.exit_code == 1
        assert "FAIL: holds that end at once" in result.output
        assert "'hold_ttl_s' must be between 3600 and 7776000 (seconds), got 0" in result.output


class TestValidateAndDiff:
    def test_validate_prints_every_problem_with_its_pointer(self, tmp_path: Path) -> None:
        document = json.loads(DEFAULT_SET.read_text())
        document["rules"][0]["outcome"] = "explode"
        document["rules"][1]["when"] = {
            "fact": "order.amount",
            "op": "gt",
            "value": {"fact": "balance.age_s"},
        }
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(document))
        result = run("rules", "validate", str(path))
        assert result.exit_code == 1
        assert "#/rules/0/outcome: outcome 'explode'" in result.output
        assert "#/rules/1/when/value/fact: type mismatch" in result.output
        assert run("rules", "validate", str(DEFAULT_SET)).exit_code == 0

    def test_diff_of_two_files_names_the_changed_param(self, tmp_path: Path) -> None:
        document = json.loads(DEFAULT_SET.read_text())
        document["params"]["base_credit_limit"] = "50000.00"
        path = tmp_path / "looser.json"
        path.write_text(json.dumps(document))
        result = run("rules", "diff", str(DEFAULT_SET), str(path))
        assert result.exit_code == 0, result.output
        changed = json.loads(result.output)["params"]["changed"]
        assert changed == {"base_credit_limit": {"before": "0.00", "after": "50000.00"}}
