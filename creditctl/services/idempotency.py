"""Idempotency keys of creating calls: look a key up, keep a call's answer, forget a failed call's claim,
prune what is older than the retention period. The web edge (adapters/web/idempotency.py) drives these;
the claim itself goes in with the call's own commit (creditctl.ports.idempotency)."""

from __future__ import annotations

from creditctl.domain.idempotency import RETENTION, Claim, IdempotencyRecord, StoredAnswer
from creditctl.ports.unit_of_work import UnitOfWork


def open_claim(
    owner: str, route: str, key: str, fingerprint: str, *, uow: UnitOfWork
) -> tuple[Claim, IdempotencyRecord | None]:
    """A new claim on the key (timed by the database's clock), and the key's record if one is kept.
    A record past the retention period is deleted here, as pruning would have: the key is free again."""
    with uow:
        now = uow.now()
        claim = Claim(owner=owner, route=route, key=key, fingerprint=fingerprint, created_at=now)
        found = uow.idempotency.get(claim.key_hash)
        if found is not None and found.expired(now):
            uow.idempotency.discard_expired(claim.key_hash, now - RETENTION)
            uow.commit()
            found = None
    return claim, found


def record_of(claim: Claim, *, uow: UnitOfWork) -> IdempotencyRecord | None:
    """The key's record as it is now (another request's, or this one's)."""
    with uow:
        return uow.idempotency.get(claim.key_hash)


def keep_answer(claim: Claim, answer: StoredAnswer, *, uow: UnitOfWork) -> None:
    """Store the successful call's answer on its record. A call that committed nothing (a no-op, such as
    a freeze repeated with the same reason) gets its record now, with the answer; if another request
    took the key meanwhile, that one's record stands."""
    with uow:
        if claim.written:
            uow.idempotency.answer(claim, answer)
        else:
            uow.idempotency.add(claim, answer)
        uow.commit()


def forget_claim(claim: Claim, *, uow: UnitOfWork) -> None:
    """A call that failed after committing something (housekeeping on the way, or part of a backtest):
    its record goes, so that a retry runs again instead of being refused."""
    if not claim.written:
        return
    with uow:
        uow.idempotency.forget(claim)
        uow.commit()


def prune_idempotency_records(*, uow: UnitOfWork) -> int:
    """Delete records older than the retention period (24 h); return how many went."""
    with uow:
        pruned = uow.idempotency.prune(uow.now() - RETENTION)
        uow.commit()
    return pruned
