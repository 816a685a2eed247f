"""The history of freezes on SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from adapters.sql.tables import freezes
from creditctl.domain.freeze import Freeze, LiftedHow

_f = freezes.c


class SqlFreezeRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def open(self, account_id: int, *, reason: str, by: str, now: datetime) -> None:
        self._conn.execute(
            insert(freezes).values(account_id=account_id, reason=reason, frozen_by=by, frozen_at=now)
        )

    def lift(self, account_id: int, *, how: LiftedHow, by: str, reason: str | None, now: datetime) -> None:
        self._conn.execute(
            update(freezes)
            .where(_f.account_id == account_id, _f.lifted_at.is_(None))
            .values(lifted_at=now, lifted_by=by, lifted_how=how.value, lift_reason=reason)
        )

    def for_account(self, account_id: int, limit: int = 200) -> list[Freeze]:
        stmt = select(freezes).where(_f.account_id == account_id).order_by(_f.id.desc()).limit(limit)
        return [_to_freeze(r) for r in self._conn.execute(stmt)]


def _to_freeze(r: Row[Any]) -> Freeze:
    return Freeze(
        id=r.id,
        account_id=r.account_id,
        reason=r.reason,
        frozen_by=r.frozen_by,
        frozen_at=r.frozen_at,
        lifted_at=r.lifted_at,
        lifted_by=r.lifted_by,
        lifted_how=LiftedHow(r.lifted_how) if r.lifted_how else None,
        lift_reason=r.lift_reason,
    )
