"""The audit trail's use cases: seal committed events into the hash chain, verify it, read and export it."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from creditctl.domain.audit import (
    SEAL_TOLERANCE_S,
    AuditEvent,
    AuditQuery,
    ChainReport,
    ChainWalker,
    SealHorizon,
    chain_hash,
    event_time,
    too_old,
)
from creditctl.domain.audit_anchor import Anchor, AnchorCheck
from creditctl.domain.errors import AuditSealConflict, UnknownCustomer
from creditctl.ports.unit_of_work import UnitOfWork

log = logging.getLogger("creditctl.audit")

SEAL_BATCH = 1000
SEAL_ATTEMPTS = 5
# The sealer's tolerance is measured from the newest event time among this many last seals.
NEWEST_WINDOW = 1000
_REPORTED_MAX = 10_000  # refused seqs already logged by this process (each is logged once)
# (seq, time): the reason's figures grow with the chain; the seqs of another database may repeat
_reported: set[tuple[int, datetime | None]] = set()


@dataclass(frozen=True, slots=True)
class Refusal:
    """An event the sealer would not seal (it stays unsealed, and `verify` fails while it does)."""

    seq: int
    type: str | None
    reason: str
    at: datetime | None = None  # the event's time (None: it has none)


@dataclass
class SealOutcome:
    """What one sealing run did: how many events it sealed, and which it refused and why."""

    sealed: int = 0
    refused: list[Refusal] = field(default_factory=list)


def seal_audit(
    *, uow: UnitOfWork, batch: int = SEAL_BATCH, full: bool = False, tolerance_s: float = SEAL_TOLERANCE_S
) -> int:
    """Link every committed, unsealed event into the chain, lowest seq first; returns how many
    (seal_audit_outcome also says which it refused)."""
    return seal_audit_outcome(uow=uow, batch=batch, full=full, tolerance_s=tolerance_s).sealed


def seal_audit_outcome(
    *,
    uow: UnitOfWork,
    batch: int = SEAL_BATCH,
    full: bool = False,
    tolerance_s: float = SEAL_TOLERANCE_S,
    between_pages: Callable[[], None] | None = None,
) -> SealOutcome:
    """Link every committed, unsealed event into the chain, lowest seq first.

    The chain's order is the order the sealer finds events committed (its `position`), not their seq:
    a transaction that took seq 7 may commit after seq 8 was sealed, and is then sealed after it. So no
    writer ever waits for another to be sealed. Several sealers at once are safe: the positions are a
    primary key, the loser rolls back and reads the head again.

    A pass reads above the sealer's mark (every seq up to it sealed or refused), so its cost follows
    what was written since the last passes, not the trail's length; `full` reads from the start
    (`audit seal --from-start`). The mark moves to a horizon an earlier pass stored (the highest seq
    then, and the writers then in flight) once, before this pass reads anything, every one of those
    writers has ended: the pass then sees every event up to it, and seals or refuses each. So an event
    held back in an open transaction is sealed by the first pass after it commits, however far below
    the newest, and never left below the mark. A mark above every seq handed out (set by hand) is
    ignored: that pass reads from the start and sets the mark back.

    An event whose database time is more than `tolerance_s` older than the newest sealed one is refused:
    left unsealed, logged at ERROR (once per process), returned in `refused`; `verify` names it too.

    `between_pages` is called after each page committed when another page follows (nothing is held
    then): the worker's sealer paces itself there (adapters/cli/webhooks.py)."""
    with uow:
        mark = uow.audit.sealer_mark()
        now = uow.audit.seal_horizon()
        stored = mark.horizon if _usable(mark.horizon, now) else None
        settled = stored is not None and uow.audit.horizon_settled(stored)  # before the pass reads
    exact = full or mark.seq > now.seq
    outcome = SealOutcome()
    _seal_above(
        0 if exact else mark.seq,
        uow=uow,
        batch=batch,
        tolerance_s=tolerance_s,
        outcome=outcome,
        between_pages=between_pages,
    )
    if stored is None or settled:  # a new horizon for a later pass (an unsettled one is kept until it is)
        with uow:
            keep = now if now.pending is not None else None  # one that can never settle is not kept
            uow.audit.save_sealer_mark(stored.seq if settled and stored else None, keep, exact=exact)
            uow.commit()
    return outcome


def _usable(stored: SealHorizon | None, now: SealHorizon) -> bool:
    """A stored horizon that can settle and that this database could have read: none that names no
    writers because the database could not tell, none above every seq handed out (set by hand)."""
    return stored is not None and stored.pending is not None and stored.seq <= now.seq


def _seal_above(
    cursor: int,
    *,
    uow: UnitOfWork,
    batch: int,
    tolerance_s: float,
    outcome: SealOutcome,
    between_pages: Callable[[], None] | None,
) -> None:
    """Seal (or refuse) every committed, unsealed event above `cursor` that each page read finds, one
    transaction a page; adds to `outcome`."""
    conflicts = 0
    while True:
        with uow:
            position, prev = uow.audit.head()
            events = uow.audit.unsealed(after_seq=cursor, limit=batch)
            if not events:
                return
            newest = uow.audit.newest_sealed_at(window=NEWEST_WINDOW)
            seals, refused = [], []
            for event in events:
                at = event_time(event.data)
                problem = too_old(at, newest, tolerance_s)
                if problem is not None:
                    refused.append(Refusal(event.seq, _type_of(event), problem, at))
                    continue
                position += 1
                digest = chain_hash(prev, event.payload)
                seals.append((position, event.seq, prev, digest))
                prev = digest
                newest = at if newest is None or (at is not None and at > newest) else newest
            try:
                uow.audit.add_seals(seals, at=uow.now())
            except AuditSealConflict:
                conflicts += 1
                if conflicts >= SEAL_ATTEMPTS:
                    raise
                continue
            uow.commit()
        outcome.sealed += len(seals)
        outcome.refused.extend(refused)
        _report(refused)
        cursor = events[-1].seq  # each was sealed or refused: the next page starts after them
        if len(events) < batch:  # caught up with what was committed when the page was read; what
            return  # commits meanwhile is the next pass's (chasing it page by page sealed a few events
            # a round trip, some 170 round trips a second under a steady stream)
        if between_pages is not None:
            between_pages()


def _type_of(event: AuditEvent) -> str | None:
    value = event.data.get("type") if isinstance(event.data, dict) else None
    return value if isinstance(value, str) else None


def _report(refused: list[Refusal]) -> None:
    """Each refusal as an ERROR log line, once per process (passes meet it again until the mark passes it)."""
    for r in refused:
        if (r.seq, r.at) in _reported:
            continue
        if len(_reported) >= _REPORTED_MAX:
            _reported.clear()
        _reported.add((r.seq, r.at))
        log.error(
            "audit: event seq %s (%s) refused, not sealed: %s",
            r.seq,
            r.type,
            r.reason,
            extra={"audit_seq": r.seq, "audit_type": r.type},
        )


def verify_audit(
    *,
    uow: UnitOfWork,
    anchor: tuple[int, str] | None = None,
    anchors: Sequence[Anchor] = (),
    batch: int = SEAL_BATCH,
    budget_s: float | None = None,
    tolerance_s: float = SEAL_TOLERANCE_S,
) -> ChainReport:
    """Walk the chain from its first seal; stop at the first event whose link does not hold.

    Caught: an event edited, deleted or swapped with another, a seal removed or edited, a filter column
    changed, an event sealed although older than those before it (beyond `tolerance_s`). A chain
    rewritten and sealed again holds together; `anchors` (heads and hashes kept outside the database,
    or `anchor`, one position:hash) catch it, and the first position whose hash is not the anchored
    one names the first event that differs; a chain cut short is caught by an anchor past its end.
    Unsealed events the sealer refuses are listed in `refused`.
    `budget_s` (a web request's): stop after about that long with `complete=False`; what was walked
    holds (about 50,000 events a second here: the CLI walks any length)."""
    every = [*anchors, *([Anchor(anchor[0], anchor[1])] if anchor is not None else [])]
    check = AnchorCheck(every) if every else None
    walker, started, complete = ChainWalker(tolerance_s), time.monotonic(), True
    found: tuple[int | None, int | None, str] | None = None
    with uow:
        while found is None:
            links = uow.audit.chain(after_position=walker.position, limit=batch)
            found = _walk(walker, check, links)
            if found is not None or len(links) < batch:
                break
            if budget_s is not None and time.monotonic() - started > budget_s:
                complete = False
                break
        if found is None and complete and check is not None and check.last > walker.position:
            found = _truncated(walker.position, check.last)
        unsealed = uow.audit.count_unsealed()
        oldest = uow.audit.oldest_unsealed_at() if unsealed else None
        age = None if oldest is None else max(0.0, (uow.now() - oldest).total_seconds())
        refused = _refusals(uow, tolerance_s) if unsealed else []
        broken_type = _type_at(uow, found[0]) if found is not None and found[0] is not None else None
    position, seq, problem = found if found is not None else (None, None, None)
    return ChainReport(
        checked=walker.position,
        head_position=walker.position,
        head_hash=walker.hash,
        unsealed=unsealed,
        oldest_unsealed_age_s=age,
        complete=complete,
        broken_position=position,
        broken_seq=seq,
        problem=problem,
        broken_type=broken_type,
        refused=tuple((r.seq, r.type, r.reason) for r in refused),
    )


def _walk(
    walker: ChainWalker, check: AnchorCheck | None, links: Sequence[tuple[Any, ...]]
) -> tuple[int | None, int | None, str] | None:
    """Feed the links one by one, the anchored hash of each position compared before its own link."""
    for link in links:
        position, seq, _payload, _prev, digest, _columns = link
        differs = check.observe(position, digest) if check is not None else None
        if differs is not None:
            anchored, gap = differs
            when = f" at {anchored.anchored_at}" if anchored.anchored_at else ""
            text = (
                f"its hash is not the one anchored{when} (head {anchored.head}): this is the first event "
                "that differs from what was anchored (rewritten, or another event put in its place, and the "
                "chain sealed again)"
            )
            if gap is not None:
                text += (
                    f"; positions {gap[0]} to {gap[1]} before it were not anchored one by one, so the change "
                    "may be among them"
                )
            return position, seq, text
        if not walker.feed([link]):
            return walker.problem
    return None


def _truncated(end: int, anchored: int) -> tuple[int | None, int | None, str]:
    return (
        end + 1,
        None,
        f"the chain ends at position {end}, before the anchored position {anchored}: seals {end + 1} to "
        f"{anchored} are gone (truncated)",
    )


def _type_at(uow: UnitOfWork, position: int) -> str | None:
    found = uow.audit.chain(after_position=position - 1, limit=1)
    if not found or found[0][0] != position or found[0][2] is None:
        return None
    return _type_of(AuditEvent(seq=int(found[0][1]), payload=found[0][2]))


REFUSALS_SCANNED = 10_000  # unsealed events verify looks through for ones the sealer refuses


def _refusals(uow: UnitOfWork, tolerance_s: float) -> list[Refusal]:
    """Unsealed events the sealer refuses: older than the newest sealed one beyond the tolerance, or
    with no time of the database's. The sealer's own rule, applied to what is waiting now."""
    newest = uow.audit.newest_sealed_at(window=NEWEST_WINDOW)
    out: list[Refusal] = []
    after = 0
    for _ in range(REFUSALS_SCANNED // SEAL_BATCH):
        events = uow.audit.unsealed(after_seq=after, limit=SEAL_BATCH)
        for event in events:
            problem = too_old(event_time(event.data), newest, tolerance_s)
            if problem is not None:
                out.append(Refusal(event.seq, _type_of(event), problem, event_time(event.data)))
        if len(events) < SEAL_BATCH:
            break
        after = events[-1].seq
    return out


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


def list_audit_events(
    q: AuditQuery, *, uow: UnitOfWork, read_uow: UnitOfWork | None = None
) -> list[AuditEvent]:
    """One page of events in chain order, after sealing what is committed (a freeze shows at once).

    The cursor is the chain position: seals are only appended, so paging is stable under inserts.
    A key limited to customers asking for another customer's events: UnknownCustomer, as everywhere.
    `read_uow` (an export's, on a replica) reads the page: a prefix of the sealed chain, as far as the
    replica has replayed; the seal itself is written through `uow`."""
    if q.customers is not None and q.customer_code is not None and q.customer_code not in q.customers:
        raise UnknownCustomer(q.customer_code)
    _seal_quietly(uow)
    reader = read_uow or uow
    with reader:
        return reader.audit.query(q)


def export_audit(
    since: datetime | None,
    until: datetime | None,
    *,
    uow: UnitOfWork,
    read_uow: UnitOfWork | None = None,
) -> Iterator[AuditEvent]:
    """Seal what is committed (through `uow`), then stream the sealed events of [since, until) in chain
    order (through `read_uow` when given: a replica's, which holds a prefix of the chain)."""
    _seal_quietly(uow)
    reader = read_uow or uow
    with reader:
        yield from reader.audit.between(since, until)


def _seal_quietly(uow: UnitOfWork) -> None:
    """Seal recent events before a read, so a change shows at once; if another sealer (a worker's) keeps
    winning the race, it is sealing those very events: read what is sealed rather than fail the read."""
    with contextlib.suppress(AuditSealConflict):
        seal_audit(uow=uow, full=False)
