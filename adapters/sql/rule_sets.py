"""Rule sets on SQL. Published versions are immutable, so compiled rule sets are cached by id forever;
"which version is the default" and the assignment table are cached for one second per process (in the
service, kept young by a thread of their own: see RuleSetCache)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, or_, select, text, update

from adapters.sql.tables import rule_set_assignments, rule_sets
from creditctl.domain.rule_set import (
    ApplicableRuleSet,
    AssignedBy,
    Assignment,
    RuleSetRecord,
    RuleSetVersion,
)
from rules import parse_rule_set

log = logging.getLogger(__name__)
_r = rule_sets.c
_a = rule_set_assignments.c
Assigned = dict[tuple[str, str], int]
IDLE_S = 60.0  # a process that has not looked for this long stops refreshing; its next look starts it again


class RuleSetCache:
    """Per-process: compiled versions by id; the active id and the assignments, used for `ttl_s` after
    they were read, then read again by the unit that needs them.

    With a `refresher` (the served application's), a thread of the process reads both again every half
    `ttl_s`, so a decision finds them young and does not read them itself: without it, the first decision
    of every second paid two more reads while it held its account's lock (at one client, the slowest
    decision of each second). What a decision may use is unchanged: nothing read more than `ttl_s` ago (a
    late refresh leaves the read to the decision, as before). A refresh that began before this process
    changed them (a publication, an assignment: forgotten when made and again when committed) is dropped,
    and a refresh never replaces what a decision read after it began."""

    def __init__(
        self, ttl_s: float = 1.0, *, refresher: Callable[[], tuple[int, Assigned]] | None = None
    ) -> None:
        self.ttl_s = ttl_s
        self._refresher = refresher
        self._lock = threading.Lock()
        self._by_id: dict[int, RuleSetVersion] = {}
        self._active: tuple[float, int] | None = None
        self._assigned: tuple[float, Assigned] | None = None
        self._generation = 0  # moved by forget(): what a refresh read before it is out of date
        self._refreshing: int | None = None  # the pid whose refresh thread runs (a forked child has none)
        self._looked_at = 0.0
        self._failing = False
        self._stopping = threading.Event()
        self.refreshes = 0  # refreshes kept (for tests)

    def active_id(self) -> int | None:
        return self._usable(self._active)

    def remember_active(self, rule_set_id: int) -> None:
        self._active = (time.monotonic(), rule_set_id)

    def forget(self) -> None:
        """Both entries out of date (this process changed them): dropped, with any refresh under way."""
        with self._lock:
            self._generation += 1
            self._active = self._assigned = None

    def assigned(self) -> Assigned | None:
        return self._usable(self._assigned)

    def remember_assigned(self, assigned: Assigned) -> None:
        self._assigned = (time.monotonic(), assigned)

    def _usable(self, entry: tuple[float, Any] | None) -> Any:
        now = time.monotonic()
        if self._refresher is not None:
            self._looked_at = now
            if self._refreshing != os.getpid():
                self._start_refreshing()
        if entry is None or now - entry[0] > self.ttl_s:
            return None
        return entry[1]

    def stop(self) -> None:
        """No more refreshes (the entries then last `ttl_s`, as without a refresher)."""
        self._stopping.set()

    def _start_refreshing(self) -> None:
        pid = os.getpid()
        with self._lock:
            if self._refreshing == pid or self._stopping.is_set():
                return
            self._refreshing = pid
        threading.Thread(
            target=self._keep_refreshing, args=(pid,), name="rule-set-cache", daemon=True
        ).start()

    def _keep_refreshing(self, pid: int) -> None:
        try:
            while not self._stopping.is_set():
                started = time.monotonic()
                if started - self._looked_at > IDLE_S:
                    break
                self.refresh(started)
                if self._stopping.wait(max(0.0, self.ttl_s / 2 - (time.monotonic() - started))):
                    break
        finally:
            with self._lock:
                if self._refreshing == pid:
                    self._refreshing = None

    def refresh(self, started: float) -> None:
        """Read both with the refresher and keep them as read at `started` (monotonic), unless this
        process changed them meanwhile."""
        assert self._refresher is not None
        generation = self._generation
        try:
            active_id, assigned = self._refresher()
        except Exception as exc:  # the decisions read them themselves once these are ttl_s old
            if not self._failing:
                log.warning("rule sets: reading the default version and the assignments failed: %r", exc)
            self._failing = True
            return
        if self._failing:
            log.warning("rule sets: reading the default version and the assignments works again")
        self._failing = False
        with self._lock:
            if generation != self._generation:
                return
            # Never over what a decision read after this refresh began (newer than what it read).
            if self._active is None or self._active[0] <= started:
                self._active = (started, active_id)
            if self._assigned is None or self._assigned[0] <= started:
                self._assigned = (started, assigned)
            self.refreshes += 1

    def compiled(self, row: Row[Any]) -> RuleSetVersion:
        with self._lock:
            found = self._by_id.get(row.id)
            if found is None:
                found = RuleSetVersion(
                    id=row.id,
                    version=row.version,
                    name=row.name,
                    rules=parse_rule_set(row.document, stored=True),
                    published_at=row.published_at,
                    effective_at=row.effective_at,
                )
                self._by_id[row.id] = found
            return found

    def get(self, rule_set_id: int) -> RuleSetVersion | None:
        return self._by_id.get(rule_set_id)


class SqlRuleSetRepository:
    def __init__(self, conn: Connection, cache: RuleSetCache, now: Callable[[], datetime]) -> None:
        """`now` is the database's time (a scheduled version becomes the default by that clock)."""
        self._conn = conn
        self._cache = cache
        self._now = now
        self.changed = False  # this unit published or (un)assigned: the unit forgets the cache on commit

    def _changed(self) -> None:
        """What this process has cached is out of date: forgotten now (this unit reads its own change)
        and again when the unit commits (a refresh that read in between read the old state)."""
        self._cache.forget()
        self.changed = True

    def current(self) -> tuple[int, Assigned]:
        """What the cache keeps, read now: the default version's id (compiled into the cache) and the
        assignments (RuleSetCache's refresher)."""
        return self._read_active().id, self._read_assigned()

    def active(self) -> RuleSetVersion:
        active_id = self._cache.active_id()
        if active_id is not None:
            cached = self._cache.get(active_id)
            if cached is not None:
                return cached
        found = self._read_active()
        if not self.changed:  # a unit that changed them reads its own change: not the process's to use
            self._cache.remember_active(found.id)
        return found

    def _read_active(self) -> RuleSetVersion:
        # The id first: the version it names is compiled already nearly always, and its document (read
        # and parsed from JSON) is needed only when it is not.
        active_id = self._conn.execute(
            select(_r.id)
            .where(_r.version.is_not(None), or_(_r.effective_at.is_(None), _r.effective_at <= self._now()))
            .order_by(_r.version.desc())
            .limit(1)
        ).scalar()
        if active_id is None:
            raise LookupError("no rule set is published; run `creditctl db upgrade`")
        cached = self._cache.get(active_id)
        if cached is not None:
            return cached
        return self._cache.compiled(self._conn.execute(select(rule_sets).where(_r.id == active_id)).one())

    def published(self, rule_set_id: int) -> RuleSetVersion | None:
        cached = self._cache.get(rule_set_id)
        if cached is not None:
            return cached
        row = self._conn.execute(
            select(rule_sets).where(_r.id == rule_set_id, _r.version.is_not(None))
        ).first()
        return None if row is None else self._cache.compiled(row)

    def for_account(self, customer_code: str, sale_group_code: str) -> ApplicableRuleSet:
        assigned = self._cache.assigned()
        if assigned is None:
            assigned = self._read_assigned()
            if not self.changed:
                self._cache.remember_assigned(assigned)
        for key, why in (
            ((customer_code, sale_group_code), AssignedBy.ACCOUNT),
            ((customer_code, ""), AssignedBy.CUSTOMER),
        ):
            rule_set_id = assigned.get(key) if assigned else None
            found = None if rule_set_id is None else self.published(rule_set_id)
            # A pinned version scheduled for later decides from its effective_at on, as the default does.
            if found is not None and (found.effective_at is None or found.in_effect(self._now())):
                return ApplicableRuleSet(found, why)
        return ApplicableRuleSet(self.active(), AssignedBy.DEFAULT)

    def _read_assigned(self) -> Assigned:
        rows = self._conn.execute(select(_a.customer_code, _a.sale_group_code, _a.rule_set_id))
        return {(c, g): i for c, g, i in rows}

    def publish(
        self,
        name: str,
        document: dict[str, Any],
        now: datetime,
        *,
        by: str = "cli",
        reason: str = "imported",
        effective_at: datetime | None = None,
        rolled_back_from: int | None = None,
    ) -> RuleSetVersion:
        parse_rule_set(document)  # refuse before writing
        self._conn.execute(
            insert(rule_sets).values(
                name=name,
                version=self._next_version(),
                document=document,
                published_at=now,
                created_at=now,
                created_by=by,
                updated_at=now,
                published_by=by,
                reason=reason,
                effective_at=effective_at,
                rolled_back_from=rolled_back_from,
            )
        )
        self._changed()
        row = self._conn.execute(select(rule_sets).order_by(_r.version.desc()).limit(1)).one()
        return self._cache.compiled(row)

    def publish_draft(
        self,
        rule_set_id: int,
        document: dict[str, Any],
        now: datetime,
        *,
        by: str,
        reason: str,
        effective_at: datetime | None,
        revision: int,
    ) -> RuleSetVersion | None:
        version = self._next_version()  # publications serialised first, then the conditional UPDATE
        changed = self._conn.execute(
            update(rule_sets)
            .where(_r.id == rule_set_id, _r.version.is_(None), _r.revision == revision)
            .values(
                version=version,
                document=document,
                published_at=now,
                updated_at=now,
                published_by=by,
                reason=reason,
                effective_at=effective_at,
                revision=revision + 1,
            )
        ).rowcount
        if changed != 1:
            return None  # published or edited by another transaction since this one read it
        self._changed()
        return self._cache.compiled(self._conn.execute(select(rule_sets).where(_r.id == rule_set_id)).one())

    def _next_version(self) -> int:
        """n + 1, with publications serialised: on PostgreSQL a transaction-scoped advisory lock (publishing
        is rare; two at once would otherwise both take n + 1 and one fail on the unique version); SQLite's
        immediate transaction already holds the write lock."""
        if self._conn.dialect.name == "postgresql":
            self._conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('creditctl.rule_set_versions'))"))
        return int(self._conn.execute(select(func.max(_r.version))).scalar() or 0) + 1

    def add_draft(self, name: str, document: dict[str, Any], *, by: str, now: datetime) -> RuleSetRecord:
        result = self._conn.execute(
            insert(rule_sets).values(
                name=name, document=document, created_at=now, created_by=by, updated_at=now
            )
        )
        found = self.record(int(result.inserted_primary_key[0]))
        assert found is not None
        return found

    def update_draft(
        self, rule_set_id: int, name: str, document: dict[str, Any], now: datetime, *, revision: int
    ) -> bool:
        changed = self._conn.execute(
            update(rule_sets)
            .where(_r.id == rule_set_id, _r.version.is_(None), _r.revision == revision)
            .values(name=name, document=document, updated_at=now, revision=revision + 1)
        ).rowcount
        return changed == 1

    def record(self, rule_set_id: int) -> RuleSetRecord | None:
        row = self._conn.execute(select(rule_sets).where(_r.id == rule_set_id)).first()
        return None if row is None else _record(row)

    def record_by_version(self, version: int) -> RuleSetRecord | None:
        row = self._conn.execute(select(rule_sets).where(_r.version == version)).first()
        return None if row is None else _record(row)

    def records(self) -> list[RuleSetRecord]:
        rows = self._conn.execute(select(rule_sets).order_by(_r.id))
        return [_record(row) for row in rows]

    def versions(self) -> Sequence[RuleSetVersion]:
        rows = self._conn.execute(select(rule_sets).where(_r.version.is_not(None)).order_by(_r.version))
        return [self._cache.compiled(r) for r in rows]

    def assign(self, assignment: Assignment) -> None:
        key = (_a.customer_code == assignment.customer_code) & (
            _a.sale_group_code == assignment.sale_group_code
        )
        self._conn.execute(delete(rule_set_assignments).where(key))
        self._conn.execute(
            insert(rule_set_assignments).values(
                customer_code=assignment.customer_code,
                sale_group_code=assignment.sale_group_code,
                rule_set_id=assignment.rule_set_id,
                assigned_by=assignment.assigned_by,
                reason=assignment.reason,
                assigned_at=assignment.assigned_at,
            )
        )
        self._changed()

    def unassign(self, customer_code: str, sale_group_code: str) -> bool:
        key = (_a.customer_code == customer_code) & (_a.sale_group_code == sale_group_code)
        removed = self._conn.execute(delete(rule_set_assignments).where(key)).rowcount
        self._changed()
        return bool(removed)

    def assignments(self, customer_code: str) -> list[Assignment]:
        rows = self._conn.execute(
            select(rule_set_assignments).where(_a.customer_code == customer_code).order_by(_a.sale_group_code)
        )
        return [_assignment(r) for r in rows]

    def pins(self, customers: frozenset[str] | None = None) -> list[Assignment]:
        stmt = select(rule_set_assignments).order_by(_a.rule_set_id, _a.customer_code, _a.sale_group_code)
        if customers is not None:
            stmt = stmt.where(_a.customer_code.in_(sorted(customers)))
        return [_assignment(r) for r in self._conn.execute(stmt)]


def _assignment(r: Row[Any]) -> Assignment:
    return Assignment(
        r.customer_code, r.sale_group_code, r.rule_set_id, r.assigned_by, r.assigned_at, r.reason
    )


def _record(row: Row[Any]) -> RuleSetRecord:
    return RuleSetRecord(
        id=row.id,
        name=row.name,
        version=row.version,
        document=row.document,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        published_at=row.published_at,
        published_by=row.published_by,
        reason=row.reason,
        effective_at=row.effective_at,
        rolled_back_from=row.rolled_back_from,
        revision=row.revision,
    )
