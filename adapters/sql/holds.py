"""Holds on SQL. Ending a hold is one conditional UPDATE, so each hold ends exactly once."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Row, bindparam, insert, select, update

from adapters.sql.tables import credit_accounts, holds
from creditctl.domain.hold import Hold, HoldStatus
from creditctl.domain.money import from_fen, to_fen

_h = holds.c
# Built once (hot path): bound parameters, compiled once per process.
_ADD = insert(holds)
_SAVE = update(holds).where(_h.id == bindparam("k_id"))
_EXPIRE_DUE = (
    update(holds)
    .where(
        _h.account_id == bindparam("k_account"),
        _h.status == HoldStatus.OPEN.value,
        _h.expires_at <= bindparam("k_now"),
    )
    .values(status=HoldStatus.EXPIRED.value, counting=False, ended_at=bindparam("k_now"))
    .returning(_h.amount_fen)
)


class SqlHoldRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, hold: Hold) -> None:
        self._conn.execute(
            _ADD,
            {
                "id": hold.id,
                "account_id": hold.account_id,
                "order_id": hold.order_id,
                "decision_id": hold.decision_id,
                "amount_fen": to_fen(hold.amount),
                "status": hold.status.value,
                "counting": hold.counting,
                "created_at": hold.created_at,
                "expires_at": hold.expires_at,
                "ended_at": hold.ended_at,
            },
        )

    def save(self, hold: Hold) -> None:
        self._conn.execute(
            _SAVE,
            {
                "k_id": hold.id,
                "status": hold.status.value,
                "counting": hold.counting,
                "ended_at": hold.ended_at,
            },
        )

    def expire_due(self, account_id: int, now: datetime) -> Decimal:
        rows = self._conn.execute(_EXPIRE_DUE, {"k_account": account_id, "k_now": now})
        return from_fen(sum(rows.scalars()))

    def stop_counting_settled(self, account_id: int, fetched_before: datetime) -> Decimal:
        stmt = (
            update(holds)
            .where(
                _h.account_id == account_id,
                _h.status == HoldStatus.SETTLED.value,
                _h.counting.is_(True),
                _h.ended_at < fetched_before,
            )
            .values(counting=False)
            .returning(_h.amount_fen)
        )
        return from_fen(sum(self._conn.execute(stmt).scalars()))

    def counting(self, account_id: int) -> list[Hold]:
        stmt = select(holds).where(_h.account_id == account_id, _h.counting.is_(True)).order_by(_h.created_at)
        return [to_hold(r) for r in self._conn.execute(stmt)]

    def accounts_with_due_holds(self, now: datetime, limit: int = 1000) -> list[tuple[str, str]]:
        a = credit_accounts.c
        stmt = (
            select(a.customer_code, a.sale_group_code)
            .where(
                a.id.in_(
                    select(_h.account_id).where(_h.status == HoldStatus.OPEN.value, _h.expires_at <= now)
                )
            )
            .limit(limit)
        )
        return [(r.customer_code, r.sale_group_code) for r in self._conn.execute(stmt)]


def to_hold(r: Row[Any]) -> Hold:
    return Hold(
        id=r.id,
        account_id=r.account_id,
        order_id=r.order_id,
        decision_id=r.decision_id,
        amount=from_fen(r.amount_fen),
        status=HoldStatus(r.status),
        created_at=r.created_at,
        expires_at=r.expires_at,
        ended_at=r.ended_at,
        counting=bool(r.counting),
    )
