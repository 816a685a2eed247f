"""Holds on SQL. Every change to a hold happens under its account's lock (the caller's); a settled part
is one row of hold_settlements, unique per (hold, settlement id)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, exists, insert, or_, select, tuple_, update

from adapters.sql import driver_statements
from adapters.sql.driver_statements import DriverStatement
from adapters.sql.tables import credit_accounts, hold_settlements, holds
from creditctl.domain.hold import ExpiredHold, Hold, HoldStatus, Settlement
from creditctl.domain.money import from_fen, to_fen

_h = holds.c
_s = hold_settlements.c
_ANY_PART_COUNTING = exists().where(_s.hold_id == _h.id, _s.counting.is_(True))
# Built once (hot path): bound parameters, compiled once per process.
_ADD = insert(holds)
_PG_ADD = DriverStatement.of(_ADD, keys=[c.key for c in holds.c])
_ADD_PART = insert(hold_settlements)
_SAVE = update(holds).where(_h.id == bindparam("k_id"))
_EXPIRE_DUE = (
    update(holds)
    .where(
        _h.account_id == bindparam("k_account"),
        _h.status == HoldStatus.OPEN.value,
        _h.expires_at <= bindparam("k_now"),
    )
    # The remainder stops counting; settled parts count on until a balance includes them.
    .values(status=HoldStatus.EXPIRED.value, counting=_ANY_PART_COUNTING, ended_at=bindparam("k_now"))
    .returning(_h.id, _h.order_id, _h.amount_fen - _h.settled_fen)
)


class SqlHoldRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, hold: Hold) -> None:
        values = {
            "id": hold.id,
            "account_id": hold.account_id,
            "order_id": hold.order_id,
            "decision_id": hold.decision_id,
            "amount_fen": to_fen(hold.amount),
            "settled_fen": to_fen(hold.settled),
            "status": hold.status.value,
            "counting": hold.counting,
            "created_at": hold.created_at,
            "expires_at": hold.expires_at,
            "ended_at": hold.ended_at,
        }
        if self._conn.dialect.name == "postgresql":  # the decision path: on the driver's cursor
            driver_statements.execute(self._conn, _PG_ADD, values)
        else:
            self._conn.execute(_ADD, values)

    def save(self, hold: Hold) -> None:
        self._conn.execute(
            _SAVE,
            {
                "k_id": hold.id,
                "status": hold.status.value,
                "counting": hold.counting,
                "ended_at": hold.ended_at,
                "settled_fen": to_fen(hold.settled),
            },
        )

    def add_settlement(self, settlement: Settlement) -> None:
        self._conn.execute(
            _ADD_PART,
            {
                "id": settlement.id,
                "hold_id": settlement.hold_id,
                "account_id": settlement.account_id,
                "settlement_id": settlement.settlement_id,
                "amount_fen": to_fen(settlement.amount),
                "settled_at": settlement.settled_at,
                "counting": settlement.counting,
            },
        )

    def expire_due(self, account_id: int, now: datetime) -> list[ExpiredHold]:
        rows = self._conn.execute(_EXPIRE_DUE, {"k_account": account_id, "k_now": now})
        return sorted((ExpiredHold(h, o, from_fen(fen)) for h, o, fen in rows), key=lambda e: e.hold_id)

    def stop_counting_settled(self, account_id: int, fetched_before: datetime) -> Decimal:
        parts = self._conn.execute(
            update(hold_settlements)
            .where(_s.account_id == account_id, _s.counting.is_(True), _s.settled_at < fetched_before)
            .values(counting=False)
            .returning(_s.hold_id, _s.amount_fen)
        ).all()
        if not parts:
            return from_fen(0)
        self._conn.execute(
            update(holds)
            .where(
                _h.id.in_(sorted({p.hold_id for p in parts})),
                _h.status != HoldStatus.OPEN.value,
                ~_ANY_PART_COUNTING,
            )
            .values(counting=False)
        )
        return from_fen(sum(p.amount_fen for p in parts))

    def counting(self, account_id: int) -> list[Hold]:
        stmt = select(holds).where(_h.account_id == account_id, _h.counting.is_(True)).order_by(_h.created_at)
        return self._with_parts([to_hold(r) for r in self._conn.execute(stmt)])

    def page(
        self,
        account_id: int,
        *,
        statuses: frozenset[str] | None,
        now: datetime,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Hold]:
        stmt = select(holds).where(_h.account_id == account_id)
        if statuses is not None:
            stmt = stmt.where(or_(*(_shown_as(s, now) for s in sorted(statuses))))
        if after is not None:
            stmt = stmt.where(tuple_(_h.created_at, _h.id) < tuple_(*after))
        stmt = stmt.order_by(_h.created_at.desc(), _h.id.desc()).limit(limit)
        return self._with_parts([to_hold(r) for r in self._conn.execute(stmt)])

    def _with_parts(self, found: list[Hold]) -> list[Hold]:
        parts = settlements_of(self._conn, [h.id for h in found if h.settled])
        for h in found:
            h.settlements = parts.get(h.id, [])
        return found

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


def _shown_as(status: str, now: datetime) -> Any:
    """The condition for a hold shown with `status` at `now`: an open hold past its expiry is expired."""
    if status == HoldStatus.OPEN.value:
        return and_(_h.status == status, _h.expires_at > now)
    if status == HoldStatus.EXPIRED.value:
        return or_(_h.status == status, and_(_h.status == HoldStatus.OPEN.value, _h.expires_at <= now))
    return _h.status == status


def settlements_of(conn: Connection, hold_ids: Sequence[str]) -> dict[str, list[Settlement]]:
    """The settled parts of these holds, oldest first, by hold id."""
    out: dict[str, list[Settlement]] = defaultdict(list)
    if not hold_ids:
        return out
    stmt = select(hold_settlements).where(_s.hold_id.in_(list(hold_ids))).order_by(_s.settled_at, _s.id)
    for r in conn.execute(stmt):
        out[r.hold_id].append(
            Settlement(
                id=r.id,
                hold_id=r.hold_id,
                account_id=r.account_id,
                settlement_id=r.settlement_id,
                amount=from_fen(r.amount_fen),
                settled_at=r.settled_at,
                counting=bool(r.counting),
            )
        )
    return out


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
        settled=from_fen(r.settled_fen),
    )
