"""The newest upstream balance answer per customer, shared by every instance on the database: leased and
stored by the shared provider (its own connections), read and kept by services in their unit of work."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, Row, or_, select, update

from adapters.sql.leases import ensure_row, take_lease
from adapters.sql.tables import balance_reports
from adapters.sql.upstream_status import record_failure, record_success
from creditctl.domain.balance import BalanceReport, PayerBalance

_b = balance_reports.c


class SqlSharedBalanceReports:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def latest(self, customer_code: str) -> tuple[BalanceReport | None, str | None, datetime | None]:
        with self._engine.connect() as conn:
            row = conn.execute(select(balance_reports).where(_b.customer_code == customer_code)).first()
            conn.rollback()
        if row is None:
            return None, None, None
        return _report(customer_code, row), row.error_code, row.error_at

    def try_lease(self, customer_code: str, holder: str, now: datetime, until: datetime) -> bool:
        with self._engine.connect() as conn:
            ensure_row(conn, balance_reports, {"customer_code": customer_code})
            taken = take_lease(conn, balance_reports, customer_code, holder, now, until)
            conn.commit()
        return taken

    def store(self, report: BalanceReport, holder: str) -> None:
        with self._engine.connect() as conn:
            ensure_row(conn, balance_reports, {"customer_code": report.customer_code})
            conn.execute(
                update(balance_reports)
                .where(
                    _b.customer_code == report.customer_code,
                    or_(_b.fetched_at.is_(None), _b.fetched_at < report.fetched_at),
                )
                .values(
                    report=_document(report),
                    fetched_at=report.fetched_at,
                    source=report.source,
                    error_code=None,
                    error_at=None,
                )
            )
            self._release(conn, report.customer_code, holder)
            record_success(conn)
            conn.commit()

    def fail(self, customer_code: str, holder: str, code: str, now: datetime) -> None:
        with self._engine.connect() as conn:
            conn.execute(
                update(balance_reports)
                .where(_b.customer_code == customer_code)
                .values(error_code=code, error_at=now)
            )
            self._release(conn, customer_code, holder)
            record_failure(conn, code)
            conn.commit()

    @staticmethod
    def _release(conn, customer_code: str, holder: str) -> None:  # type: ignore[no-untyped-def]
        conn.execute(
            update(balance_reports)
            .where(_b.customer_code == customer_code, _b.lease_holder == holder)
            .values(lease_holder=None, lease_until=None)
        )


class SqlBalanceReportRepository:
    """The same rows in a unit of work: what the provider named most recently (leases left alone)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def latest(self, customer_code: str) -> BalanceReport | None:
        stmt = select(_b.report, _b.fetched_at, _b.source).where(_b.customer_code == customer_code)
        row = self._conn.execute(stmt).first()
        return _report(customer_code, row) if row is not None else None

    def keep(self, report: BalanceReport) -> None:
        """One statement: insert, or replace an older answer (the row stays locked until commit)."""
        if self._conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        stmt = insert(balance_reports).values(
            customer_code=report.customer_code,
            report=_document(report),
            fetched_at=report.fetched_at,
            source=report.source,
        )
        new = stmt.excluded
        self._conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[_b.customer_code],
                set_={"report": new.report, "fetched_at": new.fetched_at, "source": new.source},
                where=or_(_b.fetched_at.is_(None), _b.fetched_at < new.fetched_at),
            )
        )


def _document(report: BalanceReport) -> dict[str, Any]:
    return {
        "accounts": [
            {
                "sale_group_code": a.sale_group_code,
                "sale_group_name": a.sale_group_name,
                "payer_account_code": a.payer_account_code,
                "payer_account_name": a.payer_account_name,
                "amount": str(a.amount),
            }
            for a in report.accounts
        ]
    }


def _report(customer_code: str, row: Row[Any]) -> BalanceReport | None:
    if row.report is None or row.fetched_at is None:  # a row for a lease, no answer yet
        return None
    return BalanceReport(
        customer_code=customer_code,
        accounts=tuple(
            PayerBalance(
                a["sale_group_code"],
                a["sale_group_name"],
                a["payer_account_code"],
                a["payer_account_name"],
                Decimal(a["amount"]),
            )
            for a in row.report["accounts"]
        ),
        fetched_at=row.fetched_at,
        source=row.source or "",
    )
