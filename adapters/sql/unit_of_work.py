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
from adapters.sql.decisions import SqlDecisionRepository
from adapters.sql.freezes import SqlFreezeRepository
from adapters.sql.holds import SqlHoldRepository
from adapters.sql.idempotency import SqlIdempotencyRepository
from adapters.sql.limit_requests import SqlLimitRequestRepository
from adapters.sql.outbox import SqlOutboxRepository
from adapters.sql.payments import SqlPaymentRepository
from adapters.sql.rule_sets import RuleSetCache, SqlRuleSetRepository
from adapters.sql.upstream_configs import SqlUpstreamConfigRepository
from creditctl.ports.clock import Clock
from creditctl.ports.idempotency import write_pending_claim


class SqlUnitOfWork:
    """Re-enterable across calls, not nested: each `with uow:` checks out a connection and begins."""

    def __init__(
        self,
        engine: Engine,
        *,
        rule_set_cache: RuleSetCache | None = None,
        database_clock: Clock | None = None,
    ) -> None:
        """`database_clock` stands in for the database server's clock (tests that move time by hand)."""
        self._engine = engine
        self._cache = rule_set_cache or RuleSetCache()
        self._database_clock = database_clock
        self._conn: Connection | None = None

    def __enter__(self) -> Self:
        if self._conn is not None:
            raise RuntimeError("unit of work already open; units of work do not nest")
        conn = self._engine.connect()
        self._conn = conn
        self.accounts = SqlAccountRepository(conn, self._database_clock)
        self.customers = SqlCustomerRepository(conn)
        self.decisions = SqlDecisionRepository(conn)
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
        try:
            if conn.in_transaction():
                conn.rollback()
        finally:
            conn.close()

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
        self._conn.commit()
        if claim is not None:
            claim.written = True

    def rollback(self) -> None:
        assert self._conn is not None, "rollback outside a unit of work"
        self._conn.rollback()
