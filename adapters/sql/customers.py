"""Customers (sold-to codes) on SQL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select

from adapters.sql.tables import customers


class SqlCustomerRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def exists(self, customer_code: str) -> bool:
        stmt = select(customers.c.code).where(customers.c.code == customer_code)
        return self._conn.execute(stmt).first() is not None

    def add(self, customer_code: str, name: str, now: datetime) -> bool:
        if self.exists(customer_code):
            return False
        self._conn.execute(insert(customers).values(code=customer_code, name=name, created_at=now))
        return True

    def codes(self) -> list[str]:
        return list(self._conn.execute(select(customers.c.code).order_by(customers.c.code)).scalars())
