"""The audit log port: append an event in the change's own transaction; seal, walk and read the chain."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from creditctl.domain.audit import Actor, AuditEvent, AuditQuery, SealerMark, SealHorizon


class AuditLog(Protocol):
    """Append-only. Recording a state change is one line, inside the unit of work that makes it:

        uow.audit.append("account.frozen", at=now, actor=actor,
                         subject={"customer_code": c, "sale_group_code": g}, before={...}, after={...})

    `type` is "<thing>.<past tense>" (decision.made, hold.settled, rule_set.published, ...). `at` is the
    time the change already read (uow.now() or the lock's time): a claim only, the stored and hashed
    time is the database's at the INSERT (a trigger sets it). append runs exactly one INSERT and no
    SELECT, and takes no lock other writers wait for; make it the change's last write, so its commit
    follows its time closely (the sealer refuses an event much older than those sealed before it).
    `subject` names what changed; customer_code, sale_group_code and order_id are also stored as
    columns for filtering (and are what a customer-limited key is allowed to see). before/after hold
    plain values (Decimal, datetime, enums and sets are written as strings and lists). The event is
    hashed later by `seal`; it is rolled back with the change if the unit of work is not committed."""

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
        """Record one event (see the class docstring)."""
        ...

    def head(self) -> tuple[int, str]:
        """The last seal's (position, hash); (0, GENESIS) when nothing is sealed."""
        ...

    def unsealed(self, *, after_seq: int, limit: int) -> Sequence[AuditEvent]:
        """Committed events with no seal yet and seq > after_seq, lowest seq first; each `payload` is the
        text to hash (sealed_payload: the database's time in it).

        A transaction may commit a lower seq after a higher one was sealed: such an event is still
        unsealed and comes back here (after_seq=0 finds every one)."""
        ...

    def newest_sealed_at(self, *, window: int) -> datetime | None:
        """The newest event time among the last `window` seals (None when nothing is sealed): what
        the sealer's tolerance is measured from; an index range, whatever the trail's size."""
        ...

    def add_seals(self, seals: Sequence[tuple[int, int, str, str]], *, at: datetime) -> None:
        """Insert (position, seq, prev_hash, hash) rows. Raises AuditSealConflict when another sealer
        took one of these positions or events first (the caller rolls back and tries again)."""
        ...

    def chain(self, *, after_position: int, limit: int) -> Sequence[tuple[Any, ...]]:
        """Seals after `after_position` in order, each joined with its event:
        (position, seq, hashed text or None if the row is gone, prev_hash, hash, {column: value})."""
        ...

    def seal_horizon(self) -> SealHorizon:
        """The highest seq handed out so far, then the writers that may still commit one up to it (in
        that order: a writer that has taken a seq is one the second read finds, until it ends)."""
        ...

    def horizon_settled(self, horizon: SealHorizon) -> bool:
        """True once every writer `horizon` names has ended."""
        ...

    def sealer_mark(self) -> SealerMark:
        """The sealer's mark as stored (SealerMark() before the first pass)."""
        ...

    def save_sealer_mark(self, seq: int | None, horizon: SealHorizon | None, *, exact: bool = False) -> None:
        """Store `horizon` for a later pass (None: none), and move the mark to `seq` (None: leave it):
        only up, as another sealer may have moved it further, unless `exact` (a pass from the start)."""
        ...

    def oldest_unsealed_at(self) -> datetime | None:
        """When the oldest event with no seal yet happened (None: every event is sealed)."""
        ...

    def count_unsealed(self) -> int:
        """How many events have no seal yet."""
        ...

    def query(self, q: AuditQuery) -> list[AuditEvent]:
        """Sealed events matching `q` after position q.after_position, in chain order, at most q.limit;
        with q.newest_first, those before q.before_position (any, when None), highest position first.

        Chain order is stable under concurrent writers: a seal is only ever added after the last one,
        so a cursor never skips an event that commits later (a seq cursor would: seqs commit out of order)."""
        ...

    def between(self, since: datetime | None, until: datetime | None) -> Iterator[AuditEvent]:
        """The sealed events from the first whose time is in [since, until) to the last, in chain order,
        streamed: a contiguous stretch of the chain (an event committed late sits among them), so each
        line links to the one before it."""
        ...
