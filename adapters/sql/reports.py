"""Report aggregates in SQL (GROUP BY in the database; only figures come back), SQLite and PostgreSQL.

Days in the display zone: each offset segment of the period is grouped by the date of decided_at +
the segment's offset (SQLite has no time zones; PostgreSQL gets the same arithmetic, so both agree).
Reads run on plain connections: nothing here takes a lock or waits for deciding, and nothing writes, so
the engine may be a streaming replica's (CREDITCTL_READ_DATABASE_URL); `as_of` says how fresh it is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Date,
    Engine,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.sql.elements import ColumnElement

from adapters.sql.accounts import _to_account
from adapters.sql.freshness import data_as_of
from adapters.sql.tables import (
    DEFERRED_DECISION,
    credit_accounts,
    decisions,
    hold_settlements,
    holds,
    upstream_calls,
)
from adapters.sql.types import UtcDateTime
from creditctl.domain.hold import HoldStatus
from creditctl.domain.report_period import OffsetSegment
from creditctl.ports.clock import Clock
from creditctl.ports.reports import (
    AccountExposure,
    AccountOutcome,
    AgeBucketRow,
    CallCount,
    Customers,
    DayOutcome,
    ExpiringHold,
    ReasonCount,
    UpstreamCall,
)

log = logging.getLogger("creditctl.reports")
_d, _h, _a, _u = decisions.c, holds.c, credit_accounts.c, upstream_calls.c
_s = hold_settlements.c

_REASONS = {
    "sqlite": (
        "SELECT d.outcome, json_extract(r.value, '$.reason') AS reason, count(DISTINCT d.id) AS n "
        "FROM decisions d, json_each(d.reasons) r "
        "WHERE d.decided_at >= :start AND d.decided_at < :end AND d.outcome IN ({outcomes}){scope} "
        "GROUP BY 1, 2"
    ),
    "postgresql": (
        # each decision's reason codes made distinct on the row itself: a count(DISTINCT id) over the
        # whole period sorts every (decision, reason) pair and is 7x slower
        "SELECT d.outcome, r.reason, count(*) AS n FROM decisions d CROSS JOIN LATERAL "
        "(SELECT DISTINCT e ->> 'reason' AS reason FROM json_array_elements(d.reasons::json) e) r "
        "WHERE d.decided_at >= :start AND d.decided_at < :end AND d.outcome IN ({outcomes}){scope} "
        "GROUP BY 1, 2"
    ),
}


def _in_scope(column: Any, customers: Customers) -> ColumnElement[bool]:
    if customers is None:
        return literal(True)  # type: ignore[return-value]
    return column.in_(sorted(customers)) if customers else false()


class SqlReportQueries:
    def __init__(self, engine: Engine, *, clock: Clock | None = None) -> None:
        """`clock`: the primary's database clock, when `engine` is the primary's (a test's stand-in for it
        then dates the reports as it dates everything else); None: asked of `engine` (a replica's)."""
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._clock = clock

    def as_of(self) -> datetime | None:
        return data_as_of(self._engine, self._clock)

    def _local_date(self, column: Any, offset_s: int) -> Any:
        if self._sqlite:
            return func.date(column, f"{offset_s:+d} seconds")
        return cast(func.timezone("UTC", column) + literal(timedelta(seconds=offset_s)), Date)

    def _rows(self, stmt: Any, params: dict[str, Any] | None = None) -> list[Any]:
        with self._engine.connect() as conn:
            return list(conn.execute(stmt, params or {}))

    def decisions_by_day(self, segments: Sequence[OffsetSegment], customers: Customers) -> list[DayOutcome]:
        out: dict[tuple[date, str], list[int]] = {}
        for seg in segments:
            day = self._local_date(_d.decided_at, seg.offset_s).label("day")
            stmt = (
                select(day, _d.outcome, func.count(), func.coalesce(func.sum(_d.amount_fen), 0))
                .where(
                    _d.decided_at >= seg.start,
                    _d.decided_at < seg.end,
                    _in_scope(_d.customer_code, customers),
                )
                .group_by(day, _d.outcome)
            )
            for d, outcome, n, fen in self._rows(stmt):
                key = (date.fromisoformat(d) if isinstance(d, str) else d, outcome)
                tally = out.setdefault(key, [0, 0])
                tally[0] += int(n)
                tally[1] += int(fen)
        return [DayOutcome(d, o, n, fen) for (d, o), (n, fen) in sorted(out.items())]

    def decisions_by_account(
        self, start: datetime, end: datetime, customers: Customers
    ) -> list[AccountOutcome]:
        stmt = (
            select(
                _d.customer_code,
                _d.sale_group_code,
                _d.outcome,
                func.count(),
                func.coalesce(func.sum(_d.amount_fen), 0),
            )
            .where(_d.decided_at >= start, _d.decided_at < end, _in_scope(_d.customer_code, customers))
            .group_by(_d.customer_code, _d.sale_group_code, _d.outcome)
            .order_by(_d.customer_code, _d.sale_group_code, _d.outcome)
        )
        return [AccountOutcome(c, g, o, int(n), int(fen)) for c, g, o, n, fen in self._rows(stmt)]

    def reasons(
        self, start: datetime, end: datetime, outcomes: Sequence[str], customers: Customers
    ) -> list[ReasonCount]:
        if not outcomes or (customers is not None and not customers):
            return []
        params: dict[str, Any] = {"start": start, "end": end}
        params.update({f"o{i}": o for i, o in enumerate(outcomes)})
        scope = ""
        if customers is not None:
            params.update({f"c{i}": c for i, c in enumerate(sorted(customers))})
            scope = " AND d.customer_code IN (" + ", ".join(f":c{i}" for i in range(len(customers))) + ")"
        sql = _REASONS[self._engine.dialect.name].format(
            outcomes=", ".join(f":o{i}" for i in range(len(outcomes))), scope=scope
        )
        stmt = text(sql).bindparams(
            bindparam("start", type_=UtcDateTime), bindparam("end", type_=UtcDateTime)
        )
        rows = self._rows(stmt, params)
        return [ReasonCount(o, r, int(n)) for o, r, n in rows if r is not None]

    def exposures(self, now: datetime, customers: Customers) -> list[AccountExposure]:
        """Per account, what counts as the account view counts it: the open remainder of each hold not
        past its expiry (amount less its settled parts), plus each settled part still counting."""
        held = (
            select(
                _h.account_id.label("account_id"),
                func.sum(_h.amount_fen - _h.settled_fen).label("fen"),
                func.count().label("open_holds"),
            )
            .where(_h.status == HoldStatus.OPEN.value, _h.expires_at > now)
            .group_by(_h.account_id)
            .subquery()
        )
        settled = (
            select(_s.account_id.label("account_id"), func.sum(_s.amount_fen).label("fen"))
            .where(_s.counting.is_(True))
            .group_by(_s.account_id)
            .subquery()
        )
        stmt = (
            select(
                credit_accounts,
                (func.coalesce(held.c.fen, 0) + func.coalesce(settled.c.fen, 0)).label("counting_fen"),
                held.c.open_holds,
            )
            .outerjoin(held, held.c.account_id == _a.id)
            .outerjoin(settled, settled.c.account_id == _a.id)
            .where(_in_scope(_a.customer_code, customers))
            .order_by(_a.customer_code, _a.sale_group_code)
        )
        return [
            AccountExposure(_to_account(r), int(r.counting_fen or 0), int(r.open_holds or 0))
            for r in self._rows(stmt)
        ]

    def expiring_holds(
        self, now: datetime, until: datetime, customers: Customers, *, limit: int
    ) -> tuple[list[ExpiringHold], int, int]:
        where = and_(
            _h.status == HoldStatus.OPEN.value,
            _h.expires_at > now,
            _h.expires_at <= until,
            _in_scope(_a.customer_code, customers),
        )
        joined = holds.join(credit_accounts, _a.id == _h.account_id)
        listed = (
            select(
                _h.id,
                _h.order_id,
                _a.customer_code,
                _a.sale_group_code,
                _h.amount_fen - _h.settled_fen,
                _h.expires_at,
            )
            .select_from(joined)
            .where(where)
            .order_by(_h.expires_at, _h.id)
            .limit(limit)
        )
        total = (
            select(func.count(), func.coalesce(func.sum(_h.amount_fen - _h.settled_fen), 0))
            .select_from(joined)
            .where(where)
        )
        with self._engine.connect() as conn:
            rows = [ExpiringHold(*r) for r in conn.execute(listed)]
            n, fen = conn.execute(total).one()
        return rows, int(n), int(fen)

    def deferred_by_age(
        self, now: datetime, edges_s: Sequence[int], customers: Customers
    ) -> list[AgeBucketRow]:
        # age >= edge  <=>  decided_at <= now - edge: compare the stored column with bound instants.
        whens = [
            (_d.decided_at <= now - timedelta(seconds=edge), i)
            for i, edge in reversed(list(enumerate(edges_s)))
            if i > 0
        ]
        bucket = case(*whens, else_=0).label("bucket")
        stmt = (
            select(bucket, func.count(), func.coalesce(func.sum(_d.amount_fen), 0))
            .where(
                DEFERRED_DECISION,
                or_(_d.deferral_expires_at.is_(None), _d.deferral_expires_at > now),
                _in_scope(_d.customer_code, customers),
            )
            .group_by(bucket)
        )
        return [AgeBucketRow(int(b), int(n), int(fen)) for b, n, fen in self._rows(stmt)]

    def upstream_counts(self, start: datetime, end: datetime, customers: Customers) -> list[CallCount]:
        retry = case((_u.attempt > 1, 1), else_=0).label("retry")
        stmt = (
            select(_u.operation, _u.error_code, retry, func.count())
            .where(_u.called_at >= start, _u.called_at < end, _in_scope(_u.customer_code, customers))
            .group_by(_u.operation, _u.error_code, retry)
        )
        return [CallCount(op, code, bool(r), int(n)) for op, code, r, n in self._rows(stmt)]

    def upstream_latency_rank(
        self, start: datetime, end: datetime, operation: str | None, rank: int, customers: Customers
    ) -> float | None:
        stmt = (
            select(_u.latency_ms)
            .where(
                _u.called_at >= start,
                _u.called_at < end,
                literal(True) if operation is None else _u.operation == operation,
                _in_scope(_u.customer_code, customers),
            )
            .order_by(_u.latency_ms)
            .offset(rank - 1)
            .limit(1)
        )
        rows = self._rows(stmt)
        return float(rows[0][0]) if rows else None  # not money: a latency in ms


class SqlUpstreamCallLog:
    """Writes one upstream call per small insert on its own connection (never inside a decision)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._insert = insert(upstream_calls)

    def record(self, call: UpstreamCall) -> None:
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    self._insert,
                    {
                        "called_at": call.called_at,
                        "operation": call.operation,
                        "config": call.config,
                        "customer_code": call.customer_code,
                        "status": call.status,
                        "latency_ms": call.latency_ms,
                        "attempt": call.attempt,
                        "error_code": call.error_code,
                    },
                )
        except Exception:  # an observation never fails the call it observes
            log.warning("could not record an upstream call", exc_info=True)
