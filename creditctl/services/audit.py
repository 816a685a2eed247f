"""The audit trail's use cases: seal committed events into the hash chain, verify it, read and export it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from creditctl.domain.audit import AuditEvent, AuditQuery, ChainReport, ChainWalker, chain_hash
from creditctl.domain.errors import AuditSealConflict, UnknownCustomer
from creditctl.ports.unit_of_work import UnitOfWork

SEAL_BATCH = 1000
SEAL_ATTEMPTS = 5
# A quick pass looks for unsealed events only among the last RECENT_SEQS seqs below the highest sealed
# one: a change takes its seq just before it commits (the audit insert is its last write), long before
# 10,000 later events are sealed, and a pass then reads an index range instead of the whole table
# (measured: 64 ms for 100,000 seqs on PostgreSQL). A full pass (the CLI's `audit seal`, `expire`, and
# the worker every few minutes) finds any event older than that.
RECENT_SEQS = 10_000


def seal_audit(*, uow: UnitOfWork, batch: int = SEAL_BATCH, full: bool = True) -> int:
    """Link every committed, unsealed event into the chain, lowest seq first; returns how many.

    The chain's order is the order the sealer finds events committed (its `position`), not their seq:
    a transaction that took seq 7 may commit after seq 8 was sealed, and is then sealed after it. So no
    writer ever waits for another to be sealed, and no event can be skipped for good (a quick pass,
    full=False, looks only at recent seqs; a full pass at all). Several sealers at once are safe: the
    positions are a primary key, the loser rolls back and reads the head again."""
    sealed, conflicts = 0, 0
    while True:
        with uow:
            position, prev = uow.audit.head()
            after = 0 if full else max(0, uow.audit.max_sealed_seq() - RECENT_SEQS)
            events = uow.audit.unsealed(after_seq=after, limit=batch)
            if not events:
                return sealed
            seals = []
            for event in events:
                position += 1
                digest = chain_hash(prev, event.payload)
                seals.append((position, event.seq, prev, digest))
                prev = digest
            try:
                uow.audit.add_seals(seals, at=uow.now())
            except AuditSealConflict:
                conflicts += 1
                if conflicts >= SEAL_ATTEMPTS:
                    raise
                continue
            uow.commit()
        sealed += len(events)


def verify_audit(
    *,
    uow: UnitOfWork,
    anchor: tuple[int, str] | None = None,
    batch: int = SEAL_BATCH,
    budget_s: float | None = None,
) -> ChainReport:
    """Walk the chain from its first seal; stop at the first event whose link does not hold.

    Caught: an event edited, deleted or swapped with another, a seal removed or edited, a filter column
    changed. Cutting the tail off (the last events and their seals) leaves a shorter chain that holds;
    `anchor`, a (position, hash) seen earlier (printed by `seal`, the last line of an export), catches it.
    `budget_s` (a web request's): stop after about that long with `complete=False`; what was walked
    holds (about 50,000 events a second here: the CLI walks any length)."""
    walker, started, complete = ChainWalker(), time.monotonic(), True
    with uow:
        while True:
            links = uow.audit.chain(after_position=walker.position, limit=batch)
            if not links or not walker.feed(links) or len(links) < batch:
                break
            if budget_s is not None and time.monotonic() - started > budget_s:
                complete = False
                break
        unsealed = uow.audit.count_unsealed()
        oldest = uow.audit.oldest_unsealed_at() if unsealed else None
        age = None if oldest is None else max(0.0, (uow.now() - oldest).total_seconds())
        problem = walker.problem
        if problem is None and anchor is not None:
            problem = _anchor_problem(uow, anchor)
    report = ChainReport(
        checked=walker.position,
        head_position=walker.position,
        head_hash=walker.hash,
        unsealed=unsealed,
        oldest_unsealed_age_s=age,
        complete=complete,
    )
    if problem is None:
        return report
    position, seq, text = problem
    return ChainReport(
        checked=walker.position,
        head_position=walker.position,
        head_hash=walker.hash,
        unsealed=unsealed,
        oldest_unsealed_age_s=age,
        broken_position=position,
        broken_seq=seq,
        problem=text,
    )


def _anchor_problem(uow: UnitOfWork, anchor: tuple[int, str]) -> tuple[int | None, int | None, str] | None:
    position, digest = anchor
    found = uow.audit.chain(after_position=position - 1, limit=1)
    if not found or found[0][0] != position:
        return (position, None, f"the chain ends before the anchor's position {position} (truncated)")
    if found[0][4] != digest:
        return (position, int(found[0][1]), "its hash is not the anchor's (the chain was rewritten)")
    return None


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The chain's last seal and how many committed events wait for one: read, not verified."""

    position: int
    hash: str
    unsealed: int


def audit_head(*, uow: UnitOfWork) -> ChainHead:
    """The head as stored, at once (verify_audit walks the whole chain to check it)."""
    with uow:
        position, digest = uow.audit.head()
        return ChainHead(position, digest, uow.audit.count_unsealed())


def list_audit_events(q: AuditQuery, *, uow: UnitOfWork) -> list[AuditEvent]:
    """One page of events in chain order, after sealing what is committed (a freeze shows at once).

    The cursor is the chain position: seals are only appended, so paging is stable under inserts.
    A key limited to customers asking for another customer's events: UnknownCustomer, as everywhere."""
    if q.customers is not None and q.customer_code is not None and q.customer_code not in q.customers:
        raise UnknownCustomer(q.customer_code)
    _seal_quietly(uow)
    with uow:
        return uow.audit.query(q)


def export_audit(since: datetime | None, until: datetime | None, *, uow: UnitOfWork) -> Iterator[AuditEvent]:
    """Seal what is committed, then stream the sealed events of [since, until) in chain order."""
    _seal_quietly(uow)
    with uow:
        yield from uow.audit.between(since, until)


def _seal_quietly(uow: UnitOfWork) -> None:
    """Seal recent events before a read, so a change shows at once; if another sealer (a worker's) keeps
    winning the race, it is sealing those very events: read what is sealed rather than fail the read."""
    with contextlib.suppress(AuditSealConflict):
        seal_audit(uow=uow, full=False)
