"""Credit accounts on SQL. `lock` is SELECT ... FOR UPDATE on PostgreSQL; SQLite's immediate transaction
already holds the database write lock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, select, update

from adapters.sql.tables import credit_accounts
from creditctl.domain.account import AccountStatus, CreditAccount
from creditctl.domain.balance import BalanceSnapshot
from creditctl.domain.money import from_fen, to_fen

_c = credit_accounts.c


class SqlAccountRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, customer_code: str, sale_group_code: str) -> CreditAccount | None:
        row = self._conn.execute(_by_key(customer_code, sale_group_code)).first()
        return _to_account(row) if row else None

    def lock(self, customer_code: str, sale_group_code: str) -> CreditAccount | None:
        stmt = _by_key(customer_code, sale_group_code)
        if self._conn.dialect.name != "sqlite":
            stmt = stmt.with_for_update()
        row = self._conn.execute(stmt).first()
        return _to_account(row) if row else None

    def add(self, account: CreditAccount) -> CreditAccount:
        now = account.created_at or datetime.now(UTC)
        values = _values(account) | {"created_at": now}
        if self._conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            self._conn.execute(pg_insert(credit_accounts).values(values).on_conflict_do_nothing())
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            self._conn.execute(sqlite_insert(credit_accounts).values(values).on_conflict_do_nothing())
        locked = self.lock(account.customer_code, account.sale_group_code)
        assert locked is not None
        return locked

    def save(self, account: CreditAccount) -> None:
        self._conn.execute(update(credit_accounts).where(_c.id == account.id).values(_values(account)))

    def for_customer(self, customer_code: str) -> list[CreditAccount]:
        stmt = select(credit_accounts).where(_c.customer_code == customer_code).order_by(_c.sale_group_code)
        return [_to_account(r) for r in self._conn.execute(stmt)]


def _by_key(customer_code: str, sale_group_code: str) -> Any:
    return select(credit_accounts).where(
        _c.customer_code == customer_code, _c.sale_group_code == sale_group_code
    )


def _values(a: CreditAccount) -> dict[str, Any]:
    snap = a.snapshot
    return {
        "customer_code": a.customer_code,
        "sale_group_code": a.sale_group_code,
        "sale_group_name": a.sale_group_name,
        "payer_account_code": a.payer_account_code,
        "payer_account_name": a.payer_account_name,
        "status": a.status.value,
        "frozen_reason": a.frozen_reason,
        "frozen_by": a.frozen_by,
        "frozen_at": a.frozen_at,
        "exposure_fen": to_fen(a.exposure),
        "balance_fen": to_fen(snap.amount) if snap else None,
        "balance_fetched_at": snap.fetched_at if snap else None,
        "balance_source": snap.source if snap else None,
        "params": a.params or None,
        "updated_at": datetime.now(UTC),
    }


def _to_account(r: Row[Any]) -> CreditAccount:
    snap = None
    if r.balance_fen is not None and r.balance_fetched_at is not None:
        snap = BalanceSnapshot(
            amount=from_fen(r.balance_fen), fetched_at=r.balance_fetched_at, source=r.balance_source or ""
        )
    return CreditAccount(
        id=r.id,
        customer_code=r.customer_code,
        sale_group_code=r.sale_group_code,
        sale_group_name=r.sale_group_name,
        payer_account_code=r.payer_account_code,
        payer_account_name=r.payer_account_name,
        status=AccountStatus(r.status),
        frozen_reason=r.frozen_reason,
        frozen_by=r.frozen_by,
        frozen_at=r.frozen_at,
        exposure=from_fen(r.exposure_fen),
        snapshot=snap,
        params=dict(r.params or {}),
        created_at=r.created_at,
    )
