"""The shipped Prometheus alerts: `promtool check rules` accepts them, `promtool test rules` shows each one
firing on a series that should fire it and quiet on one that should not, and every histogram an alert
takes a quantile of has buckets beyond the alert's threshold (a quantile never exceeds the top finite
bucket, so an alert above it could never fire).

promtool comes with Debian's `prometheus` package (`./scripts/setup dev` installs it as root). Without it
these tests skip and say why; with CI=true they fail."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import Histogram

from adapters.haier import metrics as haier_metrics
from adapters.web import metrics as web_metrics
from tests.conftest import IN_CI

pytestmark = pytest.mark.adapters

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULE_FILES = sorted(p for p in RULES_DIR.glob("*.yml") if not p.name.endswith("_test.yml"))
TEST_FILES = sorted(RULES_DIR.glob("*_test.yml"))
QUANTILE_ALERT = re.compile(r"histogram_quantile\(.*?\b(\w+)_bucket\b.*\)\s*>\s*([0-9.]+)", re.S)


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool is not installed (Debian: apt-get install prometheus; ./scripts/setup dev as root)"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: the alert tests must run)")
        pytest.skip(reason)
    return found


def alerts() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def shipped_histograms() -> dict[str, tuple[float, ...]]:
    """Every histogram the service registers, by name: its finite bucket bounds."""
    found = {}
    for module in (haier_metrics, web_metrics):
        for value in vars(module).values():
            if isinstance(value, Histogram):
                found[value._name] = tuple(b for b in value._upper_bounds if b != float("inf"))
    return found


def test_there_are_rules_and_unit_tests_for_them() -> None:
    assert RULE_FILES and TEST_FILES
    assert {a["alert"] for a in alerts()} >= {
        "CreditctlUpstreamSlow",
        "CreditctlUpstreamErrorRate",
        "CreditctlUpstreamConsecutiveFailures",
    }


def test_promtool_accepts_the_shipped_rules() -> None:
    done = subprocess.run(
        [promtool(), "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_behaves_as_its_unit_tests_say() -> None:
    done = subprocess.run(
        [promtool(), "test", "rules", *(p.name for p in TEST_FILES)],
        cwd=RULES_DIR, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_case_that_fires_it_and_one_that_stays_quiet() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names - fires == set(), "alerts no unit test fires"
    assert names - quiet == set(), "alerts no unit test keeps quiet"


def test_every_histogram_has_buckets_beyond_each_alert_threshold_on_it() -> None:
    histograms = shipped_histograms()
    checked = 0
    for alert in alerts():
        for metric, threshold in QUANTILE_ALERT.findall(alert["expr"]):
            assert metric in histograms, f"{alert['alert']}: no histogram {metric} is shipped"
            top = max(histograms[metric])
            assert top > float(threshold), f"{alert['alert']}: {metric} stops at {top}, threshold {threshold}"
            checked += 1
    assert checked, "no alert takes a quantile: this test checks nothing"


def test_the_unit_tests_use_the_buckets_the_service_ships() -> None:
    """A unit test on other buckets than the shipped ones would prove an alert that cannot fire."""
    histograms = shipped_histograms()
    used: dict[str, set[float]] = {}
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for series in case["input_series"]:
                match = re.match(r"(\w+)_bucket\{.*le=\"([^\"]+)\"", series["series"])
                if match and match.group(1) in histograms:
                    used.setdefault(match.group(1), set()).add(float(match.group(2)))
    assert used, "no unit test feeds a histogram"
    for metric, bounds in used.items():
        assert bounds == {*histograms[metric], float("inf")}, metric
