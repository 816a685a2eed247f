"""The outbox on SQL: events written in the transaction of the change they describe."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert

from adapters.sql.tables import outbox


class SqlOutboxRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, *, event_id: str, topic: str, payload: dict[str, Any], now: datetime) -> None:
        self._conn.execute(insert(outbox).values(id=event_id, topic=topic, payload=payload, created_at=now))
