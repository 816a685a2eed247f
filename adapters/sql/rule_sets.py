"""Rule sets on SQL. Published versions are immutable, so compiled rule sets are cached by id forever and
the "which is active" answer for one second per process."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select

from adapters.sql.tables import rule_sets
from creditctl.domain.rule_set import RuleSetVersion
from rules import parse_rule_set

_r = rule_sets.c


class RuleSetCache:
    """Per-process: compiled versions by id, and the active id with a short time to live."""

    def __init__(self, ttl_s: float = 1.0) -> None:
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._by_id: dict[int, RuleSetVersion] = {}
        self._active: tuple[float, int] | None = None

    def active_id(self) -> int | None:
        active = self._active
        if active is None or time.monotonic() - active[0] > self.ttl_s:
            return None
        return active[1]

    def remember_active(self, rule_set_id: int) -> None:
        self._active = (time.monotonic(), rule_set_id)

    def forget_active(self) -> None:
        self._active = None

    def compiled(self, row: Row[Any]) -> RuleSetVersion:
        with self._lock:
            found = self._by_id.get(row.id)
            if found is None:
                found = RuleSetVersion(
                    id=row.id,
                    version=row.version,
                    name=row.name,
                    rules=parse_rule_set(row.document),
                    published_at=row.published_at,
                )
                self._by_id[row.id] = found
            return found

    def get(self, rule_set_id: int) -> RuleSetVersion | None:
        return self._by_id.get(rule_set_id)


class SqlRuleSetRepository:
    def __init__(self, conn: Connection, cache: RuleSetCache) -> None:
        self._conn = conn
        self._cache = cache

    def active(self) -> RuleSetVersion:
        active_id = self._cache.active_id()
        if active_id is not None:
            cached = self._cache.get(active_id)
            if cached is not None:
                return cached
        row = self._conn.execute(select(rule_sets).order_by(_r.version.desc()).limit(1)).first()
        if row is None:
            raise LookupError("no rule set is published; run `creditctl db upgrade`")
        found = self._cache.compiled(row)
        self._cache.remember_active(found.id)
        return found

    def publish(self, name: str, document: dict[str, Any], now: datetime) -> RuleSetVersion:
        parse_rule_set(document)  # refuse before writing
        version = (self._conn.execute(select(func.max(_r.version))).scalar() or 0) + 1
        self._conn.execute(
            insert(rule_sets).values(name=name, version=version, document=document, published_at=now)
        )
        self._cache.forget_active()
        row = self._conn.execute(select(rule_sets).where(_r.version == version)).one()
        return self._cache.compiled(row)

    def versions(self) -> Sequence[RuleSetVersion]:
        rows = self._conn.execute(select(rule_sets).order_by(_r.version))
        return [self._cache.compiled(r) for r in rows]
