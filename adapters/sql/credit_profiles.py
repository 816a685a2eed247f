"""Credit profile history and balance history on SQL."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select

from adapters.sql.tables import balance_history, credit_profile_changes
from creditctl.domain.balance import BalanceSnapshot
from creditctl.domain.credit import ProfileChange
from creditctl.domain.money import from_fen, to_fen

_b = balance_history.c
_h = credit_profile_changes.c
_ADD_BALANCE = insert(balance_history)


class SqlBalanceHistoryRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, account_id: int, snapshot: BalanceSnapshot) -> None:
        self._conn.execute(
            _ADD_BALANCE,
            {
                "account_id": account_id,
                "balance_fen": to_fen(snapshot.amount),
                "fetched_at": snapshot.fetched_at,
                "source": snapshot.source,
            },
        )

    def average(self, account_id: int, since: datetime) -> Decimal | None:
        stmt = select(func.sum(_b.balance_fen), func.count()).where(
            _b.account_id == account_id, _b.fetched_at >= since
        )
        total, count = self._conn.execute(stmt).one()
        if not count:
            return None
        fen = (Decimal(int(total)) / count).to_integral_value(rounding=ROUND_DOWN)
        return from_fen(int(fen))


class SqlCreditHistoryRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, account_id: int, change: ProfileChange) -> None:
        self._conn.execute(
            insert(credit_profile_changes).values(
                account_id=account_id,
                changed_at=change.at,
                trigger=change.trigger,
                changed_by=change.by,
                reason=change.reason,
                grade=change.grade,
                limit_fen=to_fen(change.limit),
                inputs=change.inputs,
            )
        )

    def latest(self, account_id: int, limit: int = 50) -> list[ProfileChange]:
        stmt = (
            select(credit_profile_changes)
            .where(_h.account_id == account_id)
            .order_by(_h.id.desc())
            .limit(limit)
        )
        return [_change(r) for r in self._conn.execute(stmt)]


def _change(r: Row[Any]) -> ProfileChange:
    return ProfileChange(
        at=r.changed_at,
        trigger=r.trigger,
        by=r.changed_by,
        reason=r.reason,
        grade=r.grade,
        limit=from_fen(r.limit_fen),
        inputs=dict(r.inputs),
    )
