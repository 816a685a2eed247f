"""The unit of work port: one transaction, repositories hanging off it, rolled back unless committed."""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from creditctl.ports.audit import AuditLog
from creditctl.ports.idempotency import IdempotencyRepository
from creditctl.ports.repositories import (
    AccountRepository,
    ApiKeyRepository,
    BalanceHistoryRepository,
    BalanceReportRepository,
    CreditHistoryRepository,
    CustomerRepository,
    DecisionRepository,
    FreezeRepository,
    HoldRepository,
    LimitRequestRepository,
    OutboxRepository,
    PaymentRepository,
    RuleSetRepository,
)
from creditctl.ports.upstream_configs import UpstreamConfigRepository


class UnitOfWork(Protocol):
    """Re-enterable: each `with uow:` block is a new transaction. Leaving without commit() rolls back."""

    accounts: AccountRepository
    customers: CustomerRepository
    decisions: DecisionRepository
    holds: HoldRepository
    rule_sets: RuleSetRepository
    api_keys: ApiKeyRepository
    outbox: OutboxRepository
    upstream_configs: UpstreamConfigRepository
    payments: PaymentRepository
    balance_history: BalanceHistoryRepository
    credit_history: CreditHistoryRepository
    limit_requests: LimitRequestRepository
    audit: AuditLog
    freezes: FreezeRepository
    balance_reports: BalanceReportRepository
    idempotency: IdempotencyRepository

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def now(self) -> datetime:
        """The database's time, read when called, on this transaction's connection (UTC).

        Every instance on the database reads the same clock, so times written with it (decided,
        settled, expires) order the same whichever instance wrote or compares them. Read it after
        taking the lock a decision depends on, not before."""
        ...

    def batched(self) -> Self:
        """The next `with` block batches its writes: they may be sent to the database together with the
        commit (PostgreSQL: one round trip for every write and the COMMIT, so a lock taken in the block is
        held for about one round trip after the last read). A write's failure may then surface only at
        commit() or at the next read. For units whose writes are blind: nothing read back from a write.
        Returns self: `with uow.batched(): ...`."""
        ...

    def commit(self) -> None:
        """Commit; with a request's idempotency claim pending (creditctl.ports.idempotency), its record
        is inserted first, in this transaction (IdempotencyKeyTaken, nothing committed, when another
        request holds the key)."""
        ...

    def rollback(self) -> None: ...
