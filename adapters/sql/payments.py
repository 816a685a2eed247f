"""Payment records on SQL: one row per (account, invoice), a history row for every create or change."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, or_, select, update

from adapters.sql.tables import payment_changes, payments
from creditctl.domain.money import fmt, from_fen, to_fen
from creditctl.domain.payment import PaymentRecord

_p = payments.c


class SqlPaymentRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get_many(self, account_id: int, invoice_ids: Sequence[str]) -> dict[str, PaymentRecord]:
        out: dict[str, PaymentRecord] = {}
        ids = list(dict.fromkeys(invoice_ids))
        for start in range(0, len(ids), 500):  # keep the IN list modest
            stmt = select(payments).where(
                _p.account_id == account_id, _p.invoice_id.in_(ids[start : start + 500])
            )
            out.update({r.invoice_id: _record(r) for r in self._conn.execute(stmt)})
        return out

    def put(self, account_id: int, record: PaymentRecord, *, existed: bool, now: datetime) -> None:
        values = {
            "amount_fen": to_fen(record.amount),
            "due_date": record.due_date,
            "paid_fen": to_fen(record.paid_amount),
            "paid_date": record.paid_date,
            "updated_at": now,
        }
        if existed:
            self._conn.execute(
                update(payments)
                .where(_p.account_id == account_id, _p.invoice_id == record.invoice_id)
                .values(values)
            )
        else:
            self._conn.execute(
                insert(payments).values(values | {"account_id": account_id, "invoice_id": record.invoice_id})
            )

    def add_change(
        self, account_id: int, before: PaymentRecord | None, after: PaymentRecord, *, by: str, now: datetime
    ) -> None:
        self._conn.execute(
            insert(payment_changes).values(
                account_id=account_id,
                invoice_id=after.invoice_id,
                before=None if before is None else as_json(before),
                after=as_json(after),
                changed_by=by,
                changed_at=now,
            )
        )

    def changes(self, account_id: int, invoice_id: str) -> list[dict[str, Any]]:
        c = payment_changes.c
        stmt = (
            select(payment_changes)
            .where(c.account_id == account_id, c.invoice_id == invoice_id)
            .order_by(c.id)
        )
        return [
            {"before": r.before, "after": r.after, "by": r.changed_by, "at": r.changed_at}
            for r in self._conn.execute(stmt)
        ]

    def page(self, account_id: int, *, after: str | None, limit: int) -> list[PaymentRecord]:
        stmt = select(payments).where(_p.account_id == account_id)
        if after is not None:
            stmt = stmt.where(_p.invoice_id > after)
        stmt = stmt.order_by(_p.invoice_id).limit(limit)
        return [_record(r) for r in self._conn.execute(stmt)]

    def for_facts(self, account_id: int, due_since: date) -> list[PaymentRecord]:
        stmt = select(payments).where(
            _p.account_id == account_id, or_(_p.paid_fen < _p.amount_fen, _p.due_date >= due_since)
        )
        return [_record(r) for r in self._conn.execute(stmt)]


def as_json(r: PaymentRecord) -> dict[str, Any]:
    """A record as stored in the history (money as decimal strings, dates ISO)."""
    return {
        "invoice_id": r.invoice_id,
        "amount": fmt(r.amount),
        "due_date": r.due_date.isoformat(),
        "paid_amount": fmt(r.paid_amount),
        "paid_date": None if r.paid_date is None else r.paid_date.isoformat(),
    }


def _record(r: Row[Any]) -> PaymentRecord:
    return PaymentRecord(
        invoice_id=r.invoice_id,
        amount=from_fen(r.amount_fen),
        due_date=r.due_date,
        paid_amount=from_fen(r.paid_fen),
        paid_date=r.paid_date,
    )
