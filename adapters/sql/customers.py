"""Customers (sold-to codes) on SQL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

from adapters.sql.tables import customers

_c = customers.c


class SqlCustomerRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def exists(self, customer_code: str) -> bool:
        stmt = select(_c.code).where(_c.code == customer_code)
        return self._conn.execute(stmt).first() is not None

    def add(self, customer_code: str, name: str, now: datetime) -> bool:
        """Insert unless present; concurrent first adds of one code: one inserts, the others do nothing."""
        if self._conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        stmt = insert(customers).values(code=customer_code, name=name, created_at=now)
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT here.
        inserted = stmt.on_conflict_do_nothing().returning(_c.code)
        return self._conn.execute(inserted).first() is not None

    def codes(self) -> list[str]:
        return list(self._conn.execute(select(_c.code).order_by(_c.code)).scalars())

    def names(self) -> dict[str, str]:
        return {r.code: r.name for r in self._conn.execute(select(_c.code, _c.name).order_by(_c.code))}

    def set_name(self, customer_code: str, name: str) -> None:
        self._conn.execute(update(customers).where(_c.code == customer_code).values(name=name))
