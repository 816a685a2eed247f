"""`creditctl payments import`: good lines imported, each refused line named with its number and why."""

from __future__ import annotations

import pytest

from tests.api.conftest import CUSTOMER_A, CUSTOMER_B
from tests.api.test_cli import cli  # noqa: F401  (the fixture)

pytestmark = pytest.mark.api

HEADER = "customer_code,sale_group_code,invoice_id,amount,due_date,paid_date,paid_amount\n"


class TestPaymentsImport:
    def test_imports_the_good_lines_and_reports_each_refused_one(self, cli, context, tmp_path):  # noqa: F811
        path = tmp_path / "payments.csv"
        path.write_text(
            HEADER
            + f"{CUSTOMER_A},GB20,INV-1,1000.00,2026-01-10,2026-01-09,1000.00\n"
            + f"{CUSTOMER_A},GB20,INV-2,1000.005,2026-01-10,,\n"
            + f"{CUSTOMER_A},GB20,INV-3,500.00,2026-01-10,2026-01-09,600.00\n"
            + f"{CUSTOMER_B},ZZ99,INV-4,500.00,2026-01-10,,\n"
            + f"{CUSTOMER_A},GB20,INV-5,500.00,not-a-date,,\n"
        )
        result = cli("payments", "import", str(path), ok=False)
        assert result.exit_code == 1
        assert "line 3: amount '1000.005'" in result.output
        assert "line 4: paid_amount must not exceed" in result.output
        assert "line 5: customer '8800000002' has no payer account in sales group 'ZZ99'" in result.output
        assert "line 6: due_date 'not-a-date'" in result.output
        assert "1 accepted (1 created, 0 updated, 0 unchanged), 4 refused" in result.output
        with context.uow() as uow:
            account = uow.accounts.get(CUSTOMER_A, "GB20")
            stored = uow.payments.page(account.id, after=None, limit=10)
        assert [r.invoice_id for r in stored] == ["INV-1"]

    def test_a_clean_file_exits_zero_and_a_rerun_changes_nothing(self, cli, tmp_path):  # noqa: F811
        path = tmp_path / "payments.csv"
        path.write_text(HEADER + f"{CUSTOMER_A},GB20,INV-1,1000.00,2026-01-10,,\n")
        assert "(1 created, 0 updated, 0 unchanged), 0 refused" in cli("payments", "import", str(path)).output
        assert "(0 created, 0 updated, 1 unchanged), 0 refused" in cli("payments", "import", str(path)).output

    def test_a_payer_account_the_provider_names_takes_payments_before_its_first_order(
        self,
        cli,  # noqa: F811
        context,
        balances,
        tmp_path,
    ):
        balances.set_balance("8800000007", "GC30", "700.00")  # named, never ordered in, not registered
        path = tmp_path / "payments.csv"
        path.write_text(
            HEADER
            + "8800000007,GC30,INV-1,1000.00,2026-01-10,,\n"
            + "8800000007,ZZ99,INV-2,1000.00,2026-01-10,,\n"
        )
        result = cli("payments", "import", str(path), ok=False)
        assert "1 accepted (1 created, 0 updated, 0 unchanged), 1 refused" in result.output
        assert "line 3: customer '8800000007' has no payer account in sales group 'ZZ99'" in result.output
        with context.uow() as uow:
            account = uow.accounts.get("8800000007", "GC30")
            assert account is not None and account.snapshot is not None
            assert [r.invoice_id for r in uow.payments.page(account.id, after=None, limit=10)] == ["INV-1"]

    def test_an_unanswered_upstream_refuses_the_lines_of_an_account_not_opened_yet(
        self,
        cli,  # noqa: F811
        balances,
        tmp_path,
    ):
        balances.set_balance("8800000007", "GC30", "700.00")
        balances.fail_with("CIRCUIT_OPEN")
        path = tmp_path / "payments.csv"
        path.write_text(
            HEADER
            + "8800000007,GC30,INV-1,1000.00,2026-01-10,,\n"
            + f"{CUSTOMER_A},GB20,INV-2,1.00,2026-01-10,,\n"
        )
        result = cli("payments", "import", str(path), ok=False)
        assert "line 2: cannot verify sales group 'GC30'" in result.output
        assert "1 accepted (1 created, 0 updated, 0 unchanged), 1 refused" in result.output
