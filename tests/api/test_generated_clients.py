"""Clients generated from the served /openapi.json work on the first call, as a client developer would use
them: openapi-python-client (the dev extra) writes a Python package that runs the README's tour against the
app with typed attribute access, and openapi-typescript writes types that tests/typescript/usage.ts must
type-check against (tsc --noEmit, strict). Both generate offline from the document the app serves.

The TypeScript tools come from tests/typescript (pinned, installed by ./scripts/setup dev); without node or
them the TypeScript test skips and says why, and with CI=true it fails."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.api.conftest import CUSTOMER_A
from tests.conftest import IN_CI

pytestmark = pytest.mark.api

PACKAGE = "creditctl_client"
TYPESCRIPT = Path(__file__).resolve().parents[1] / "typescript"


@pytest.fixture
def document(client: Any, tmp_path: Path) -> Path:
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(client.get("/openapi.json").json), encoding="utf-8")
    return path


@pytest.fixture
def generated(document: Path, tmp_path: Path) -> Iterator[ModuleType]:
    """The Python client generated from the document, imported (and forgotten again afterwards)."""
    config = tmp_path / "generator.yaml"
    config.write_text("post_hooks: []\n", encoding="utf-8")  # no formatter run: nothing outside this venv
    generator = Path(sys.executable).with_name("openapi-python-client")
    out = tmp_path / "client" / PACKAGE
    command = [generator, "generate", "--path", document, "--output-path", out, "--meta", "none"]
    run = subprocess.run(
        [*command, "--config", config],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0 and (out / "models" / "decision.py").exists(), run.stdout + run.stderr
    sys.path.insert(0, str(out.parent))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out.parent))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def module(package: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{name}")


class TestTheGeneratedPythonClient:
    def test_the_readme_tour_runs_with_typed_members(
        self, generated: ModuleType, app: Any, keys: dict[str, str]
    ) -> None:
        def connect(role: str) -> Any:
            transport = httpx.WSGITransport(app=app)
            return generated.AuthenticatedClient(
                base_url="http://creditctl.test", token=keys[role], httpx_args={"transport": transport}
            )

        orders, auditor = connect("orders"), connect("auditor")
        models = module(generated, "models")
        decide = module(generated, "api.decisions.post_v1_decisions")
        read = module(generated, "api.decisions.get_v1_decisions_order_id")
        settle = module(generated, "api.decisions.post_v1_decisions_order_id_settle")
        holds = module(generated, "api.accounts.get_v1_accounts_customer_code_sale_group_code_holds")
        report = module(generated, "api.reports.get_v1_reports_decisions_csv")
        audit = module(generated, "api.audit.get_v1_audit_events")

        request = models.DecisionRequest(
            order_id="PO/2026/0001", customer_code=CUSTOMER_A, sale_group_code="GB20", amount="500.00"
        )
        answer = decide.sync_detailed(client=orders, body=request)
        assert answer.status_code == 201
        decision = answer.parsed
        assert isinstance(decision, models.Decision)
        assert decision.outcome == models.DecisionOutcome.APPROVE
        assert decision.hold is not None and decision.hold.remaining == "500.00"
        assert decision.balance is not None and decision.balance.amount == "100000.00"
        assert decision.shortfall is None

        again = read.sync("PO/2026/0001", client=orders)
        assert isinstance(again, models.Decision) and again.decision_id == decision.decision_id

        part = models.SettleRequest(amount="200.00", settlement_id="DN-0001")
        settled = settle.sync("PO/2026/0001", client=orders, body=part)
        assert isinstance(settled, models.Decision) and settled.hold is not None
        assert (settled.hold.settled_amount, settled.hold.remaining) == ("200.00", "300.00")
        assert [s.settlement_id for s in settled.hold.settlements] == ["DN-0001"]

        page = holds.sync(CUSTOMER_A, "GB20", client=orders)
        assert isinstance(page, models.HoldPage) and page.next_cursor is None
        assert [(h.order_id, h.remaining) for h in page.items] == [("PO/2026/0001", "300.00")]

        csv = report.sync(client=auditor)
        assert isinstance(csv, str) and csv.startswith("section,")

        events = audit.sync(client=auditor, limit=5)
        assert isinstance(events, models.AuditPage) and events.events
        assert all(len(event.hash_) == 64 and event.prev_hash for event in events.events)  # hash_: a builtin

    def test_an_error_is_a_typed_problem(self, generated: ModuleType, app: Any, keys: dict[str, str]) -> None:
        orders = generated.AuthenticatedClient(
            base_url="http://creditctl.test",
            token=keys["orders"],
            httpx_args={"transport": httpx.WSGITransport(app=app)},
        )
        problem = module(generated, "api.decisions.get_v1_decisions_order_id").sync("nope", client=orders)
        assert isinstance(problem, module(generated, "models").Problem)
        assert problem.status == 404 and problem.request_id


def node_tools() -> tuple[str, Path]:
    """node and the pinned tools' folder, or a skip (a failure with CI=true) naming what is missing."""
    node = shutil.which("node")
    missing = None
    if node is None:
        missing = "node is not installed (Debian: apt-get install nodejs npm)"
    elif not (TYPESCRIPT / "node_modules" / "typescript" / "bin" / "tsc").exists():
        missing = f"the TypeScript tools are not installed in {TYPESCRIPT} (./scripts/setup dev)"
    if missing is not None:
        if IN_CI:
            pytest.fail(f"{missing} (CI=true: the generated TypeScript types must be checked)")
        pytest.skip(missing)
    assert node is not None
    return node, TYPESCRIPT / "node_modules"


class TestTheGeneratedTypeScriptTypes:
    def test_usage_type_checks_against_the_types_of_the_document(
        self, document: Path, tmp_path: Path
    ) -> None:
        node, modules = node_tools()
        work = tmp_path / "typescript"
        work.mkdir()
        for name in ("usage.ts", "tsconfig.json"):
            shutil.copy(TYPESCRIPT / name, work / name)
        cli = modules / "openapi-typescript" / "bin" / "cli.js"
        generate = [node, cli, document, "-o", work / "api.d.ts"]
        run = subprocess.run(generate, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        check = [node, modules / "typescript" / "bin" / "tsc", "-p", work / "tsconfig.json"]
        run = subprocess.run(check, capture_output=True, text=True, timeout=180, cwd=work)
        assert run.returncode == 0, run.stdout + run.stderr
