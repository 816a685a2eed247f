"""The audit log in memory: the SQL log's contract on a FakeState's lists (tests and dev mode). The
writer's `at` stands for the database's time (the fake has no other clock)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from creditctl.domain.audit import (
    GENESIS,
    Actor,
    AuditEvent,
    AuditQuery,
    SealerMark,
    SealHorizon,
    event_payload,
    iso,
)
from creditctl.domain.errors import AuditSealConflict


class FakeAuditLog:
    """`events` is a list of dict rows (seq, at, type, actor, subject columns, payload); `seals` a
    dict position -> (seq, prev_hash, hash); `mark` one cell, the sealer's mark; all live in the unit of
    work's working copy. Units take turns on one lock, so no writer is ever in flight beside a reader:
    a horizon has settled as soon as it is read."""

    def __init__(
        self,
        events: list[dict[str, Any]],
        seals: dict[int, tuple[int, str, str]],
        mark: list[SealerMark] | None = None,
    ) -> None:
        self.events, self.seals = events, seals
        self.mark = mark if mark is not None else [SealerMark()]

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
        payload = event_payload(type, at=at, actor=actor, subject=subject, before=before, after=after)
        seq = (self.events[-1]["seq"] if self.events else 0) + 1
        self.events.append(
            {
                "seq": seq,
                "at": at,
                "type": type,
                "actor": actor.name,
                "customer_code": subject.get("customer_code"),
                "sale_group_code": subject.get("sale_group_code"),
                "order_id": subject.get("order_id"),
                "payload": payload,
            }
        )

    def _sealed(self) -> dict[int, tuple[int, str, str]]:
        return {seq: (position, prev, h) for position, (seq, prev, h) in self.seals.items()}

    def head(self) -> tuple[int, str]:
        if not self.seals:
            return 0, GENESIS
        position = max(self.seals)
        return position, self.seals[position][2]

    def unsealed(self, *, after_seq: int, limit: int) -> Sequence[AuditEvent]:
        sealed = self._sealed()
        rows = [r for r in self.events if r["seq"] > after_seq and r["seq"] not in sealed]
        return [AuditEvent(seq=r["seq"], payload=r["payload"]) for r in rows[:limit]]

    def newest_sealed_at(self, *, window: int) -> datetime | None:
        by_seq = {r["seq"]: r for r in self.events}
        recent = sorted(self.seals)[-window:] if window else []
        times = [by_seq[self.seals[p][0]]["at"] for p in recent if self.seals[p][0] in by_seq]
        return max(times, default=None)

    def add_seals(self, seals: Sequence[tuple[int, int, str, str]], *, at: datetime) -> None:
        sealed = self._sealed()
        if any(p in self.seals or q in sealed for p, q, _, _ in seals):
            raise AuditSealConflict()
        for position, seq, prev, digest in seals:
            self.seals[position] = (seq, prev, digest)

    def chain(self, *, after_position: int, limit: int) -> Sequence[tuple[Any, ...]]:
        by_seq = {r["seq"]: r for r in self.events}
        out = []
        for position in sorted(p for p in self.seals if p > after_position)[:limit]:
            seq, prev, digest = self.seals[position]
            row = by_seq.get(seq)
            columns = None if row is None else {**row, "at": iso(row["at"])}
            out.append((position, seq, None if row is None else row["payload"], prev, digest, columns))
        return out

    def seal_horizon(self) -> SealHorizon:
        return SealHorizon(self.events[-1]["seq"] if self.events else 0)

    def horizon_settled(self, horizon: SealHorizon) -> bool:
        return horizon.pending is not None

    def sealer_mark(self) -> SealerMark:
        return self.mark[0]

    def save_sealer_mark(self, seq: int | None, horizon: SealHorizon | None, *, exact: bool = False) -> None:
        now = self.mark[0].seq
        if seq is not None:
            now = seq if exact else max(now, seq)
        self.mark[0] = SealerMark(now, horizon)

    def oldest_unsealed_at(self) -> datetime | None:
        sealed = self._sealed()
        return min((r["at"] for r in self.events if r["seq"] not in sealed), default=None)

    def count_unsealed(self) -> int:
        sealed = self._sealed()
        return sum(1 for r in self.events if r["seq"] not in sealed)

    def query(self, q: AuditQuery) -> list[AuditEvent]:
        by_seq = {r["seq"]: r for r in self.events}
        sealed = self._sealed()
        found = []
        if q.newest_first:
            before = q.before_position
            positions = sorted((p for p in self.seals if before is None or p < before), reverse=True)
        else:
            positions = sorted(p for p in self.seals if p > q.after_position)
        for position in positions:
            row = by_seq.get(self.seals[position][0])
            if row is not None and _matches(row, q):
                found.append(_event(row, sealed))
        return found[: q.limit]

    def between(self, since: datetime | None, until: datetime | None) -> Iterator[AuditEvent]:
        by_seq = {r["seq"]: r for r in self.events}
        sealed = self._sealed()
        inside = [
            p
            for p, (seq, _, _) in self.seals.items()
            if seq in by_seq
            and not ((since and by_seq[seq]["at"] < since) or (until and by_seq[seq]["at"] >= until))
        ]
        if not inside:
            return
        for position in range(min(inside), max(inside) + 1):
            seal = self.seals.get(position)
            if seal is not None and seal[0] in by_seq:
                yield _event(by_seq[seal[0]], sealed)


def _matches(row: dict[str, Any], q: AuditQuery) -> bool:
    if q.customers is not None and row["customer_code"] not in q.customers:
        return False
    for name in ("customer_code", "sale_group_code", "order_id", "type", "actor"):
        wanted = getattr(q, name)
        if wanted is not None and row[name] != wanted:
            return False
    return not ((q.since and row["at"] < q.since) or (q.until and row["at"] >= q.until))


def _event(row: dict[str, Any], sealed: dict[int, tuple[int, str, str]]) -> AuditEvent:
    position, prev, digest = sealed.get(row["seq"], (None, None, None))
    return AuditEvent(seq=row["seq"], payload=row["payload"], position=position, prev_hash=prev, hash=digest)
