"""The audit log on SQL: one INSERT per event on the change's connection; seals in their own table.

An event's `at` is the database's: PostgreSQL's trigger sets it (the INSERT leaves it out), SQLite's
trigger refuses any other value than the statement's own time (the INSERT sends that expression).
Everything read back carries the hashed text (`sealed_payload`: the payload with that time in it)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal_column,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError

from adapters.sql import driver_statements
from adapters.sql.driver_statements import DriverStatement
from adapters.sql.tables import audit_events, audit_seal_mark, audit_seals
from adapters.sql.types import UtcDateTime
from creditctl.domain.audit import (
    GENESIS,
    Actor,
    AuditEvent,
    AuditQuery,
    SealerMark,
    SealHorizon,
    event_payload,
    iso,
    sealed_event,
    sealed_payload,
)
from creditctl.domain.errors import AuditSealConflict

_e, _s = audit_events.c, audit_seals.c
# The database's time of the statement on SQLite, spelled as SQLAlchemy stores a UTC datetime there; the
# trigger of migration 0014 refuses any other `at` (the same expression, evaluated in the same statement).
SQLITE_NOW = "(strftime('%Y-%m-%d %H:%M:%S', 'now') || substr(strftime('%f', 'now'), 3) || '000')"
# Built once: the decision path compiles it once per process.
_APPEND = insert(audit_events).values(at=literal_column(SQLITE_NOW))
# On PostgreSQL the Core insert would add RETURNING seq (its result costs more CPU than the insert);
# nothing needs the seq back, so the statement goes to psycopg as written (a prepared statement). No
# `at`: the trigger sets it to clock_timestamp() whatever a writer sends.
_APPEND_KEYS = ("type", "actor", "customer_code", "sale_group_code", "order_id", "payload")
_PG_APPEND = DriverStatement(
    sql=f"INSERT INTO audit_events ({', '.join(_APPEND_KEYS)}) "
    f"VALUES ({', '.join(f'%({k})s' for k in _APPEND_KEYS)})",
    binds=tuple((k, None) for k in _APPEND_KEYS),
    columns=(),
)
# A batch of seals in one INSERT (the worker seals about a second of decisions a tick): one statement for
# the server to run instead of one per seal, the same rows, all or none (a taken position or seq fails it).
_PG_ADD_SEALS = text(
    "INSERT INTO audit_seals (position, seq, prev_hash, hash, sealed_at) "
    "SELECT position, seq, prev_hash, hash, :at FROM unnest(CAST(:positions AS BIGINT[]), "
    "CAST(:seqs AS BIGINT[]), CAST(:prevs AS VARCHAR[]), CAST(:hashes AS VARCHAR[])) "
    "AS batch(position, seq, prev_hash, hash)"
).bindparams(bindparam("at", type_=UtcDateTime()))
# On PostgreSQL the window below the highest seal is first counted on the seals' seq index: when every
# seq of (after_seq, highest seal] has a seal (the seals' seqs are unique, so the count says so), no
# committed event there can be unsealed, and the events are read from the highest seal up: the new
# ones only. Otherwise (a late commit, a refused event, a seq rolled back in the window) the statement
# is the anti-join over the whole window, as before. The plain anti-join visits every event of the
# window (10,000 seqs: 2,021 shared buffers, ~5.8 ms a pass) to return the few hundred new ones; the
# count is an index-only scan of the seals (~265 buffers, ~1.7 ms).
_PG_UNSEALED = text(
    "WITH w AS (SELECT CASE WHEN count(*) = coalesce(max(seq), :after) - :after "
    "THEN coalesce(max(seq), :after) ELSE :after END AS start "
    "FROM audit_seals WHERE seq > :after) "
    "SELECT e.seq, e.payload, e.at FROM audit_events AS e "
    "WHERE e.seq > :after AND e.seq > (SELECT start FROM w) "
    "AND NOT EXISTS (SELECT 1 FROM audit_seals AS s WHERE s.seq = e.seq AND s.seq > :after "
    "AND s.seq > (SELECT start FROM w)) "
    "ORDER BY e.seq LIMIT :limit"
)
# The horizon on PostgreSQL, in two statements and in this order (each reads live state, not a snapshot):
# the sequence's last value, then the transactions holding a write lock on audit_events. A writer takes
# that lock before its INSERT runs and so before the trigger gives it a seq, and keeps it to its end: a
# writer that holds a seq up to the value read is one the second statement lists, or it had ended. The
# value bounds every seq handed out only if the sequence hands them out in order (CACHE 1, migration
# 0020: a session's cached seqs would come later from below it); with another CACHE the horizon cannot
# tell, and never settles.
_PG_LAST_SEQ = text(
    "SELECT CASE WHEN s.is_called THEN s.last_value ELSE s.last_value - 1 END, p.seqcache "
    "FROM audit_events_seq_seq AS s, pg_sequence AS p "
    "WHERE p.seqrelid = CAST('audit_events_seq_seq' AS regclass)"
)
_AUDIT_LOCKS = (
    "FROM pg_locks WHERE locktype = 'relation' AND relation = CAST('audit_events' AS regclass) "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
_PG_WRITERS = text(f"SELECT DISTINCT virtualtransaction {_AUDIT_LOCKS} AND mode = 'RowExclusiveLock'")
# Settled when none of them holds a lock on the table any more. A prepared transaction (two-phase
# commit; the service uses none) keeps its virtual id, but one recovered after a restart holds its locks
# as '-1/xid': any such counts as unsettled.
_PG_SETTLED = text(
    f"SELECT NOT EXISTS (SELECT 1 {_AUDIT_LOCKS} AND (virtualtransaction = ANY(CAST(:pending AS TEXT[])) "
    "OR virtualtransaction LIKE '-1/%'))"
)
_MARK = audit_seal_mark.c
_COLUMNS = (_e.type, _e.actor, _e.at, _e.customer_code, _e.sale_group_code, _e.order_id)
_SEALED = select(_e.seq, _e.payload, _e.at, _s.position, _s.prev_hash, _s.hash).select_from(
    audit_seals.join(audit_events, _e.seq == _s.seq)
)


class SqlAuditLog:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._postgres = conn.dialect.name == "postgresql"

    def append(
        self,
        type: str,
        *,
        at: datetime,
        actor: Actor,
        subject: Mapping[str, Any],
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
    ) -> None:
        # `at` is the writer's: kept in the stored text, replaced by the database's time when hashed.
        payload = event_payload(type, at=at, actor=actor, subject=subject, before=before, after=after)
        values = {
            "type": type,
            "actor": actor.name,
            "customer_code": subject.get("customer_code"),
            "sale_group_code": subject.get("sale_group_code"),
            "order_id": subject.get("order_id"),
            "payload": payload,
        }
        if self._postgres:  # the hot path: one INSERT on the driver's cursor, no RETURNING, no compile
            driver_statements.execute(self._conn, _PG_APPEND, values)
            return
        self._conn.execute(_APPEND, values)

    def head(self) -> tuple[int, str]:
        row = self._conn.execute(select(_s.position, _s.hash).order_by(_s.position.desc()).limit(1)).first()
        return (0, GENESIS) if row is None else (int(row.position), row.hash)

    def unsealed(self, *, after_seq: int, limit: int) -> Sequence[AuditEvent]:
        if self._postgres and after_seq > 0:  # a window (a full pass, from 0, would count the whole trail)
            return self._unsealed_postgres(after_seq, limit)
        # The bound is repeated on the seals' side: without it PostgreSQL's anti-join reads every seal
        # from the first (a merge join over the whole trail, once a second per quick pass).
        rows = self._conn.execute(
            select(_e.seq, _e.payload, _e.at)
            .where(_e.seq > after_seq, ~exists().where(_s.seq == _e.seq, _s.seq > after_seq))
            .order_by(_e.seq)
            .limit(limit)
        )
        return [sealed_event(int(r.seq), r.payload, r.at) for r in rows]

    def _unsealed_postgres(self, after_seq: int, limit: int) -> Sequence[AuditEvent]:
        rows = self._conn.execute(_PG_UNSEALED, {"after": after_seq, "limit": limit})
        return [sealed_event(int(r.seq), r.payload, r.at) for r in rows]

    def newest_sealed_at(self, *, window: int) -> datetime | None:
        # Each event's time looked up by its seq (a correlated subquery: one index probe per seal). As a
        # join, PostgreSQL hashed the window and scanned the whole audit_events table whenever the table
        # was small enough to look cheaper so (up to some hundred thousand events: 200 ms a tick).
        recent = select(_s.seq).order_by(_s.position.desc()).limit(window).subquery()
        at = select(_e.at).where(_e.seq == recent.c.seq).scalar_subquery()
        value: datetime | None = self._conn.execute(select(func.max(at)).select_from(recent)).scalar()
        return value

    def add_seals(self, seals: Sequence[tuple[int, int, str, str]], *, at: datetime) -> None:
        if not seals:
            return
        try:
            if self._postgres:  # one statement for the batch: an executemany is one per seal
                positions, seqs, prevs, hashes = (list(column) for column in zip(*seals, strict=True))
                self._conn.execute(
                    _PG_ADD_SEALS,
                    {"positions": positions, "seqs": seqs, "prevs": prevs, "hashes": hashes, "at": at},
                )
                return
            self._conn.execute(
                insert(audit_seals),
                [
                    {"position": p, "seq": q, "prev_hash": prev, "hash": h, "sealed_at": at}
                    for p, q, prev, h in seals
                ],
            )
        except IntegrityError:
            raise AuditSealConflict() from None

    def chain(self, *, after_position: int, limit: int) -> Sequence[tuple[Any, ...]]:
        rows = self._conn.execute(
            select(_s.position, _s.seq, _s.prev_hash, _s.hash, _e.payload, *_COLUMNS)
            .select_from(audit_seals.outerjoin(audit_events, _e.seq == _s.seq))
            .where(_s.position > after_position)
            .order_by(_s.position)
            .limit(limit)
        )
        return [
            (
                int(r.position),
                int(r.seq),
                None if r.payload is None else sealed_payload(r.payload, r.at),
                r.prev_hash,
                r.hash,
                None if r.payload is None else _columns(r),
            )
            for r in rows
        ]

    def seal_horizon(self) -> SealHorizon:
        if not self._postgres:  # writers take turns (BEGIN IMMEDIATE; this unit holds the lock)
            return SealHorizon(int(self._conn.execute(select(func.max(_e.seq))).scalar() or 0))
        last, cache = self._conn.execute(_PG_LAST_SEQ).one()
        if cache != 1:
            return SealHorizon(int(last), pending=None)
        writers = self._conn.execute(_PG_WRITERS).scalars().all()
        return SealHorizon(int(last), pending=tuple(sorted(writers)))

    def horizon_settled(self, horizon: SealHorizon) -> bool:
        if horizon.pending is None:
            return False
        if not self._postgres:
            return True
        return bool(self._conn.execute(_PG_SETTLED, {"pending": list(horizon.pending)}).scalar_one())

    def sealer_mark(self) -> SealerMark:
        row = self._conn.execute(select(_MARK.seq, _MARK.horizon_seq, _MARK.horizon_pending)).first()
        if row is None:
            return SealerMark()
        horizon = None
        if row.horizon_seq is not None:
            pending = (
                None if row.horizon_pending is None else tuple(p for p in row.horizon_pending.split(",") if p)
            )
            horizon = SealHorizon(int(row.horizon_seq), pending)
        return SealerMark(int(row.seq), horizon)

    def save_sealer_mark(self, seq: int | None, horizon: SealHorizon | None, *, exact: bool = False) -> None:
        pending = None if horizon is None or horizon.pending is None else ",".join(horizon.pending)
        values: dict[str, Any] = {
            "horizon_seq": None if horizon is None else horizon.seq,
            "horizon_pending": pending,
        }
        if seq is not None:
            values["seq"] = seq if exact else case((_MARK.seq < seq, seq), else_=_MARK.seq)
        self._conn.execute(audit_seal_mark.update().where(_MARK.id == 1).values(**values))

    def oldest_unsealed_at(self) -> datetime | None:
        stmt = select(func.min(_e.at)).where(~exists().where(_s.seq == _e.seq))
        return self._conn.execute(stmt).scalar()

    def count_unsealed(self) -> int:
        total = self._conn.execute(
            select(func.count()).select_from(audit_events).where(~exists().where(_s.seq == _e.seq))
        ).scalar()
        return int(total or 0)

    def query(self, q: AuditQuery) -> list[AuditEvent]:
        if q.newest_first:
            bound = [] if q.before_position is None else [_s.position < q.before_position]
            stmt = _SEALED.where(*bound, *_filters(q)).order_by(_s.position.desc()).limit(q.limit)
        else:
            stmt = (
                _SEALED.where(_s.position > q.after_position, *_filters(q))
                .order_by(_s.position)
                .limit(q.limit)
            )
        return [_event(r) for r in self._conn.execute(stmt)]

    def between(self, since: datetime | None, until: datetime | None) -> Iterator[AuditEvent]:
        bounds = self._conn.execute(
            select(func.min(_s.position), func.max(_s.position))
            .select_from(audit_seals.join(audit_events, _e.seq == _s.seq))
            .where(*([_e.at >= since] if since else []), *([_e.at < until] if until else []))
        ).one()
        if bounds[0] is None:
            return
        after, last = int(bounds[0]) - 1, int(bounds[1])
        while True:
            rows = self._conn.execute(
                _SEALED.where(_s.position > after, _s.position <= last).order_by(_s.position).limit(1000)
            ).all()
            if not rows:
                return
            yield from (_event(r) for r in rows)
            after = int(rows[-1].position)


def _filters(q: AuditQuery) -> list[Any]:
    out: list[Any] = []
    if q.customers is not None:
        out.append(_e.customer_code.in_(sorted(q.customers)))
    for column, value in (
        (_e.customer_code, q.customer_code),
        (_e.sale_group_code, q.sale_group_code),
        (_e.order_id, q.order_id),
        (_e.type, q.type),
        (_e.actor, q.actor),
    ):
        if value is not None:
            out.append(column == value)
    if q.since is not None:
        out.append(_e.at >= q.since)
    if q.until is not None:
        out.append(_e.at < q.until)
    return [and_(*out)] if out else []


def _columns(r: Row[Any]) -> dict[str, Any]:
    return {
        "type": r.type,
        "actor": r.actor,
        "at": iso(r.at),
        "customer_code": r.customer_code,
        "sale_group_code": r.sale_group_code,
        "order_id": r.order_id,
    }


def _event(r: Row[Any]) -> AuditEvent:
    return sealed_event(
        int(r.seq),
        r.payload,
        r.at,
        position=None if r.position is None else int(r.position),
        prev_hash=r.prev_hash,
        hash=r.hash,
    )
