"""The SQL unit of work: one connection and transaction per `with` block, rolled back unless committed."""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import Self

from sqlalchemy import Connection, Engine

from adapters.sql.accounts import SqlAccountRepository
from adapters.sql.api_keys import SqlApiKeyRepository
from adapters.sql.audit import SqlAuditLog
from adapters.sql.balance_reports import SqlBalanceReportRepository
from adapters.sql.credit_profiles import SqlBalanceHistoryRepository, SqlCreditHistoryRepository
from adapters.sql.customers import SqlCustomerRepository
from adapters.sql.database_clock import database_time
from adapters.sql.decisions import DECISION_KEY, ORDER_KEY, SqlDecisionRepository
from adapters.sql.freezes import SqlFreezeRepository
from adapters.sql.holds import SqlHoldRepository
from adapters.sql.idempotency import SqlIdempotencyRepository
from adapters.sql.kept_connections import KeptConnections
from adapters.sql.limit_requests import SqlLimitRequestRepository
from adapters.sql.outbox import SqlOutboxRepository
from adapters.sql.payments import SqlPaymentRepository
from adapters.sql.pipeline import Batch, abandon_batch, begin_batch, commit_batch
from adapters.sql.rule_sets import RuleSetCache, SqlRuleSetRepository
from adapters.sql.upstream_configs import SqlUpstreamConfigRepository
from creditctl.ports.clock import Clock
from creditctl.ports.idempotency import write_pending_claim
from creditctl.ports.repositories import OrderIdTaken


class SqlUnitOfWork:
    """Re-enterable across calls, not nested: each `with uow:` checks out a connection and begins."""

    def __init__(
        self,
        engine: Engine,
        *,
        rule_set_cache: RuleSetCache | None = None,
        database_clock: Clock | None = None,
        kept: KeptConnections | None = None,
    ) -> None:
        """`database_clock` stands in for the database server's clock (tests that move time by hand).
        `kept`: where the unit takes its connection from and leaves it (adapters.sql.kept_connections);
        None: the pool."""
        self._engine = engine
        self._kept = kept
        self._cache = rule_set_cache or RuleSetCache()
        self._database_clock = database_clock
        self._conn: Connection | None = None
        self._batch_next = False
        self._batch: Batch | None = None  # a batched unit's pipeline on PostgreSQL
        self._keeping: KeptConnections | None = None  # where this unit's connection goes back to

    def batched(self) -> Self:
        """The next `with` block sends its writes with its commit (PostgreSQL; SQLite has no round trips
        to save and runs it as usual). See adapters.sql.pipeline."""
        self._batch_next = True
        return self

    def __enter__(self) -> Self:
        if self._conn is not None:
            raise RuntimeError("unit of work already open; units of work do not nest")
        batched_next, self._batch_next = self._batch_next, False
        kept = self._kept
        conn = kept.take() if kept is not None else self._engine.connect()
        try:
            batched = batched_next and conn.dialect.name == "postgresql"
            if batched:
                self._batch = begin_batch(conn, {ORDER_KEY: OrderIdTaken, DECISION_KEY: OrderIdTaken})
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._keeping = kept
        self.accounts = SqlAccountRepository(conn, self._database_clock)
        self.customers = SqlCustomerRepository(conn)
        self.decisions = SqlDecisionRepository(conn, batched=batched)
        self.holds = SqlHoldRepository(conn)
        self.rule_sets = SqlRuleSetRepository(conn, self._cache, self.now)
        self.api_keys = SqlApiKeyRepository(conn)
        self.outbox = SqlOutboxRepository(conn)
        self.upstream_configs = SqlUpstreamConfigRepository(conn)
        self.payments = SqlPaymentRepository(conn)
        self.balance_history = SqlBalanceHistoryRepository(conn)
        self.credit_history = SqlCreditHistoryRepository(conn)
        self.limit_requests = SqlLimitRequestRepository(conn)
        self.audit = SqlAuditLog(conn)
        self.freezes = SqlFreezeRepository(conn)
        self.balance_reports = SqlBalanceReportRepository(conn)
        self.idempotency = SqlIdempotencyRepository(conn)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        kept, self._keeping = self._keeping, None
        self._forget_rule_sets_if_changed()  # not committed: what this unit read of its change was not so
        batch, self._batch = self._batch, None
        ended = False
        try:
            if batch is not None:
                abandon_batch(conn, batch)
            if conn.in_transaction():
                conn.rollback()
            ended = True
        finally:
            if kept is not None and ended and exc_type is None:
                kept.give_back(conn)  # kept for this thread's next unit if it is clean
            else:
                conn.close()

    def _forget_rule_sets_if_changed(self) -> None:
        """After this unit published or (un)assigned, at its commit or its end: the process's rule-set
        cache may hold what was read before the change committed, or the change itself, uncommitted."""
        if self.rule_sets.changed:
            self._cache.forget()
            self.rule_sets.changed = False

    def now(self) -> datetime:
        assert self._conn is not None, "now() outside a unit of work"
        if self._database_clock is not None:
            return self._database_clock.now()
        return database_time(self._conn)

    def commit(self) -> None:
        """Commit, with the request's idempotency claim (if one is pending) inserted first: the change
        and the record that stops a retry from making it again commit together or not at all."""
        assert self._conn is not None, "commit outside a unit of work"
        claim = write_pending_claim(self.idempotency)
        batch, self._batch = self._batch, None
        if batch is not None:  # the queued writes, the COMMIT and the end of the pipeline: one round trip
            commit_batch(batch)  # a queued write's failure may be told here
        self._conn.commit()
        if claim is not None:
            claim.written = True
        self._forget_rule_sets_if_changed()  # a refresh may have read between the change and its commit

    def rollback(self) -> None:
        assert self._conn is not None, "rollback outside a unit of work"
        self._forget_rule_sets_if_changed()
        batch, self._batch = self._batch, None
        if batch is not None:  # what is queued is answered and thrown away; the unit goes on unbatched
            abandon_batch(self._conn, batch)
        self._conn.rollback()
