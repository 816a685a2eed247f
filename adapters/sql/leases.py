"""Short leases on a row: who may call the upstream now. No database lock is held during the call."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, or_, update


def take_lease(conn: Connection, table: Table, key: Any, holder: str, now: datetime, until: datetime) -> bool:
    """Take the row's lease unless another holder's lease is still running; the row must exist."""
    c = table.c
    pk = next(iter(table.primary_key.columns))
    stmt = (
        update(table)
        .where(pk == key, or_(c.lease_until.is_(None), c.lease_until < now, c.lease_holder == holder))
        .values(lease_holder=holder, lease_until=until)
    )
    return conn.execute(stmt).rowcount == 1


def ensure_row(conn: Connection, table: Table, values: dict[str, Any]) -> None:
    """Insert the row if it is missing (concurrent inserters: one wins, the others do nothing)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    conn.execute(insert(table).values(values).on_conflict_do_nothing())
