"""Column types that keep the domain's promises on both databases: UTC-aware datetimes, exact JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from creditctl.domain.json_text import json_writer


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out. SQLite stores naive text, so the zone is stripped and restored here."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, frozenset | set):
        return sorted(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


# json.dumps(value, default=_default, separators=(",", ":"), ensure_ascii=False, sort_keys=True), made once
_WRITE = json_writer(_default, sort_keys=True, ensure_ascii=False)


class ExactJson(TypeDecorator[Any]):
    """JSON as text; Decimals are written as strings and non-integers read back as Decimal, never float."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return _WRITE(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value, parse_float=Decimal)
