"""Payments, balance history, credit profile columns and limit requests on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine

from adapters.sql.unit_of_work import SqlUnitOfWork
from creditctl.domain.account import CreditInputs, PaymentProfile
from creditctl.domain.balance import BalanceSnapshot
from creditctl.domain.limit_request import CreditLimitRequest, LimitRequestStatus
from creditctl.domain.payment import PaymentRecord
from tests.adapters.test_sql_repositories import NOW, add_account

pytestmark = pytest.mark.adapters


@pytest.fixture
def uow(engine: Engine) -> SqlUnitOfWork:
    return SqlUnitOfWork(engine)


class TestCreditProfileColumns:
    def test_lock_returns_the_stored_profile_exactly(self, uow: SqlUnitOfWork) -> None:
        account = add_account(uow)
        with uow:
            locked = uow.accounts.lock(account.customer_code, account.sale_group_code)
            assert locked is not None
            locked.payment = PaymentProfile(12, Decimal("0.8333"), Decimal("99999999999.99"))
            locked.credit = CreditInputs(
                base_limit=Decimal("1000.01"),
                base_limit_reason="review",
                average_balance=Decimal("-5.00"),
                temporary_limit=Decimal("2000.00"),
                temporary_until=NOW + timedelta(days=1),
                temporary_request_id="r1",
                computed_at=NOW,
                valid_until=NOW + timedelta(hours=16),
            )
            uow.accounts.save(locked)
            uow.commit()
        with uow:
            again = uow.accounts.lock(account.customer_code, account.sale_group_code)
        assert again is not None
        assert again.payment == locked.payment
        assert again.credit == locked.credit


class TestPayments:
    def test_records_round_trip_page_by_invoice_and_select_what_the_facts_need(
        self, uow: SqlUnitOfWork
    ) -> None:
        account = add_account(uow)
        today = date(2026, 11, 30)
        records = [
            PaymentRecord(
                "B", Decimal("10.00"), date(2020, 1, 1), Decimal("10.00"), date(2020, 1, 1)
            ),  # old, paid
            PaymentRecord(
                "A", Decimal("10.00"), date(2020, 1, 1), Decimal("3.00"), date(2020, 1, 2)
            ),  # old, open
            PaymentRecord("C", Decimal("99999999999.99"), today, Decimal("0.00")),
        ]
        with uow:
            for r in records:
                uow.payments.put(account.id, r, existed=False, now=NOW)
                uow.payments.add_change(account.id, None, r, by="t", now=NOW)
            uow.commit()
        with uow:
            assert uow.payments.get_many(account.id, ["A", "C", "Z"]) == {"A": records[1], "C": records[2]}
            assert [r.invoice_id for r in uow.payments.page(account.id, after="A", limit=1)] == ["B"]
            facts = uow.payments.for_facts(account.id, today - timedelta(days=365))
            assert sorted(r.invoice_id for r in facts) == ["A", "C"]
            assert uow.payments.changes(account.id, "A")[0]["after"]["paid_amount"] == "3.00"


class TestBalanceHistory:
    def test_the_average_of_snapshots_since_a_time_rounded_down(self, uow: SqlUnitOfWork) -> None:
        account = add_account(uow)
        with uow:
            assert uow.balance_history.average(account.id, NOW) is None
            for days, amount in ((100, "9999.00"), (2, "10.00"), (1, "10.01"), (0, "10.01")):
                snapshot = BalanceSnapshot(Decimal(amount), NOW - timedelta(days=days), "fake")
                uow.balance_history.add(account.id, snapshot)
            uow.commit()
        with uow:
            assert uow.balance_history.average(account.id, NOW - timedelta(days=90)) == Decimal("10.00")


class TestLimitRequests:
    def test_an_approved_request_past_its_end_is_listed_as_expired(self, uow: SqlUnitOfWork) -> None:
        account = add_account(uow)
        request = CreditLimitRequest(
            id="r1",
            account_id=account.id,
            customer_code=account.customer_code,
            sale_group_code=account.sale_group_code,
            amount=Decimal("5.00"),
            until=NOW + timedelta(hours=1),
            reason="x",
            status=LimitRequestStatus.APPROVED,
            requested_by="a",
            requested_by_key_id=1,
            requested_by_owner="a",
            requested_at=NOW,
        )
        with uow:
            uow.limit_requests.add(request)
            uow.commit()
        later = NOW + timedelta(hours=2)
        with uow:
            find = uow.limit_requests.find
            assert [r.id for r in find(account_id=None, customers=None, status="approved", now=NOW)] == ["r1"]
            assert find(account_id=None, customers=None, status="approved", now=later) == []
            assert [
                r.id for r in find(account_id=account.id, customers=None, status="expired", now=later)
            ] == ["r1"]
            assert find(account_id=None, customers=frozenset({"other"}), status=None, now=NOW) == []
