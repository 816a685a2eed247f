"""Credit accounts: freezing, and taking only newer balance snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from creditctl.domain.account import AccountStatus, CreditAccount
from creditctl.domain.balance import BalanceReport, BalanceSnapshot, PayerBalance

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
PAYER = PayerBalance("GA10", "Air", "P1", "Alpha Co", Decimal("1000.00"))


def fresh() -> CreditAccount:
    return CreditAccount(id=1, customer_code="8800000001", sale_group_code="GA10")


class TestFreeze:
    def test_freeze_records_who_why_and_when(self) -> None:
        acc = fresh()
        acc.freeze(reason="fraud check", by="admin:ops", now=NOW)
        assert acc.is_frozen
        assert (acc.frozen_reason, acc.frozen_by, acc.frozen_at) == ("fraud check", "admin:ops", NOW)

    def test_unfreeze_clears_the_freeze(self) -> None:
        acc = fresh()
        acc.freeze(reason="x", by="admin:ops", now=NOW)
        acc.unfreeze()
        assert acc.status is AccountStatus.ACTIVE
        assert (acc.frozen_reason, acc.frozen_by, acc.frozen_at) == (None, None, None)


class TestAdopt:
    def test_takes_the_first_snapshot_and_the_payer_names(self) -> None:
        acc = fresh()
        assert acc.adopt(PAYER, BalanceSnapshot(Decimal("1000.00"), NOW, "fake")) is True
        assert acc.snapshot is not None and acc.snapshot.amount == Decimal("1000.00")
        assert (acc.sale_group_name, acc.payer_account_code, acc.payer_account_name) == (
            "Air",
            "P1",
            "Alpha Co",
        )

    def test_ignores_a_snapshot_no_newer_than_the_one_held(self) -> None:
        acc = fresh()
        acc.adopt(PAYER, BalanceSnapshot(Decimal("1000.00"), NOW, "fake"))
        assert acc.adopt(PAYER, BalanceSnapshot(Decimal("5.00"), NOW, "fake")) is False
        assert acc.adopt(PAYER, BalanceSnapshot(Decimal("5.00"), NOW - timedelta(seconds=1), "fake")) is False
        assert acc.snapshot is not None and acc.snapshot.amount == Decimal("1000.00")

    def test_takes_a_newer_snapshot(self) -> None:
        acc = fresh()
        acc.adopt(PAYER, BalanceSnapshot(Decimal("1000.00"), NOW, "fake"))
        assert acc.adopt(PAYER, BalanceSnapshot(Decimal("5.00"), NOW + timedelta(seconds=1), "haier")) is True
        assert acc.snapshot == BalanceSnapshot(Decimal("5.00"), NOW + timedelta(seconds=1), "haier")


class TestBalance:
    def test_age_is_whole_seconds_rounded_up_and_never_negative(self) -> None:
        snap = BalanceSnapshot(Decimal("1"), NOW, "fake")
        assert snap.age_s(NOW + timedelta(seconds=90)) == 90
        assert snap.age_s(NOW + timedelta(seconds=90.04)) == 91  # older than 90 s is not 90 s
        assert snap.age_s(NOW - timedelta(seconds=5)) == 0

    def test_a_report_finds_the_entry_of_a_sale_group(self) -> None:
        report = BalanceReport("8800000001", (PAYER,), NOW, "fake")
        assert report.for_sale_group("GA10") is PAYER
        assert report.for_sale_group("ZZ99") is None
