"""Idempotency records, and how a request's claim on its key rides along with the request's own commit.

The web edge sets the request's Claim for the time the view runs (`claiming`). Every transaction that
commits meanwhile, a unit of work or a store's own (webhook subscriptions, backtest runs), first calls
`write_pending_claim` on its connection: the first one inserts the record, in the same transaction as
the change, and a record another request committed first fails that commit (IdempotencyKeyTaken, the
transaction rolled back). So two requests with one key never both change anything, whichever instance
or database connection they run on: the database's unique key decides."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Protocol

from creditctl.domain.idempotency import Claim, IdempotencyKeyTaken, IdempotencyRecord, StoredAnswer

_PENDING: ContextVar[Claim | None] = ContextVar("creditctl_idempotency_claim", default=None)


class IdempotencyRepository(Protocol):
    def get(self, key_hash: str) -> IdempotencyRecord | None: ...

    def add(self, claim: Claim, answer: StoredAnswer | None = None) -> bool:
        """Insert the claim's record (with its answer, if known); False when the key's record exists."""
        ...

    def answer(self, claim: Claim, answer: StoredAnswer) -> bool:
        """Store the answer on the claim's own record (by its token); False if it is not there."""
        ...

    def forget(self, claim: Claim) -> None:
        """Delete the claim's own record (a failed request: a retry runs again)."""
        ...

    def discard_expired(self, key_hash: str, before: datetime) -> None:
        """Delete the key's record if it was created at or before `before` (it expired)."""
        ...

    def prune(self, before: datetime) -> int:
        """Delete every record created at or before `before`; return how many."""
        ...


def pending_claim() -> Claim | None:
    """The claim of the request being served on this thread (None outside an idempotent call)."""
    return _PENDING.get()


@contextmanager
def claiming(claim: Claim) -> Iterator[Claim]:
    """Let the commits made while this block runs carry `claim`."""
    token = _PENDING.set(claim)
    try:
        yield claim
    finally:
        _PENDING.reset(token)


def write_pending_claim(records: IdempotencyRepository) -> Claim | None:
    """Called by a transaction just before it commits: insert the pending claim's record unless this
    request already committed it. IdempotencyKeyTaken when another request's record holds the key; the
    caller marks the returned claim `written` once its commit succeeded."""
    claim = _PENDING.get()
    if claim is None or claim.written:
        return None
    if not records.add(claim):
        raise IdempotencyKeyTaken(claim.key)
    return claim
