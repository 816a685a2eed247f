"""Credit limit requests on SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from adapters.sql.tables import credit_limit_requests
from creditctl.domain.limit_request import CreditLimitRequest, LimitRequestStatus
from creditctl.domain.money import from_fen, to_fen

_r = credit_limit_requests.c


class SqlLimitRequestRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, request: CreditLimitRequest) -> None:
        self._conn.execute(
            insert(credit_limit_requests).values(
                id=request.id,
                account_id=request.account_id,
                customer_code=request.customer_code,
                sale_group_code=request.sale_group_code,
                amount_fen=to_fen(request.amount),
                until=request.until,
                reason=request.reason,
                status=request.status.value,
                requested_by=request.requested_by,
                requested_by_key_id=request.requested_by_key_id,
                requested_by_owner=request.requested_by_owner,
                requested_at=request.requested_at,
            )
        )

    def get(self, request_id: str) -> CreditLimitRequest | None:
        row = self._conn.execute(select(credit_limit_requests).where(_r.id == request_id)).first()
        return _request(row) if row else None

    def save(self, request: CreditLimitRequest) -> None:
        self._conn.execute(
            update(credit_limit_requests)
            .where(_r.id == request.id)
            .values(
                status=request.status.value,
                decided_by=request.decided_by,
                decided_by_key_id=request.decided_by_key_id,
                decided_by_owner=request.decided_by_owner,
                decided_at=request.decided_at,
                note=request.note,
            )
        )

    def find(
        self,
        *,
        account_id: int | None,
        customers: frozenset[str] | None,
        status: str | None,
        now: datetime,
        limit: int = 500,
    ) -> list[CreditLimitRequest]:
        stmt = select(credit_limit_requests)
        if account_id is not None:
            stmt = stmt.where(_r.account_id == account_id)
        if customers is not None:
            stmt = stmt.where(_r.customer_code.in_(sorted(customers)))
        if status == "expired":
            stmt = stmt.where(_r.status == LimitRequestStatus.APPROVED.value, _r.until <= now)
        elif status == LimitRequestStatus.APPROVED.value:
            stmt = stmt.where(_r.status == status, _r.until > now)
        elif status is not None:
            stmt = stmt.where(_r.status == status)
        stmt = stmt.order_by(_r.requested_at.desc(), _r.id).limit(limit)
        return [_request(r) for r in self._conn.execute(stmt)]


def _request(r: Row[Any]) -> CreditLimitRequest:
    return CreditLimitRequest(
        id=r.id,
        account_id=r.account_id,
        customer_code=r.customer_code,
        sale_group_code=r.sale_group_code,
        amount=from_fen(r.amount_fen),
        until=r.until,
        reason=r.reason,
        status=LimitRequestStatus(r.status),
        requested_by=r.requested_by,
        requested_by_key_id=r.requested_by_key_id,
        requested_by_owner=r.requested_by_owner,
        requested_at=r.requested_at,
        decided_by=r.decided_by,
        decided_by_key_id=r.decided_by_key_id,
        decided_by_owner=r.decided_by_owner,
        decided_at=r.decided_at,
        note=r.note,
    )
